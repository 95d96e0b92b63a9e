// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Ending the node's sockets that a redeploy left talking to a dead sandbox.
 * IPv4 backends in `sock_end_targets`, IPv6 ones in `sock_end_targets6`,
 * each found through its own translations (`sock_xlat`, `sock_xlat6`).
 *
 * connect4 translates a socket once. A node process that keeps a connected
 * UDP socket to 127.0.0.1:PORT (or a TCP connection) would otherwise go on
 * sending to the old backend for as long as it keeps the socket. When `set`,
 * `del` or `sync` replace or remove backends, the loader puts them into
 * `sock_end_targets` and reads one of these socket iterators: every socket of
 * the calling network namespace connected to a target's backend, through a
 * translation nodeport made for the target's node port (its `sock_xlat` says
 * so), is ended with bpf_sock_destroy() and counted with one byte of output.
 * The application sees ECONNABORTED and, like after any network error,
 * connects again, which connect4 now sends to the current backend. Sockets
 * nodeport did not translate, and sockets of other node ports, are never
 * touched.
 *
 * bpf_sock_destroy() is a kfunc of Linux >= 6.5; on older kernels this object
 * does not load and `load` goes on without it (docs/how-it-works.md says what then).
 */
#include "uapi.bpf.h"
#include <linux/in6.h>
#include "sock_end_core.bpf.h" /* the kernel structs it reads, by CO-RE */
#include "sock_xlat.bpf.h"

#define NP_AF_INET         2
#define NP_AF_INET6        10
#define NP_TCP_ESTABLISHED 1 /* also "connected" for UDP sockets */
#define NP_TCP_CLOSE       7
#define NP_TCP_LISTEN      10

extern int bpf_sock_destroy(struct sock_common *sk) __weak __ksym;

/* Filled by a loader holding the pin directory lock; empty otherwise, but
 * for what a write killed before its walk left (the next write walks it).
 * NO_PREALLOC: memory only for what a sync replaces. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NP_MAX_SOCK_END_TARGETS);
	__type(key, struct np_sock_end_target);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_end_targets SEC(".maps");

/* The same for replaced IPv6 backends (np_sock_end_target6). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NP_MAX_SOCK_END_TARGETS);
	__type(key, struct np_sock_end_target6);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_end_targets6 SEC(".maps");

/* What set, del and sync replaced, for `del --owner ID --drain` (abi.h).
 * Declared here, beside the iterators that drain reads, so that the one
 * object created for drain carries it; no program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_REPLACED_BACKENDS);
	__type(key, struct np_sock_end_target);
	__type(value, struct np_replaced_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} replaced_backends SEC(".maps");

/* The same for replaced IPv6 backends (np_sock_end_target6): a map of its
 * own, as sock_end_targets6, so that the IPv4 key keeps its layout. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_REPLACED_BACKENDS);
	__type(key, struct np_sock_end_target6);
	__type(value, struct np_replaced_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} replaced_backends6 SEC(".maps");

/* The translations the socket hooks recorded for socket `sk` (with its
 * common part `skc`), or NULL when it got its peer without nodeport. */
static __always_inline struct np_sock_xlat *translations(struct sock *sk, struct sock_common *skc)
{
	/* AF_INET6 too: a dual-stack socket that connect6 translated through a
	 * v4-mapped address runs IPv4 inside, and the kernel keeps its IPv4
	 * peer in skc_daddr as for an AF_INET socket. A socket connected to a
	 * plain IPv6 peer never matches a slot: its skc_daddr is a placeholder
	 * (127.0.0.6), and the slots hold the IPv4 backends nodeport chose. */
	if (skc->skc_family != NP_AF_INET && skc->skc_family != NP_AF_INET6)
		return NULL;
	return bpf_sk_storage_get(&sock_xlat, sk, NULL, 0);
}

/* True when slot `i` of `st` is the translation that gave the socket its peer. */
static __always_inline bool slot_is_peer(const struct np_sock_xlat *st, __u32 i, const struct sock_common *skc)
{
	return st->slot[i].backend_addr_be == skc->skc_daddr && st->slot[i].backend_port_be == skc->skc_dport;
}

/* The `sock_xlat6` translations of AF_INET6 socket `sk`, with its IPv6
 * peer copied to `peer`; NULL when it has none or is not AF_INET6. */
static __always_inline struct np_sock_xlat6 *translations6(struct sock *sk, struct sock_common *skc, __be32 peer[4])
{
	if (skc->skc_family != NP_AF_INET6)
		return NULL;
	peer[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
	peer[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
	peer[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
	peer[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	return bpf_sk_storage_get(&sock_xlat6, sk, NULL, 0);
}

/* True when slot `i` of `st` is the translation that gave the socket its
 * IPv6 peer `peer`:`port_be`. */
static __always_inline bool slot6_is_peer(const struct np_sock_xlat6 *st, __u32 i, const __be32 peer[4],
					  __be16 port_be)
{
	return st->slot[i].backend_port_be == port_be && same_addr6(st->slot[i].backend_addr_be, peer);
}

/* True when AF_INET6 socket `sk` is connected to a plain IPv6 peer that a
 * `sock_xlat6` translation gave it, and that backend is a target for the
 * translation's node port. */
static __always_inline bool is_target6(struct sock *sk, struct sock_common *skc, __u8 proto)
{
	struct np_sock_end_target6 key = { .backend_port_be = skc->skc_dport, .proto = proto };
	struct np_sock_xlat6 *st = translations6(sk, skc, key.backend_addr_be);
	__u32 i;

	if (!st)
		return false;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (!slot6_is_peer(st, i, key.backend_addr_be, key.backend_port_be))
			continue;
		key.node_port_be = st->slot[i].node_port_be;
		if (bpf_map_lookup_elem(&sock_end_targets6, &key))
			return true;
	}
	return false;
}

/* True when socket `sk` is connected to a target's backend and got there
 * through nodeport's translation of that target's node port. */
static __always_inline bool is_target(struct sock *sk, struct sock_common *skc, __u8 proto)
{
	struct np_sock_end_target key = {
		.backend_addr_be = skc->skc_daddr, .backend_port_be = skc->skc_dport, .proto = proto
	};
	struct np_sock_xlat *st = translations(sk, skc);
	__u32 i;

	if (!st)
		return false; /* connected directly, not through nodeport */
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (!slot_is_peer(st, i, skc))
			continue;
		key.node_port_be = st->slot[i].node_port_be;
		if (bpf_map_lookup_elem(&sock_end_targets, &key))
			return true;
	}
	return false;
}

/* Ends the socket and writes one byte for the loader to count. */
static __always_inline void end(struct seq_file *seq, struct sock_common *skc)
{
	__u8 one = 1;

	if (bpf_sock_destroy(skc) == 0)
		bpf_seq_write(seq, &one, sizeof(one));
}

SEC("iter/udp")
int np_end_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	struct sock *sk;

	if (!udp_sk)
		return 0; /* the end of the walk */
	sk = (struct sock *)udp_sk;
	if (sk->__sk_common.skc_state != NP_TCP_ESTABLISHED)
		return 0; /* unconnected: sendmsg4 translates each datagram anew */
	if (is_target(sk, &sk->__sk_common, IPPROTO_UDP) || is_target6(sk, &sk->__sk_common, IPPROTO_UDP))
		end(ctx->meta->seq, &sk->__sk_common);
	return 0;
}

SEC("iter/tcp")
int np_end_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;

	if (!skc)
		return 0;
	/* Full sockets only: TIME_WAIT and request sockets have no storage
	 * and nothing to end. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (tp && (is_target((struct sock *)tp, skc, IPPROTO_TCP) || is_target6((struct sock *)tp, skc, IPPROTO_TCP)))
		end(ctx->meta->seq, skc);
	return 0;
}

/* Counting the node's live connections per backend (`nodeport drain`, `get`,
 * `list`), ending nothing: each socket of the calling network namespace
 * connected to its peer through a translation the hooks made (a slot of its
 * `sock_xlat` names that peer) is written out as an np_local_conn; user space
 * adds them up. Live: TCP from SYN_SENT until the socket is closed (a
 * half-closed connection still carries data; TIME_WAIT sockets are not full
 * sockets), UDP while connected (an unconnected socket's next datagram is
 * translated anew by sendmsg4). An iterator over `sock_xlat` itself
 * (iter/bpf_sk_storage_map) would visit only translated sockets, in every
 * namespace, but this kernel refuses to load one (EPERM, even the selftests'
 * shape): so these walk one namespace's sockets, as np_end_* do. */
static __always_inline void count_live(struct seq_file *seq, struct sock *sk, struct sock_common *skc, __u8 proto)
{
	struct np_local_conn out = { .proto = proto, .state = skc->skc_state };
	struct np_sock_xlat *st = translations(sk, skc);
	__u32 i;

	if (!st)
		return;
	out.backend_addr_be = skc->skc_daddr;
	out.backend_port_be = skc->skc_dport;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (!slot_is_peer(st, i, skc))
			continue;
		out.node_port_be = st->slot[i].node_port_be;
		bpf_seq_write(seq, &out, sizeof(out));
		return;
	}
}

/* The socket an iterator step gives, when it is live as counted: a
 * connected UDP socket; a full TCP socket neither closed nor listening. NULL
 * otherwise, and at the end of the walk. */
static __always_inline struct sock *live_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;

	return sk && sk->__sk_common.skc_state == NP_TCP_ESTABLISHED ? sk : NULL;
}

static __always_inline struct sock *live_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	__u8 state;

	if (!skc)
		return NULL;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return NULL; /* TIME_WAIT and request sockets */
	state = skc->skc_state;
	return state != NP_TCP_CLOSE && state != NP_TCP_LISTEN ? (struct sock *)tp : NULL;
}

SEC("iter/udp")
int np_count_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = live_udp(ctx);

	if (sk)
		count_live(ctx->meta->seq, sk, &sk->__sk_common, IPPROTO_UDP);
	return 0;
}

SEC("iter/tcp")
int np_count_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock *sk = live_tcp(ctx);

	if (sk)
		count_live(ctx->meta->seq, sk, &sk->__sk_common, IPPROTO_TCP);
	return 0;
}

/* The same for AF_INET6 sockets connected to a plain IPv6 peer through a
 * `sock_xlat6` translation, written out as np_local_conn6 records by
 * programs of their own: np_count_* keep their output, which a CLI of an
 * older version reads as np_local_conn records only. */
static __always_inline void count_live6(struct seq_file *seq, struct sock *sk, struct sock_common *skc, __u8 proto)
{
	struct np_local_conn6 out = { .backend_port_be = skc->skc_dport, .proto = proto, .state = skc->skc_state };
	struct np_sock_xlat6 *st = translations6(sk, skc, out.backend_addr_be);
	__u32 i;

	if (!st)
		return;
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++) {
		if (!slot6_is_peer(st, i, out.backend_addr_be, out.backend_port_be))
			continue;
		out.node_port_be = st->slot[i].node_port_be;
		bpf_seq_write(seq, &out, sizeof(out));
		return;
	}
}

SEC("iter/udp")
int np_count6_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = live_udp(ctx);

	if (sk)
		count_live6(ctx->meta->seq, sk, &sk->__sk_common, IPPROTO_UDP);
	return 0;
}

SEC("iter/tcp")
int np_count6_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock *sk = live_tcp(ctx);

	if (sk)
		count_live6(ctx->meta->seq, sk, &sk->__sk_common, IPPROTO_TCP);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
