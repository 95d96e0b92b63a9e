// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Local forwarding: cgroup socket-address hooks translate a node address and
 * node port into the backend once, when the socket connects or sends, so the
 * packets of the connection pay nothing afterwards. The IPv4 hooks serve
 * AF_INET sockets; the IPv6 hooks serve AF_INET6 sockets, both those that
 * reach an IPv6 node address (to the port's IPv6 backend) and dual-stack ones
 * that reach an IPv4 node address as ::ffff:a.b.c.d (to its IPv4 backend).
 *
 * Every hook fails open: on a miss or an error it returns 1 and the socket
 * proceeds to the address the application asked for. Returning 0 would make
 * the syscall fail with EPERM for traffic that is not ours.
 */
#include "uapi.bpf.h"
#include "maps.bpf.h"
#include "sock_xlat.bpf.h"
#include "counters.bpf.h"
#include "test_variant.bpf.h"

#define ALLOW 1

static __always_inline bool is_loopback4(__be32 addr_be)
{
	return (bpf_ntohl(addr_be) >> 24) == 127;
}

/* A destination is the node when it is one of the node's addresses (from any
 * netns, so sandboxes reach each other through the node), or loopback seen
 * from the node's own netns: inside a sandbox 127.0.0.1 is the sandbox. */
static __always_inline bool is_node_dest4(struct bpf_sock_addr *ctx, __be32 addr_be)
{
	if (is_loopback4(addr_be))
		return bpf_get_netns_cookie(ctx) == node_netns_cookie();
	return is_node_addr4(addr_be);
}

/* Counts a translation for the port's counters: `connect` says connect or
 * send. */
static __always_inline void count_local(__u8 proto, __u8 family, __be16 port_be, bool connect)
{
	struct np_port_counters *c = port_counters_of_family(proto, family, port_be);

	if (c) {
		if (connect)
			c->local_connects += 1;
		else
			c->local_sends += 1;
	}
}

/* Remembers node -> backend for this socket, reusing the slot that already
 * names this backend. False when the socket storage could not be had. */
static __always_inline bool remember(struct bpf_sock_addr *ctx, __be32 node_addr_be,
				     __be16 node_port_be, __be32 backend_addr_be,
				     __be16 backend_port_be)
{
	struct np_sock_xlat *st;
	__u32 i, slot;

	st = bpf_sk_storage_get(&sock_xlat, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return false; /* out of memory: the reply keeps the backend address */

	slot = NP_SOCK_XLAT_SLOTS;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (st->slot[i].backend_addr_be == backend_addr_be &&
		    st->slot[i].backend_port_be == backend_port_be) {
			slot = i;
			break;
		}
	}
	if (slot == NP_SOCK_XLAT_SLOTS)
		slot = st->next++ % NP_SOCK_XLAT_SLOTS;
	st->slot[slot].backend_addr_be = backend_addr_be;
	st->slot[slot].backend_port_be = backend_port_be;
	st->slot[slot].node_addr_be = node_addr_be;
	st->slot[slot].node_port_be = node_port_be;
	return true;
}

/* Forward translation, shared by every forward hook: the backend for a
 * destination (addr_be, port_be) that is the node and a mapped port, or false
 * to leave the socket alone. Remembers the translation for the reverse hooks
 * and counts it; `connect` says connect or send, for the port's counters. */
static __always_inline bool translate_dest(struct bpf_sock_addr *ctx, __be32 addr_be, __be16 port_be,
					   bool connect, __be32 *backend_addr_be, __be16 *backend_port_be)
{
	const struct np_backend *be;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return false;
	be = lookup_backend(ctx->protocol, NP_FAMILY_IPV4, port_be);
	/* One read: the socket goes to the backend it remembers for replies
	 * (and that `set` finds when it ends the old backend's sockets). */
	if (!be || !read_backend4(be, backend_addr_be, backend_port_be)) {
		count_reason(NP_REASON_LOCAL_PORT_NOT_MAPPED);
		return false;
	}
	if (!is_node_dest4(ctx, addr_be)) {
		count_reason(NP_REASON_LOCAL_NOT_NODE_DEST);
		return false;
	}
	if (!remember(ctx, addr_be, port_be, *backend_addr_be, *backend_port_be))
		count_reason(NP_REASON_LOCAL_NO_STORAGE);
	count_local(ctx->protocol, NP_PORT_KEY_IPV4, port_be, connect);
	return true;
}

/* Reverse translation, shared by every reverse hook: the node address and
 * port this socket used where (addr_be, port_be) is a backend it was sent
 * to, so the application sees the address it used, not the backend. */
static __always_inline bool translate_source(struct bpf_sock_addr *ctx, __be32 addr_be, __be16 port_be,
					     __be32 *node_addr_be, __be16 *node_port_be)
{
	struct np_sock_xlat *st;
	__u32 i;

	st = bpf_sk_storage_get(&sock_xlat, ctx->sk, NULL, 0);
	if (!st)
		return false;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (st->slot[i].backend_addr_be == addr_be &&
		    st->slot[i].backend_port_be == port_be) {
			*node_addr_be = st->slot[i].node_addr_be;
			*node_port_be = st->slot[i].node_port_be;
			return true;
		}
	}
	return false;
}

/* --- AF_INET sockets --- */

/* user_port holds the port in network order in its low 16 bits. */
static __always_inline void translate_dest4(struct bpf_sock_addr *ctx, bool connect)
{
	__be32 addr_be;
	__be16 port_be;

	if (translate_dest(ctx, ctx->user_ip4, (__be16)ctx->user_port, connect, &addr_be, &port_be)) {
		ctx->user_ip4 = addr_be;
		ctx->user_port = port_be;
	}
}

static __always_inline void translate_source4(struct bpf_sock_addr *ctx)
{
	__be32 addr_be;
	__be16 port_be;

	if (translate_source(ctx, ctx->user_ip4, (__be16)ctx->user_port, &addr_be, &port_be)) {
		ctx->user_ip4 = addr_be;
		ctx->user_port = port_be;
	}
}

/* --- AF_INET6 sockets to IPv6 node addresses ---
 *
 * The same as the IPv4 hooks above over 128-bit addresses: [::1] seen from
 * the node's own netns, or an IPv6 address of the node from any netns, and a
 * port with an IPv6 backend (a client reaches the backend of its own family:
 * no NAT46/64). The translations go to `sock_xlat6`. user_ip6 is read and
 * written one 32-bit word at a time, the access the verifier allows. */
static __always_inline void read_user_ip6(const struct bpf_sock_addr *ctx, __be32 addr_be[4])
{
	addr_be[0] = ctx->user_ip6[0];
	addr_be[1] = ctx->user_ip6[1];
	addr_be[2] = ctx->user_ip6[2];
	addr_be[3] = ctx->user_ip6[3];
}

static __always_inline void write_user_ip6(struct bpf_sock_addr *ctx, const __be32 addr_be[4])
{
	ctx->user_ip6[0] = addr_be[0];
	ctx->user_ip6[1] = addr_be[1];
	ctx->user_ip6[2] = addr_be[2];
	ctx->user_ip6[3] = addr_be[3];
}

static __always_inline void copy_addr6(__be32 to[4], const __be32 from[4])
{
	to[0] = from[0];
	to[1] = from[1];
	to[2] = from[2];
	to[3] = from[3];
}

static __always_inline bool is_node_dest6(struct bpf_sock_addr *ctx, const __be32 addr_be[4])
{
	if (addr_be[0] == 0 && addr_be[1] == 0 && addr_be[2] == 0 && addr_be[3] == bpf_htonl(1))
		return bpf_get_netns_cookie(ctx) == node_netns_cookie(); /* ::1 */
	return is_node_addr(NP_FAMILY_IPV6, addr_be);
}

static __always_inline bool remember6(struct bpf_sock_addr *ctx, const __be32 node_addr_be[4], __be16 node_port_be,
				      const __be32 backend_addr_be[4], __be16 backend_port_be)
{
	struct np_sock_xlat6 *st;
	__u32 i, slot;

	st = bpf_sk_storage_get(&sock_xlat6, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return false;
	slot = NP_SOCK_XLAT_SLOTS;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (same_addr6(st->slot[i].backend_addr_be, backend_addr_be) &&
		    st->slot[i].backend_port_be == backend_port_be) {
			slot = i;
			break;
		}
	}
	if (slot == NP_SOCK_XLAT_SLOTS)
		slot = st->next++ % NP_SOCK_XLAT_SLOTS;
	copy_addr6(st->slot[slot].backend_addr_be, backend_addr_be);
	st->slot[slot].backend_port_be = backend_port_be;
	copy_addr6(st->slot[slot].node_addr_be, node_addr_be);
	st->slot[slot].node_port_be = node_port_be;
	return true;
}

/* The backend for a native IPv6 destination, as translate_dest gives it for
 * IPv4 (remembered, counted), or false. Nothing is written to ctx here: each
 * hook writes its result in one place (translate_connect6, ...), or clang
 * may merge two paths' stores into one through ctx + offset, which the
 * verifier refuses. */
static __always_inline bool dest6(struct bpf_sock_addr *ctx, bool connect, __be32 backend_be[4],
				  __be16 *backend_port_be)
{
	__be16 port_be = (__be16)ctx->user_port;
	const struct np_backend *be;
	__be32 dest_be[4];

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return false;
	be = lookup_backend(ctx->protocol, NP_FAMILY_IPV6, port_be);
	if (!be || !read_backend6(be, backend_be, backend_port_be)) {
		count_reason(NP_REASON_LOCAL_PORT_NOT_MAPPED);
		return false;
	}
	read_user_ip6(ctx, dest_be);
	if (!is_node_dest6(ctx, dest_be)) {
		count_reason(NP_REASON_LOCAL_NOT_NODE_DEST);
		return false;
	}
	if (!remember6(ctx, dest_be, port_be, backend_be, *backend_port_be))
		count_reason(NP_REASON_LOCAL_NO_STORAGE);
	count_local(ctx->protocol, NP_PORT_KEY_IPV6, port_be, connect);
	return true;
}

/* The node address and port a native IPv6 peer stands for (sock_xlat6), or false. */
static __always_inline bool source6(struct bpf_sock_addr *ctx, __be32 node_be[4], __be16 *node_port_be)
{
	__be16 port_be = (__be16)ctx->user_port;
	struct np_sock_xlat6 *st;
	__be32 from_be[4];
	__u32 i;

	st = bpf_sk_storage_get(&sock_xlat6, ctx->sk, NULL, 0);
	if (!st)
		return false;
	read_user_ip6(ctx, from_be);
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (same_addr6(st->slot[i].backend_addr_be, from_be) && st->slot[i].backend_port_be == port_be) {
			copy_addr6(node_be, st->slot[i].node_addr_be);
			*node_port_be = st->slot[i].node_port_be;
			return true;
		}
	}
	return false;
}

/* --- AF_INET6 sockets with v4-mapped addresses (::ffff:a.b.c.d) ---
 *
 * A dual-stack AF_INET6 socket (Java's default, .NET dual mode) reaching
 * ::ffff:127.0.0.1:PORT takes the kernel's IPv4 path inside the IPv6 socket:
 * connect4 never runs, connect6 does, with the mapped address. These hooks
 * translate its last four bytes exactly as the IPv4 hooks translate
 * user_ip4, and the reverse hooks map them back, so the application sees
 * ::ffff:<the address it used>. The connection itself is IPv4 on the wire
 * (the backend is IPv4), the same flow iptables' OUTPUT DNAT caught.
 * sendmsg6 never sees one: for a v4-mapped destination udpv6_sendmsg() hands
 * the datagram to udp_sendmsg() before its IPv6 hook, and sendmsg4
 * translates it there. */
static __always_inline bool is_v4_mapped(const struct bpf_sock_addr *ctx)
{
	return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 && ctx->user_ip6[2] == bpf_htonl(0xffff);
}

/* An IPv4 address as an AF_INET6 socket writes it: ::ffff:a.b.c.d. */
static __always_inline void v4_mapped(__be32 out_be[4], __be32 addr_be)
{
	out_be[0] = 0;
	out_be[1] = 0;
	out_be[2] = bpf_htonl(0xffff);
	out_be[3] = addr_be;
}

/* connect6 and sendmsg6 (`connect` says which): a v4-mapped destination
 * as its IPv4 address, any other as IPv6. */
static __always_inline void translate_dest6(struct bpf_sock_addr *ctx, bool connect)
{
	__be32 out_be[4], addr_be;
	__be16 port_be;

	if (is_v4_mapped(ctx)) {
		if (!translate_dest(ctx, ctx->user_ip6[3], (__be16)ctx->user_port, connect, &addr_be, &port_be))
			return;
		v4_mapped(out_be, addr_be);
	} else if (!dest6(ctx, connect, out_be, &port_be)) {
		return;
	}
	write_user_ip6(ctx, out_be);
	ctx->user_port = port_be;
}

static __always_inline void translate_source6(struct bpf_sock_addr *ctx)
{
	__be32 out_be[4], addr_be;
	__be16 port_be;

	if (is_v4_mapped(ctx)) {
		if (!translate_source(ctx, ctx->user_ip6[3], (__be16)ctx->user_port, &addr_be, &port_be))
			return;
		v4_mapped(out_be, addr_be);
	} else if (!source6(ctx, out_be, &port_be)) {
		return;
	}
	write_user_ip6(ctx, out_be);
	ctx->user_port = port_be;
}

SEC("cgroup/connect4")
int np_connect4(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_dest4(ctx, true);
	return ALLOW;
}

SEC("cgroup/sendmsg4")
int np_sendmsg4(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_dest4(ctx, false);
	return ALLOW;
}

SEC("cgroup/recvmsg4")
int np_recvmsg4(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_source4(ctx);
	return ALLOW;
}

SEC("cgroup/getpeername4")
int np_getpeername4(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_source4(ctx);
	return ALLOW;
}

SEC("cgroup/connect6")
int np_connect6(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_dest6(ctx, true);
	return ALLOW;
}

SEC("cgroup/sendmsg6")
int np_sendmsg6(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	/* A v4-mapped destination never comes here (see above): sendmsg4 has it. */
	if (!is_v4_mapped(ctx))
		translate_dest6(ctx, false);
	return ALLOW;
}

SEC("cgroup/recvmsg6")
int np_recvmsg6(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_source6(ctx);
	return ALLOW;
}

SEC("cgroup/getpeername6")
int np_getpeername6(struct bpf_sock_addr *ctx)
{
	NP_TEST_VARIANT_MARK();
	translate_source6(ctx);
	return ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
