/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The `flows` table of the external datapath: two entries per NATed flow
 * (layout and meaning in include/nodeport/abi.h), and the operations the TC
 * programs do on it. Only bpf/tc.bpf.c includes this. */
#ifndef NODEPORT_FLOWS_BPF_H
#define NODEPORT_FLOWS_BPF_H

#include "nodeport/abi.h"
#include "packet.bpf.h"

/* LRU: a flow whose FIN/RST we never saw (peer vanished, packet lost) is
 * evicted under pressure instead of filling the table for good. Pinned by
 * name so `nodeport flows` can read it and a reload keeps live flows. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_FLOWS);
	__type(key, struct np_flow_key);
	__type(value, struct np_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

/* last_seen_ns is written at most this often: each write dirties a cache
 * line that every CPU handling the flow then has to fetch again. */
#define NP_FLOW_TOUCH_NS 1000000000ULL

/* Key of the entry an ingress packet (client -> node) would match. */
static __always_inline struct np_flow_key to_backend_key(const struct pkt4 *p)
{
	return (struct np_flow_key){
		.client_addr_be = p->saddr_be,
		.peer_addr_be = p->daddr_be,
		.client_port_be = p->sport_be,
		.peer_port_be = p->dport_be,
		.proto = p->proto,
		.dir = NP_FLOW_TO_BACKEND,
	};
}

/* Key of the entry an egress reply (backend -> client) would match. */
static __always_inline struct np_flow_key to_client_key(const struct pkt4 *p)
{
	return (struct np_flow_key){
		.client_addr_be = p->daddr_be,
		.peer_addr_be = p->saddr_be,
		.client_port_be = p->dport_be,
		.peer_port_be = p->sport_be,
		.proto = p->proto,
		.dir = NP_FLOW_TO_CLIENT,
	};
}

/* The other direction's key: this entry's value is that entry's peer. */
static __always_inline struct np_flow_key partner_key(const struct np_flow_key *key, const struct np_flow *f)
{
	return (struct np_flow_key){
		.client_addr_be = key->client_addr_be,
		.peer_addr_be = f->addr_be,
		.client_port_be = key->client_port_be,
		.peer_port_be = f->port_be,
		.proto = key->proto,
		.dir = key->dir == NP_FLOW_TO_BACKEND ? NP_FLOW_TO_CLIENT : NP_FLOW_TO_BACKEND,
	};
}

/* Idle entries are dead, whatever their state. Written as `now > last +
 * idle` and not `now - last > idle`: another CPU may have stored a
 * last_seen_ns a little later than our `now`, and the subtraction would wrap
 * to a huge idle time. */
static __always_inline bool flow_idle(const struct np_flow *f, __u64 now, __u64 idle_ns)
{
	return now > f->last_seen_ns + idle_ns;
}

static __always_inline void flow_mark(struct np_flow *f, __u64 now, bool closing)
{
	f->last_seen_ns = now;
	if (closing)
		f->state = NP_FLOW_CLOSING;
}

/* A packet matched entry `f` under `key`: refresh it and its partner (so a
 * one-way stream keeps the reply direction alive too), and mark both CLOSING
 * on TCP FIN or RST. Racing CPUs write the same values, so no lock. */
static __always_inline void flow_touch(const struct np_flow_key *key, struct np_flow *f, __u64 now,
				       bool closing)
{
	struct np_flow_key other_key;
	struct np_flow *other;

	if (!closing && now < f->last_seen_ns + NP_FLOW_TOUCH_NS)
		return;
	flow_mark(f, now, closing);
	other_key = partner_key(key, f);
	other = bpf_map_lookup_elem(&flows, &other_key);
	if (other)
		flow_mark(other, now, closing);
}

/* Records a new flow: the client in `p` sent to the node address/port in
 * `p`, and goes to `backend`. The reply entry is written first: a forward
 * entry without it would send traffic whose replies leave untranslated.
 * Returns false, recording nothing, when the table is full or when another
 * live flow already uses the reply key (the same client addr/port reaching
 * the same backend through another node address or port): the replies of the
 * two could not be told apart, so the second is not translated. */
static __always_inline bool flow_create(const struct pkt4 *p, __be32 backend_addr_be, __be16 backend_port_be,
					__u64 now, __u64 idle_ns)
{
	struct np_flow_key fwd_key = to_backend_key(p);
	struct np_flow_key rev_key = {
		.client_addr_be = p->saddr_be,
		.peer_addr_be = backend_addr_be,
		.client_port_be = p->sport_be,
		.peer_port_be = backend_port_be,
		.proto = p->proto,
		.dir = NP_FLOW_TO_CLIENT,
	};
	struct np_flow fwd = {
		.addr_be = backend_addr_be,
		.port_be = backend_port_be,
		.state = NP_FLOW_OPEN,
		.last_seen_ns = now,
	};
	struct np_flow rev = {
		.addr_be = p->daddr_be,
		.port_be = p->dport_be,
		.state = NP_FLOW_OPEN,
		.last_seen_ns = now,
	};
	struct np_flow *old = bpf_map_lookup_elem(&flows, &rev_key);

	if (old && old->state == NP_FLOW_OPEN && !flow_idle(old, now, idle_ns) &&
	    (old->addr_be != p->daddr_be || old->port_be != p->dport_be))
		return false;
	if (bpf_map_update_elem(&flows, &rev_key, &rev, BPF_ANY))
		return false;
	return bpf_map_update_elem(&flows, &fwd_key, &fwd, BPF_ANY) == 0;
}

#endif /* NODEPORT_FLOWS_BPF_H */
