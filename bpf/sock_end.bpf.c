// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Ending the node's sockets that a redeploy left talking to a dead sandbox.
 *
 * connect4 translates a socket once. A node process that keeps a connected
 * UDP socket to 127.0.0.1:PORT (or a TCP connection) would otherwise go on
 * sending to the old backend for as long as it keeps the socket. When `set`
 * replaces a port's backend, or `del` removes it, the loader writes the old
 * backend into `sock_end_request` and reads one of these socket iterators:
 * every socket of the calling network namespace that is connected to the old
 * backend through a translation nodeport made for that node port (its
 * `sock_xlat` says so) is ended with bpf_sock_destroy(). The application
 * sees ECONNABORTED and, like after any network error, connects again, which
 * connect4 now sends to the current backend. Sockets nodeport did not
 * translate, and sockets of other node ports, are never touched.
 *
 * bpf_sock_destroy() is a kfunc of Linux >= 6.5; on older kernels this object
 * does not load and `load` goes on without it (the README says what then).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sock_xlat.bpf.h"

#define NP_AF_INET         2
#define NP_TCP_ESTABLISHED 1 /* also "connected" for UDP sockets */

extern int bpf_sock_destroy(struct sock_common *sk) __weak __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_sock_end_request);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_end_request SEC(".maps");

/* True when socket `sk` (with its common part `skc`) is connected to the
 * requested backend and got there through nodeport's translation of the
 * requested node port. */
static __always_inline bool is_requested(struct sock *sk, struct sock_common *skc,
					 const struct np_sock_end_request *req)
{
	struct np_sock_xlat *st;
	__u32 i;

	if (skc->skc_family != NP_AF_INET || skc->skc_daddr != req->backend_addr_be ||
	    skc->skc_dport != req->backend_port_be)
		return false;
	st = bpf_sk_storage_get(&sock_xlat, sk, NULL, 0);
	if (!st)
		return false; /* connected there directly, not through nodeport */
	for (i = 0; i < NP_SOCK_XLAT_SLOTS; i++)
		if (st->slot[i].backend_addr_be == req->backend_addr_be &&
		    st->slot[i].backend_port_be == req->backend_port_be &&
		    st->slot[i].node_port_be == req->node_port_be)
			return true;
	return false;
}

static __always_inline struct np_sock_end_request *request(__u8 proto)
{
	__u32 zero = 0;
	struct np_sock_end_request *req = bpf_map_lookup_elem(&sock_end_request, &zero);

	return req && req->proto == proto ? req : NULL;
}

SEC("iter/udp")
int np_end_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	struct np_sock_end_request *req;
	struct sock *sk;

	if (!udp_sk)
		return 0; /* the end of the walk */
	req = request(IPPROTO_UDP);
	if (!req)
		return 0;
	sk = (struct sock *)udp_sk;
	if (sk->__sk_common.skc_state != NP_TCP_ESTABLISHED)
		return 0; /* unconnected: sendmsg4 translates each datagram anew */
	if (is_requested(sk, &sk->__sk_common, req) && bpf_sock_destroy(&sk->__sk_common) == 0)
		req->ended++;
	return 0;
}

SEC("iter/tcp")
int np_end_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct np_sock_end_request *req;
	struct tcp_sock *tp;

	if (!skc)
		return 0;
	req = request(IPPROTO_TCP);
	if (!req)
		return 0;
	/* Full sockets only: TIME_WAIT and request sockets have no storage
	 * and nothing to end. */
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	if (is_requested((struct sock *)tp, skc, req) && bpf_sock_destroy(skc) == 0)
		req->ended++;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
