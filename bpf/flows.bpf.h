/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The flow tables of the external datapath: two entries per NATed flow, in
 * one of three tables (layout, meaning and why three: include/nodeport/abi.h),
 * and the operations the TC programs do on them. Only bpf/tc.bpf.c includes
 * this. */
#ifndef NODEPORT_FLOWS_BPF_H
#define NODEPORT_FLOWS_BPF_H

#include "nodeport/abi.h"
#include "nodeport/flow_lifetime.h"
#include "clock.bpf.h"
#include "packet.bpf.h"

/* What the flow logic decided for a TCP/UDP packet: rewrite it to `addr_be`
 * (IPv4 in [0]) and `port_be`, the backend for a client's packet, the node
 * address and port for a reply. The deciding functions return XLATE with
 * this filled in, or the np_reason to pass the packet for; the program's
 * entry then rewrites. Deciding and rewriting are kept apart so that the
 * rewrite's locals (checksums, fragments, counters, the FIB lookup) sit in a
 * frame beside the decision's, not below it: the verifier allows 512 bytes
 * of stack for the deepest chain of calls, and 16-byte addresses fill it. */
struct xlat {
	__be32 addr_be[4];
	__be16 port_be;
	bool new_flow; /* the packet started a flow */
};

#define XLATE (-1)

static __always_inline int xlate(struct xlat *x, const __be32 addr_be[4], __be16 port_be, bool new_flow)
{
	addr_copy(x->addr_be, addr_be);
	x->port_be = port_be;
	x->new_flow = new_flow;
	return XLATE;
}

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

/* Handshakes, apart from `flows` so that a SYN flood evicts only handshakes
 * (include/nodeport/abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_HALF_OPEN_FLOWS);
	__type(key, struct np_flow_key);
	__type(value, struct np_half_open);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} half_open_flows SEC(".maps");

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

/* last_seen_ns is written at most this often: each write dirties a cache
 * line that every CPU handling the flow then has to fetch again. */
#define NP_FLOW_TOUCH_NS 1000000000ULL

/* A flow key of addresses (IPv4 in [0]) and ports. */
static __always_inline struct np_flow_key flow_key(const __be32 client_addr_be[4], __be16 client_port_be,
						   const __be32 peer_addr_be[4], __be16 peer_port_be, __u8 proto,
						   __u8 dir, __u8 family)
{
	struct np_flow_key key = {
		.client_port_be = client_port_be,
		.peer_port_be = peer_port_be,
		.proto = proto,
		.dir = dir,
		.family = family,
	};

	addr_copy(key.client_addr_be, client_addr_be);
	addr_copy(key.peer_addr_be, peer_addr_be);
	return key;
}

/* Key of the entry an ingress packet (client -> node) would match. */
static __always_inline struct np_flow_key to_backend_key(const struct pkt *p)
{
	return flow_key(p->saddr_be, p->sport_be, p->daddr_be, p->dport_be, p->proto, NP_FLOW_TO_BACKEND, p->family);
}

/* Key of the entry an egress reply (backend -> client) would match. */
static __always_inline struct np_flow_key to_client_key(const struct pkt *p)
{
	return flow_key(p->daddr_be, p->dport_be, p->saddr_be, p->sport_be, p->proto, NP_FLOW_TO_CLIENT, p->family);
}

/* The other direction's key: this entry's value is that entry's peer. */
static __always_inline struct np_flow_key partner_key(const struct np_flow_key *key, const struct np_flow *f)
{
	return flow_key(key->client_addr_be, key->client_port_be, f->addr_be, f->port_be, key->proto,
			key->dir == NP_FLOW_TO_BACKEND ? NP_FLOW_TO_CLIENT : NP_FLOW_TO_BACKEND, key->family);
}

/* The other direction's value: this entry's peer, with the same state. The
 * other side's TCP state is not known here: left unseen (liberal). */
static __always_inline struct np_flow partner_value(const struct np_flow_key *key, const struct np_flow *f)
{
	struct np_flow other = {
		.port_be = key->peer_port_be,
		.state = f->state,
		.family = key->family,
		.last_seen_ns = f->last_seen_ns,
	};

	addr_copy(other.addr_be, key->peer_addr_be);
	return other;
}

/* Which table an entry was found in. Passed as a constant and turned into
 * the map at each helper call: the verifier tracks one map per call site, and
 * comparing map pointers at run time is not something to rely on. */
enum flow_table { FLOWS_TCP, FLOWS_UDP };

static __always_inline void *flow_map(enum flow_table t)
{
	return t == FLOWS_UDP ? (void *)&udp_flows : (void *)&flows;
}

static __always_inline const struct np_flow_timeouts *timeouts(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&flow_timeouts, &zero);
}

/* The lifetimes (include/nodeport/flow_lifetime.h, the rule `nodeport
 * flows` shares) of what these programs read. */
static __always_inline __u64 udp_idle_ns(void)
{
	return np_flow_lifetime_ns(timeouts(), 1, NP_FLOW_OPEN);
}

static __always_inline bool flow_expired(enum flow_table t, const struct np_flow *f, __u64 now)
{
	return !np_flow_live(timeouts(), t == FLOWS_UDP, f->state, f->last_seen_ns, now);
}

static __always_inline bool half_open_expired(const struct np_half_open *h, __u64 now)
{
	return !np_flow_live(timeouts(), 0, NP_FLOW_SYN_SENT, h->last_seen_ns, now);
}

/* The translation of the live entry under `key`, from the table that keeps
 * its kind of flow (TCP: `flows`, then, for a reply, `half_open_flows`; UDP:
 * `udp_flows`); false when there is none or it expired. For packets that only
 * read a flow's translation and change nothing about it (ICMP errors): the
 * one place that knows which tables to look in. */
static __always_inline bool flow_find(const struct np_flow_key *key, __u64 now, __be32 addr_be[4], __be16 *port_be)
{
	const struct np_half_open *h;
	const struct np_flow *f;

	f = bpf_map_lookup_elem(key->proto == IPPROTO_UDP ? (void *)&udp_flows : (void *)&flows, key);
	if (f && !flow_expired(key->proto == IPPROTO_UDP ? FLOWS_UDP : FLOWS_TCP, f, now)) {
		addr_copy(addr_be, f->addr_be);
		*port_be = f->port_be;
		return true;
	}
	if (key->proto != IPPROTO_TCP || key->dir != NP_FLOW_TO_CLIENT)
		return false;
	h = bpf_map_lookup_elem(&half_open_flows, key);
	if (!h || half_open_expired(h, now))
		return false;
	addr_copy(addr_be, h->node_addr_be);
	*port_be = h->node_port_be;
	return true;
}

/* Deletes both entries of the flow whose entry `key` holds `f`. The
 * partner's key is built first: `f` is gone after the first delete. */
static __noinline void flow_pair_delete(enum flow_table t, const struct np_flow_key *key, const struct np_flow *f)
{
	void *map = flow_map(t);
	struct np_flow_key other_key = partner_key(key, f);

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

/* ---- TCP sequence tracking ----
 * Each entry keeps the state of the side whose packets it matches
 * (np_tcp_side, include/nodeport/abi.h). Sequence numbers compare in
 * serial-number arithmetic (RFC 1982): they wrap. */
static __always_inline bool seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

/* The sequence number after this segment: SYN and FIN count one. */
static __always_inline __u32 seg_end(const struct pkt *p)
{
	return p->seq + p->seg_len + !!(p->tcp_flags & NP_TCP_SYN) + !!(p->tcp_flags & NP_TCP_FIN);
}

/* The side a SYN (or SYN-ACK) starts. */
static __always_inline struct np_tcp_side side_of_syn(const struct pkt *p)
{
	bool acks = p->tcp_flags & NP_TCP_ACK;

	return (struct np_tcp_side){
		.isn = p->seq,
		.seq_end = seg_end(p),
		.ack = acks ? p->ack_seq : 0,
		.flags = NP_SIDE_SEEN | (acks ? NP_SIDE_ACK_SEEN : 0),
	};
}

/* Notes what a packet of this side says: the end of what it sent, the
 * highest acknowledgement, its FIN. Written only when something grew, and
 * the flags with an atomic OR (flags are read by the other direction's CPU). */
static __always_inline void side_note(struct np_tcp_side *s, const struct pkt *p)
{
	__u32 end = seg_end(p), want = NP_SIDE_SEEN;

	if (!(s->flags & NP_SIDE_SEEN) || seq_before(s->seq_end, end))
		s->seq_end = end;
	if (p->tcp_flags & NP_TCP_ACK) {
		want |= NP_SIDE_ACK_SEEN;
		if (!(s->flags & NP_SIDE_ACK_SEEN) || seq_before(s->ack, p->ack_seq))
			s->ack = p->ack_seq;
	}
	if (p->tcp_flags & NP_TCP_FIN)
		want |= NP_SIDE_FIN;
	if ((s->flags & want) != want)
		__sync_fetch_and_or(&s->flags, want);
}

enum rst_verdict {
	RST_ENDS,    /* ends the flow; translated */
	RST_PASSES,  /* in the window, not at its edge: translated, the flow kept */
	RST_INVALID, /* outside: passed untranslated, the flow kept */
};

/* An RST from side `s` to side `r` (NULL: that entry is gone). As a Linux
 * receiver does (RFC 5961 3.2), only an RST at the edge of the window ends
 * the connection: the next sequence number the receiver expects (its ack),
 * or the next one the sender would send (an RST after data in flight).
 * One inside the window is passed on, and the receiver answers it with a
 * challenge ACK, which the real sender answers with an RST at the edge. One
 * outside the window is conntrack's INVALID: a blind RST. While either side's
 * numbers are unknown (a picked-up or migrated flow before both sides sent),
 * any RST ends the flow, as with nf_conntrack_tcp_be_liberal. */
static __always_inline enum rst_verdict rst_check(const struct np_tcp_side *s, const struct np_tcp_side *r,
						  const struct pkt *p)
{
	if (!r || !(r->flags & NP_SIDE_ACK_SEEN) || !(s->flags & NP_SIDE_SEEN))
		return RST_ENDS;
	if (p->seq == r->ack || p->seq == s->seq_end)
		return RST_ENDS;
	if (seq_before(r->ack, p->seq) && seq_before(p->seq, s->seq_end))
		return RST_PASSES;
	return RST_INVALID;
}

/* Sets the state of both entries of a live TCP flow. */
static __always_inline void flow_set_state(struct np_flow *f, struct np_flow *other, __u8 state, __u64 now)
{
	f->state = state;
	f->last_seen_ns = now;
	if (other) {
		other->state = state;
		other->last_seen_ns = now;
	}
}

/* A packet of a closing flow (a FIN passed, or this is one): true when it is
 * the final ACK, the acknowledgement of the last FIN after both sides sent
 * theirs and one acknowledged the other's. That ends the flow at once: no
 * TIME_WAIT table, and nothing of it left in `flows` to push out a live
 * connection. Each side notes its own acknowledgement of the other's FIN with
 * an atomic OR and then reads the other's: of two final ACKs crossing on two
 * CPUs, at least one sees both. */
static __always_inline bool tcp_closing(const struct np_flow_key *key, struct np_flow *f, const struct pkt *p,
					__u64 now)
{
	struct np_flow_key other_key = partner_key(key, f);
	struct np_flow *other = bpf_map_lookup_elem(&flows, &other_key);

	if (f->state != NP_FLOW_FIN_WAIT)
		flow_set_state(f, other, NP_FLOW_FIN_WAIT, now);
	if (!other || !(p->tcp_flags & NP_TCP_ACK) || !(other->tcp.flags & NP_SIDE_FIN) ||
	    seq_before(p->ack_seq, other->tcp.seq_end))
		return false;
	__sync_fetch_and_or(&f->tcp.flags, NP_SIDE_FIN_ACKED);
	return (f->tcp.flags & NP_SIDE_FIN) && (other->tcp.flags & NP_SIDE_FIN_ACKED);
}

/* The TCP state machine, for a packet that is not a SYN and matched the live
 * entry `f` of `flows` under `key`. The caller has copied the translation out
 * of `f`: the entry may be gone afterwards. False: the packet is outside the
 * window (a blind RST) and passes untranslated, changing nothing.
 *  - RST: rst_check() decides; one that ends the flow deletes both entries.
 *  - FIN and what follows it: tcp_closing(); the final ACK deletes both.
 *  - anything else notes the sender's numbers and refreshes the flow. */
static __always_inline bool tcp_track(const struct np_flow_key *key, struct np_flow *f, const struct pkt *p,
				      __u64 now)
{
	if (p->tcp_flags & NP_TCP_RST) {
		struct np_flow_key other_key = partner_key(key, f);
		struct np_flow *other = bpf_map_lookup_elem(&flows, &other_key);
		enum rst_verdict v = rst_check(&f->tcp, other ? &other->tcp : NULL, p);

		if (v == RST_ENDS)
			flow_pair_delete(FLOWS_TCP, key, f);
		return v != RST_INVALID;
	}
	side_note(&f->tcp, p);
	if ((p->tcp_flags & NP_TCP_FIN) || f->state == NP_FLOW_FIN_WAIT) {
		if (tcp_closing(key, f, p, now)) {
			flow_pair_delete(FLOWS_TCP, key, f);
			return true;
		}
	}
	flow_touch(FLOWS_TCP, key, f, now);
	return true;
}

/* True when the reply key of a new flow belongs to another live flow (the
 * same client addr/port reaching the same backend through another node
 * address or port): the replies of the two could not be told apart, so the
 * second is not translated. */
static __always_inline bool reply_key_taken(enum flow_table t, const struct np_flow_key *rev_key, const struct pkt *p,
					    __u64 now)
{
	const struct np_flow *old = bpf_map_lookup_elem(flow_map(t), rev_key);

	return old && !flow_expired(t, old, now) && (!addr_eq(old->addr_be, p->daddr_be) || old->port_be != p->dport_be);
}

/* The reply entry of a new flow from client `p` to backend `x`: under the
 * key of the backend's replies, the node address and port they leave from.
 * Both are built in place, as are the client's entry after them: a
 * 16-byte address costs four registers, and each extra copy of a key or
 * value spills them to the stack, of which a chain of calls has 512 bytes. */
static __always_inline void reply_entry(const struct pkt *p, const struct xlat *x, __u8 state, __u64 now,
					struct np_flow_key *key, struct np_flow *f)
{
	*key = flow_key(p->saddr_be, p->sport_be, x->addr_be, x->port_be, p->proto, NP_FLOW_TO_CLIENT, p->family);
	*f = (struct np_flow){
		.port_be = p->dport_be,
		.state = state,
		.family = p->family,
		.last_seen_ns = now,
	};
	addr_copy(f->addr_be, p->daddr_be);
}

/* The client's entry of a new flow to backend `x`, its TCP side `side`. */
static __always_inline void client_entry(const struct pkt *p, const struct xlat *x, __u8 state, __u64 now,
					 const struct np_tcp_side *side, struct np_flow_key *key, struct np_flow *f)
{
	*key = to_backend_key(p);
	*f = (struct np_flow){
		.port_be = x->port_be,
		.state = state,
		.family = p->family,
		.last_seen_ns = now,
		.tcp = *side,
	};
	addr_copy(f->addr_be, x->addr_be);
}

/* Records a new flow in table `t` (FLOWS_TCP or FLOWS_UDP): the client in
 * `p` sent to the node address/port in `p`, and goes to the backend in `x`
 * in `state`; `side` is the client's TCP state. The reply entry first: a
 * client entry without it would send traffic whose replies leave
 * untranslated. Returns XLATE, with `x` marked as a new flow, or the reason
 * nothing was recorded: another live flow already uses the reply key, or the
 * table refuses the write. */
static __noinline int flow_create(enum flow_table t, const struct pkt *p, struct xlat *x, __u8 state,
				  const struct np_tcp_side *side)
{
	void *map = flow_map(t);
	__u64 now = np_now();
	struct np_flow_key key;
	struct np_flow f;

	reply_entry(p, x, state, now, &key, &f);
	if (reply_key_taken(t, &key, p, now))
		return NP_REASON_FLOW_CONFLICT;
	if (bpf_map_update_elem(map, &key, &f, BPF_ANY))
		return NP_REASON_FLOW_TABLE_FULL;
	client_entry(p, x, state, now, side, &key, &f);
	if (bpf_map_update_elem(map, &key, &f, BPF_ANY))
		return NP_REASON_FLOW_TABLE_FULL;
	x->new_flow = true;
	return XLATE;
}

#endif /* NODEPORT_FLOWS_BPF_H */
