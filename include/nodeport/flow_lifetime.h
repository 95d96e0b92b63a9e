/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * How long a flow entry lives without a packet: the one rule the TC programs
 * expire entries by (bpf/flows.bpf.h) and `nodeport flows` and the drain
 * count them by (loader/flows/flows.cpp). Compiled by both, so they cannot
 * disagree; the Go package, which cannot include C, is held to the same
 * cases by tests/conformance/flow_lifetime.json.
 */
#ifndef NODEPORT_FLOW_LIFETIME_H
#define NODEPORT_FLOW_LIFETIME_H

#include "nodeport/abi.h"

#if defined(__bpf__)
#define NP_RULE static __always_inline
#else
#define NP_RULE static inline
#endif

#define NP_NSEC_PER_SEC 1000000000ULL

/* The lifetime of an entry (ns) in state `state` (NP_FLOW_*) of a UDP
 * (`udp` != 0) or TCP flow, from the lifetimes `load` wrote (`t`; NULL, which
 * only a failed map lookup gives: their defaults). */
NP_RULE __u64 np_flow_lifetime_ns(const struct np_flow_timeouts *t, int udp, __u8 state)
{
	if (udp)
		return t ? t->udp_idle_ns : NP_DEFAULT_UDP_IDLE_S * NP_NSEC_PER_SEC;
	if (state == NP_FLOW_SYN_SENT)
		return t ? t->tcp_syn_ns : NP_DEFAULT_TCP_SYN_S * NP_NSEC_PER_SEC;
	/* A picked-up flow lives as long as a closing one: its segment may be the
	 * late ACK of a connection long closed (bpf/tc.bpf.c, tcp_pick_up). */
	if (state == NP_FLOW_FIN_WAIT || state == NP_FLOW_PICKED_UP)
		return t ? t->tcp_closing_ns : NP_DEFAULT_TCP_CLOSING_S * NP_NSEC_PER_SEC;
	return t ? t->tcp_established_ns : NP_DEFAULT_TCP_ESTABLISHED_S * NP_NSEC_PER_SEC;
}

/* True while an entry last seen at `last_seen_ns` is live at `now_ns` (both
 * on the programs' clock). Written as `now > last + lifetime` and not
 * `now - last > lifetime`: another CPU may have stored a last_seen_ns a
 * little later than our `now`, and the subtraction would wrap to a huge idle
 * time. */
NP_RULE int np_flow_live(const struct np_flow_timeouts *t, int udp, __u8 state, __u64 last_seen_ns, __u64 now_ns)
{
	return !(now_ns > last_seen_ns + np_flow_lifetime_ns(t, udp, state));
}

#undef NP_RULE

#endif /* NODEPORT_FLOW_LIFETIME_H */
