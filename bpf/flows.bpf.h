/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The flow tables of the external datapath: two entries per NATed flow, in
 * one of three tables (layout, meaning and why three: include/nodeport/abi.h),
 * and the operations the TC programs do on them. Only bpf/tc.bpf.c includes
 * this. */
#ifndef NODEPORT_FLOWS_BPF_H
#define NODEPORT_FLOWS_BPF_H

#include "nodeport/abi.h"
#include "packet.bpf.h"

/* LRU: a flow whose end we never saw (peer vanished, packet lost) is evicted
 * under pressure instead of filling its table for good. Pinned by name so
 * `nodeport flows` can read them and a reload keeps live flows. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_FLOWS);
	__type(key, struct np_flow_key);
	__type(value, struct np_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_CLOSED_FLOWS);
	__type(key, struct np_flow_key);
	__type(value, struct np_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} closed_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_UDP_FLOWS);
	__type(key, struct np_flow_key);
	__type(value, struct np_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} udp_flows SEC(".maps");

/* What the node itself sent from a mapped node port (include/nodeport/abi.h).
 * LRU: a forgotten entry only means that an answer arriving after it was
 * pushed out is taken for a client; 16,384 conversations is far more than a
 * node keeps on its node ports. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_NODE_UDP);
	__type(key, struct np_flow_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} node_udp SEC(".maps");

/* Lifetimes, written by `load` (LoadOptions::timeouts). An expired entry is
 * inert: its packets pass untouched, and a SYN (or, for UDP, any datagram)
 * on its tuple is decided afresh. A map, not rodata, so `nodeport flows` can
 * say when a flow expires. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_flow_timeouts);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_timeouts SEC(".maps");

#define NSEC_PER_SEC 1000000000ULL

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

/* The other direction's value: this entry's peer, with the same state. */
static __always_inline struct np_flow partner_value(const struct np_flow_key *key, const struct np_flow *f)
{
	return (struct np_flow){
		.addr_be = key->peer_addr_be,
		.port_be = key->peer_port_be,
		.state = f->state,
		.fin_seen = f->fin_seen,
		.last_seen_ns = f->last_seen_ns,
	};
}

/* Which table an entry was found in. Passed as a constant and turned into
 * the map at each helper call: the verifier tracks one map per call site, and
 * comparing map pointers at run time is not something to rely on. */
enum flow_table { FLOWS_TCP, FLOWS_TCP_CLOSED, FLOWS_UDP };

static __always_inline void *flow_map(enum flow_table t)
{
	if (t == FLOWS_UDP)
		return &udp_flows;
	if (t == FLOWS_TCP_CLOSED)
		return &closed_flows;
	return &flows;
}

/* How long an entry of table `t` in its state lives without a packet (in
 * `closed_flows`: after the close). The fallbacks, used only if the array
 * lookup failed, are the defaults `load` writes. */
static __always_inline __u64 udp_idle_ns(void)
{
	__u32 zero = 0;
	const struct np_flow_timeouts *to = bpf_map_lookup_elem(&flow_timeouts, &zero);

	return to ? to->udp_idle_ns : NP_DEFAULT_UDP_IDLE_S * NSEC_PER_SEC;
}

static __always_inline __u64 flow_lifetime(enum flow_table t, const struct np_flow *f)
{
	__u32 zero = 0;
	const struct np_flow_timeouts *to;

	if (t == FLOWS_UDP)
		return udp_idle_ns();
	to = bpf_map_lookup_elem(&flow_timeouts, &zero);
	if (t == FLOWS_TCP_CLOSED || f->state == NP_FLOW_FIN_WAIT || f->state == NP_FLOW_PICKED_UP)
		return to ? to->tcp_closing_ns : NP_DEFAULT_TCP_CLOSING_S * NSEC_PER_SEC;
	if (f->state == NP_FLOW_SYN_SENT)
		return to ? to->tcp_syn_ns : NP_DEFAULT_TCP_SYN_S * NSEC_PER_SEC;
	return to ? to->tcp_established_ns : NP_DEFAULT_TCP_ESTABLISHED_S * NSEC_PER_SEC;
}

/* Written as `now > last + lifetime` and not `now - last > lifetime`: another
 * CPU may have stored a last_seen_ns a little later than our `now`, and the
 * subtraction would wrap to a huge idle time. */
static __always_inline bool flow_expired(enum flow_table t, const struct np_flow *f, __u64 now)
{
	return now > f->last_seen_ns + flow_lifetime(t, f);
}

/* The live entry under `key`, from the table that keeps its kind of flow
 * (TCP: `flows`, then `closed_flows`; UDP: `udp_flows`), or NULL when there is
 * none or it expired. For packets that only read a flow's translation and
 * change nothing about it (ICMP errors): the one place that knows which
 * tables to look in. */
static __always_inline const struct np_flow *flow_find(const struct np_flow_key *key, __u64 now)
{
	const struct np_flow *f;

	if (key->proto == IPPROTO_UDP) {
		f = bpf_map_lookup_elem(&udp_flows, key);
		return f && !flow_expired(FLOWS_UDP, f, now) ? f : NULL;
	}
	f = bpf_map_lookup_elem(&flows, key);
	if (f)
		return flow_expired(FLOWS_TCP, f, now) ? NULL : f;
	f = bpf_map_lookup_elem(&closed_flows, key);
	return f && !flow_expired(FLOWS_TCP_CLOSED, f, now) ? f : NULL;
}

/* Writes both entries of a flow: `key` -> `f` and its partner. The partner
 * first: when `key` is the forward entry, a forward entry without its reply
 * entry would send traffic whose replies leave untranslated. */
static __always_inline bool flow_pair_put(enum flow_table t, const struct np_flow_key *key, const struct np_flow *f)
{
	void *map = flow_map(t);
	struct np_flow_key other_key = partner_key(key, f);
	struct np_flow other = partner_value(key, f);

	if (bpf_map_update_elem(map, &other_key, &other, BPF_ANY))
		return false;
	return bpf_map_update_elem(map, key, f, BPF_ANY) == 0;
}

/* Deletes both entries of the flow whose entry `key` holds `f` (a copy: the
 * map value is gone after the first delete). */
static __always_inline void flow_pair_delete(enum flow_table t, const struct np_flow_key *key, struct np_flow f)
{
	void *map = flow_map(t);
	struct np_flow_key other_key = partner_key(key, &f);

	bpf_map_delete_elem(map, &other_key);
	bpf_map_delete_elem(map, key);
}

/* A packet matched entry `f` under `key`: refreshes it and its partner at
 * most once a second, so a one-way stream keeps the reply direction alive
 * too. A partner the LRU evicted is written again from this entry, so a
 * flow never stays split. Racing CPUs write the same values, so no lock. */
static __always_inline void flow_touch(enum flow_table t, const struct np_flow_key *key, struct np_flow *f,
				       __u64 now)
{
	void *map = flow_map(t);
	struct np_flow_key other_key;
	struct np_flow *other;
	struct np_flow rebuilt;

	if (now < f->last_seen_ns + NP_FLOW_TOUCH_NS)
		return;
	f->last_seen_ns = now;
	other_key = partner_key(key, f);
	other = bpf_map_lookup_elem(map, &other_key);
	if (other) {
		other->last_seen_ns = now;
		return;
	}
	rebuilt = partner_value(key, f);
	bpf_map_update_elem(map, &other_key, &rebuilt, BPF_NOEXIST);
}

/* Sets the state of both entries of a live TCP flow. Byte stores: the state
 * shares a word with fin_seen, which only flow_add_fin() writes. */
static __always_inline void flow_set_state(const struct np_flow_key *key, struct np_flow *f, __u8 state, __u64 now)
{
	struct np_flow_key other_key = partner_key(key, f);
	struct np_flow *other = bpf_map_lookup_elem(&flows, &other_key);

	f->state = state;
	f->last_seen_ns = now;
	if (other) {
		other->state = state;
		other->last_seen_ns = now;
	}
}

/* The word of an entry that holds port_be, state and fin_seen. */
union np_flow_word {
	__u32 word;
	struct {
		__be16 port_be;
		__u8 state;
		__u8 fin_seen;
	};
};

/* Notes a FIN from `fin_from` and returns every side's FIN seen so far. The
 * bits count in the forward entry, OR-ed in atomically: the two FINs of a
 * close often cross on two CPUs, and with a plain read-modify-write each
 * would keep only its own bit, leaving the flow half closed for good (448 of
 * 200,000 connections did). */
static __always_inline __u8 flow_add_fin(const struct np_flow_key *key, struct np_flow *f, __u8 fin_from)
{
	struct np_flow_key fwd_key;
	struct np_flow *fwd = f;
	union np_flow_word bit = { .fin_seen = fin_from }, old;

	if (key->dir != NP_FLOW_TO_BACKEND) {
		fwd_key = partner_key(key, f);
		fwd = bpf_map_lookup_elem(&flows, &fwd_key);
		if (!fwd)
			return fin_from;
	}
	old.word = __sync_fetch_and_or((__u32 *)&fwd->port_be, bit.word);
	return old.fin_seen | fin_from;
}

/* The TCP state machine, for a packet that is not a SYN and matched the live
 * entry `f` under `key`. `fin_from` says which side sent it. The caller has
 * copied the translation out of `f`: the entry may be gone afterwards.
 *  - RST: the connection is over; both entries go at once.
 *  - FIN: noted per side; FIN from both sides moves the flow to
 *    `closed_flows` (TIME_WAIT) where it lives tcp_closing_ns, not longer,
 *    and never pushes out a live flow. It must live on: both sides may have
 *    closed at once, and then each still sends an ACK, which only sequence
 *    numbers (not kept here) could tell from a final one.
 *  - the client's first packet after its SYN: the handshake is done (OPEN);
 *    from now on a SYN-ACK on this tuple is not ours to translate. */
static __always_inline void tcp_track(const struct np_flow_key *key, struct np_flow *f, const struct pkt4 *p,
				      __u8 fin_from, __u64 now)
{
	if (p->tcp_flags & NP_TCP_RST) {
		flow_pair_delete(FLOWS_TCP, key, *f);
		return;
	}
	if (p->tcp_flags & NP_TCP_FIN) {
		__u8 fin_seen = flow_add_fin(key, f, fin_from);

		if (fin_seen == (NP_FIN_FROM_CLIENT | NP_FIN_FROM_BACKEND)) {
			struct np_flow closed = *f;

			closed.state = NP_FLOW_TIME_WAIT;
			closed.fin_seen = fin_seen;
			closed.last_seen_ns = now;
			/* Inserted before the live pair goes, so a packet on
			 * another CPU finds one or the other. */
			if (flow_pair_put(FLOWS_TCP_CLOSED, key, &closed))
				flow_pair_delete(FLOWS_TCP, key, closed);
			return;
		}
		if (f->state != NP_FLOW_FIN_WAIT)
			flow_set_state(key, f, NP_FLOW_FIN_WAIT, now);
		return;
	}
	if (f->state == NP_FLOW_SYN_SENT && fin_from == NP_FIN_FROM_CLIENT) {
		flow_set_state(key, f, NP_FLOW_OPEN, now);
		return;
	}
	flow_touch(FLOWS_TCP, key, f, now);
}

/* Records a new flow in table `t` (FLOWS_TCP or FLOWS_UDP): the client in
 * `p` sent to the node address/port in `p`, and goes to the backend.
 * Returns false, recording nothing and saying why, when another live flow
 * already uses the reply key (the same client addr/port reaching the same
 * backend through another node address or port: the replies of the two could
 * not be told apart, so the second is not translated), or when the table
 * refuses the write. */
static __always_inline bool flow_create(enum flow_table t, const struct pkt4 *p, __be32 backend_addr_be,
					__be16 backend_port_be, __u8 state, __u64 now, enum np_reason *why)
{
	struct np_flow_key fwd_key = to_backend_key(p);
	struct np_flow fwd = {
		.addr_be = backend_addr_be,
		.port_be = backend_port_be,
		.state = state,
		.last_seen_ns = now,
	};
	struct np_flow_key rev_key = partner_key(&fwd_key, &fwd);
	struct np_flow *old = bpf_map_lookup_elem(flow_map(t), &rev_key);

	if (old && !flow_expired(t, old, now) && (old->addr_be != p->daddr_be || old->port_be != p->dport_be)) {
		*why = NP_REASON_FLOW_CONFLICT;
		return false;
	}
	*why = NP_REASON_FLOW_TABLE_FULL;
	return flow_pair_put(t, &fwd_key, &fwd);
}

#endif /* NODEPORT_FLOWS_BPF_H */
