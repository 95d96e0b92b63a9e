// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Local forwarding: cgroup socket-address hooks translate a node address and
 * node port into the backend once, when the socket connects or sends, so the
 * packets of the connection pay nothing afterwards.
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

/* Forward translation, shared by connect4 and sendmsg4; `connect` says
 * which, for the port's counters. */
static __always_inline void translate_dest4(struct bpf_sock_addr *ctx, bool connect)
{
	__be32 addr_be = ctx->user_ip4;
	/* user_port holds the port in network order in its low 16 bits */
	__be16 port_be = (__be16)ctx->user_port;
	const struct np_backend *be;
	struct np_port_counters *c;
	__be32 backend_addr_be;
	__be16 backend_port_be;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return;
	be = lookup_port(ctx->protocol, port_be);
	/* One read: the socket goes to the backend it remembers for replies
	 * (and that `set` finds when it ends the old backend's sockets). */
	if (!be || !read_backend4(be, &backend_addr_be, &backend_port_be)) {
		count_reason(NP_REASON_LOCAL_PORT_NOT_MAPPED);
		return;
	}
	if (!is_node_dest4(ctx, addr_be)) {
		count_reason(NP_REASON_LOCAL_NOT_NODE_DEST);
		return;
	}

	ctx->user_ip4 = backend_addr_be;
	ctx->user_port = backend_port_be;
	if (!remember(ctx, addr_be, port_be, backend_addr_be, backend_port_be))
		count_reason(NP_REASON_LOCAL_NO_STORAGE);
	c = port_counters_of(ctx->protocol, port_be);
	if (c) {
		if (connect)
			c->local_connects += 1;
		else
			c->local_sends += 1;
	}
}

/* Reverse translation, shared by getpeername4 and recvmsg4: the application
 * sees the node address it used, not the backend. */
static __always_inline void translate_source4(struct bpf_sock_addr *ctx)
{
	struct np_sock_xlat *st;
	__be32 addr_be = ctx->user_ip4;
	__be16 port_be = (__be16)ctx->user_port;
	__u32 i;

	st = bpf_sk_storage_get(&sock_xlat, ctx->sk, NULL, 0);
	if (!st)
		return;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (st->slot[i].backend_addr_be == addr_be &&
		    st->slot[i].backend_port_be == port_be) {
			ctx->user_ip4 = st->slot[i].node_addr_be;
			ctx->user_port = st->slot[i].node_port_be;
			return;
		}
	}
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
