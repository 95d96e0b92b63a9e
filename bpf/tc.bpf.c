// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * External forwarding: TC programs on the node's client-facing interface NAT
 * the packets of clients outside the node to the backend of a node port, the
 * job an iptables DNAT rule plus conntrack did.
 *
 *  np_tc_ingress  client -> node addr:port   becomes  client -> backend
 *  np_tc_egress   backend -> client          becomes  node addr:port -> client
 *
 * and ICMP errors about those packets, both ways, as conntrack translates
 * them (icmp_ingress, icmp_egress), so path MTU discovery works end to end;
 * a fragmented datagram's later fragments follow its first (frag.bpf.h).
 * IPv4 and IPv6 alike (IPv6: icmp6_*); no NAT46/64, a client reaches the
 * backend of its own family.
 *
 * The work is split into subprograms (__noinline) so that no chain of calls
 * needs more than the verifier's 512 bytes of stack, which 16-byte addresses
 * fill quickly: the entry parses, calls the protocol's deciding function
 * (XLATE or a reason, flows.bpf.h), and then the rewrite, each a frame of its
 * own beside the others. A packet of a live flow pays two calls.
 *
 * The translated packet is then routed by the kernel (TC_ACT_OK), so the node
 * needs net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1 for IPv6);
 * `fib_redirect` optionally routes it here.
 *
 * Every program fails open: whatever it cannot parse, does not own or fails
 * to translate goes on untouched (TC_ACT_OK). These programs sit on the
 * node's main interface, so dropping would cut the node's own traffic (ssh,
 * ARP, neighbour discovery, ...) because of a nodeport bug or a full table.
 */
#include "uapi.bpf.h"
#include "maps.bpf.h"
#include "packet.bpf.h"
#include "nat.bpf.h"
#include "icmp.bpf.h"
#include "flows.bpf.h"
#include "frag.bpf.h"
#include "fib.bpf.h"
#include "counters.bpf.h"
#include "test_variant.bpf.h"

/* Route translated client packets with bpf_fib_lookup + bpf_redirect_neigh
 * instead of the kernel's forward path; see fib.bpf.h for the catch. Replies
 * need nothing like it: egress already is their way out. */
const volatile bool fib_redirect = false;

/* The socket lookup tuple of the packet `p`, as it arrived; returns its
 * size, which tells the helpers the family. */
static __always_inline __u32 sock_tuple_of(const struct pkt *p, struct bpf_sock_tuple *tuple)
{
	if (p->family == NP_FAMILY_IPV4) {
		tuple->ipv4.saddr = p->saddr_be[0];
		tuple->ipv4.daddr = p->daddr_be[0];
		tuple->ipv4.sport = p->sport_be;
		tuple->ipv4.dport = p->dport_be;
		return sizeof(tuple->ipv4);
	}
	addr_copy(tuple->ipv6.saddr, p->saddr_be);
	addr_copy(tuple->ipv6.daddr, p->daddr_be);
	tuple->ipv6.sport = p->sport_be;
	tuple->ipv6.dport = p->dport_be;
	return sizeof(tuple->ipv6);
}

/* For UDP there is no SYN: a datagram to a node port starts a flow unless it
 * answers the node, as conntrack would tell a DNAT rule:
 *  - the node sent to its sender from that port within the UDP idle timeout
 *    (`node_udp`, noted on egress): its own query from a local port that
 *    happens to be a node port, or a sandbox's datagram it MASQUERADEd there;
 *  - or a socket of the node is connected to its sender (a query that left
 *    before nodeport was loaded, or by an interface without it).
 * A socket merely bound to the port (a node service; podman's conmon holds
 * 0.0.0.0:PORT of every published port) does not keep the port's clients
 * from the sandbox: the mapping wins, for UDP as for TCP. bpf_sk_lookup_udp
 * returns the best match, so a connected socket is found before a wildcard
 * one. */
static __noinline bool udp_answers_node(struct __sk_buff *skb, const struct pkt *p, const struct np_flow_key *key,
					__u64 now)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u64 *sent_ns;
	bool connected;

	sent_ns = bpf_map_lookup_elem(&node_udp, key);
	if (sent_ns && now <= *sent_ns + udp_idle_ns())
		return true;
	sk = bpf_sk_lookup_udp(skb, &tuple, sock_tuple_of(p, &tuple), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	connected = sk->dst_port != 0;
	bpf_sk_release(sk); /* the verifier insists every lookup is released */
	return connected;
}

/* A UDP datagram leaving with no flow: the node's own. From a mapped node
 * port, it is noted so that its answers reach the node (udp_answers_node).
 * Costs the node's other UDP one port lookup. */
static __always_inline void note_node_udp(const struct pkt *p)
{
	struct np_flow_key key;
	__u64 now, *sent_ns;

	if (!lookup_backend(IPPROTO_UDP, p->family, p->sport_be))
		return;
	key = flow_key(p->daddr_be, p->dport_be, p->saddr_be, p->sport_be, IPPROTO_UDP, NP_FLOW_TO_BACKEND, p->family);
	now = np_now();
	sent_ns = bpf_map_lookup_elem(&node_udp, &key);
	if (sent_ns && now < *sent_ns + NP_FLOW_TOUCH_NS)
		return;
	bpf_map_update_elem(&node_udp, &key, &now, BPF_ANY);
}

/* The packet's length from the IP header on, as a byte counter shows it. */
static __always_inline __u64 ip_bytes(const struct __sk_buff *skb, __u32 l2_hlen)
{
	return skb->len > l2_hlen ? skb->len - l2_hlen : 0;
}

/* How many packets on the wire this skb is: GRO merges a burst received into
 * one skb, and a sender hands down one skb for what GSO cuts up later. */
static __always_inline __u64 wire_packets(const struct __sk_buff *skb)
{
	return skb->gso_segs ? skb->gso_segs : 1;
}

/* Counts a packet translated towards the backend of node port (proto,
 * port_be); `new_flow` when it started a flow. */
static __always_inline void count_to_backend(struct __sk_buff *skb, const struct pkt *p, __u8 proto, __be16 port_be,
					     bool new_flow)
{
	struct np_port_counters *c = port_counters_of_family(proto, port_key_family(p->family), port_be);

	if (c) {
		c->external_flows += new_flow;
		c->to_backend_packets += wire_packets(skb);
		c->to_backend_bytes += ip_bytes(skb, p->l2_hlen);
	}
}

/* Hands a packet translated towards a backend on: routed by the kernel, or
 * here (fib_redirect). */
static __always_inline int forward(struct __sk_buff *skb, const struct pkt *p)
{
	if (!fib_redirect)
		return TC_ACT_OK;
	if (p->family == NP_FAMILY_IPV6)
		return fib_redirect6(skb, p);
	return fib_redirect4(skb, p);
}

/* Leaves the packet untouched, counting why. */
static __always_inline int pass(enum np_reason why)
{
	count_reason(why);
	return TC_ACT_OK;
}

/* Sends the client's packet to its backend `x` and counts it for its node
 * port, the packet's destination port. A first fragment tells the later
 * ones where they go. */
static __noinline int to_backend(struct __sk_buff *skb, const struct pkt *p, const struct xlat *x)
{
	if (nat_rewrite(skb, p, NAT_DST, x->addr_be, x->port_be))
		return pass(NP_REASON_REWRITE_FAILED);
	if (p->first_fragment)
		frag_note(p, NP_FLOW_TO_BACKEND, x->addr_be, p->dport_be);
	count_to_backend(skb, p, p->proto, p->dport_be, x->new_flow);
	return forward(skb, p);
}

/* The backend a node port maps to right now for the packet's family (no
 * NAT46/64: a client reaches the backend of its own family), read once into
 * `x`: both the flow and the rewrite must use the same one. False, with the
 * reason, when the destination is not a node address or the port is not
 * mapped. */
static __always_inline bool current_backend(const struct pkt *p, struct xlat *x, enum np_reason *why)
{
	const struct np_backend *be;

	*why = NP_REASON_NOT_NODE_ADDR;
	if (!is_node_addr(p->family, p->daddr_be))
		return false;
	*why = NP_REASON_PORT_NOT_MAPPED;
	be = lookup_backend(p->proto, p->family, p->dport_be);
	x->new_flow = false;
	return be && read_backend(be, p->family, x->addr_be, &x->port_be);
}

/* The `half_open_flows` key of a client's handshake with backend
 * `addr_be`:`port_be`: the key of the backend's SYN-ACK. */
static __always_inline struct np_flow_key half_open_key(const struct pkt *p, const __be32 addr_be[4],
							__be16 port_be)
{
	return flow_key(p->saddr_be, p->sport_be, addr_be, port_be, IPPROTO_TCP, NP_FLOW_TO_CLIENT, p->family);
}

/* A live handshake `h` that the client's packet `p` belongs to: to the same
 * node address and port. */
static __always_inline bool handshake_of(const struct np_half_open *h, const struct pkt *p, __u64 now)
{
	return h && !half_open_expired(h, now) && addr_eq(h->node_addr_be, p->daddr_be) &&
	       h->node_port_be == p->dport_be;
}

/* A client's TCP SYN. On a live connection it changes nothing, whatever its
 * sequence number: it goes to that connection's backend, which answers with
 * a challenge ACK (RFC 5961 4.2) that the real client, should it have lost
 * the connection, answers with an RST at the edge of the window, which ends
 * the flow; its next SYN then starts a new one. So neither a blind SYN nor a
 * SYN flood on an established tuple can end a connection (conntrack ignores
 * such a SYN, sIG, and keeps translating). A picked-up flow (its numbers only
 * half known) and an expired one are dropped, as is every flow before ABI 3.
 * Otherwise the SYN is decided from the current map: a retransmitted SYN (the
 * same ISN) keeps its handshake, any other starts one in `half_open_flows`.
 * When the port is no longer mapped, the SYN and the rest of its connection
 * pass untouched to whatever else serves the port: a server on the node, an
 * iptables rule. */
static __noinline int tcp_syn_ingress(struct __sk_buff *skb, const struct pkt *p, struct xlat *x)
{
	struct np_flow_key key = to_backend_key(p);
	__u64 now = np_now();
	struct np_half_open *h, handshake;
	struct np_flow_key hkey;
	enum np_reason why;
	struct np_flow *f;

	f = bpf_map_lookup_elem(&flows, &key);
	if (f) {
		if (!flow_expired(FLOWS_TCP, f, now) && f->state != NP_FLOW_PICKED_UP &&
		    (f->tcp.flags & NP_SIDE_SEEN))
			return xlate(x, f->addr_be, f->port_be, false);
		flow_pair_delete(FLOWS_TCP, &key, f);
	}

	if (!current_backend(p, x, &why))
		return why;
	hkey = half_open_key(p, x->addr_be, x->port_be);
	h = bpf_map_lookup_elem(&half_open_flows, &hkey);
	if (handshake_of(h, p, now) && h->client.isn == p->seq) {
		h->last_seen_ns = now; /* a retransmitted SYN: the handshake lives on */
		return XLATE;
	}
	if (reply_key_taken(FLOWS_TCP, &hkey, p, now) ||
	    (h && !half_open_expired(h, now) && !handshake_of(h, p, now)))
		return NP_REASON_FLOW_CONFLICT;
	handshake = (struct np_half_open){
		.node_port_be = p->dport_be,
		.state = NP_FLOW_SYN_SENT,
		.family = p->family,
		.last_seen_ns = now,
		.client = side_of_syn(p),
	};
	addr_copy(handshake.node_addr_be, p->daddr_be);
	if (bpf_map_update_elem(&half_open_flows, &hkey, &handshake, BPF_ANY))
		return NP_REASON_FLOW_TABLE_FULL;
	x->new_flow = true;
	return XLATE;
}

/* True when a socket of the node owns this TCP segment: a connection of the
 * node's own (its local port may be a node port), or a handshake or
 * TIME_WAIT of one. A listener does not count: a socket merely bound to a
 * mapped port does not keep the port's clients from the sandbox. */
static __noinline bool tcp_owned_by_node(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	bool owned;

	sk = bpf_skc_lookup_tcp(skb, &tuple, sock_tuple_of(p, &tuple), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	owned = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk); /* the verifier insists every lookup is released */
	return owned;
}

/* The client's side as one segment shows it (its FIN too: the segment that
 * ends a handshake may carry a request and the client's FIN). */
static __always_inline struct np_tcp_side side_of_segment(const struct pkt *p)
{
	bool acks = p->tcp_flags & NP_TCP_ACK;

	return (struct np_tcp_side){
		.seq_end = seg_end(p),
		.ack = acks ? p->ack_seq : 0,
		.flags = NP_SIDE_SEEN | (acks ? NP_SIDE_ACK_SEEN : 0) | (p->tcp_flags & NP_TCP_FIN ? NP_SIDE_FIN : 0),
	};
}

/* A client's packet of the handshake `h` (under `hkey`) to backend `x`. Its
 * ACK of the SYN-ACK (or any ACK, when no SYN-ACK passed this build) makes
 * the connection established: both entries go to `flows` with each side's
 * numbers, and the handshake goes. An RST ends the handshake only with the
 * sequence number after the SYN. */
static __noinline int tcp_handshake_ingress(const struct pkt *p, const struct np_flow_key *hkey,
					    struct np_half_open *h, __u64 now, struct xlat *x)
{
	struct np_tcp_side client;
	struct np_flow_key key;
	struct np_flow f;
	__u8 state;

	if (p->tcp_flags & NP_TCP_RST) {
		if ((h->client.flags & NP_SIDE_SEEN) && p->seq != h->client.seq_end)
			return NP_REASON_TCP_OUT_OF_WINDOW;
		bpf_map_delete_elem(&half_open_flows, hkey);
		return XLATE;
	}
	if (!(p->tcp_flags & NP_TCP_ACK) ||
	    ((h->backend.flags & NP_SIDE_SEEN) && seq_before(p->ack_seq, h->backend.seq_end)))
		return XLATE;
	/* Both entries are written before the handshake goes, so a packet on
	 * another CPU finds one or the other; should `flows` refuse, the
	 * handshake stays. */
	state = p->tcp_flags & NP_TCP_FIN ? NP_FLOW_FIN_WAIT : NP_FLOW_OPEN;
	reply_entry(p, x, state, now, &key, &f);
	f.tcp = h->backend;
	if (bpf_map_update_elem(&flows, &key, &f, BPF_ANY))
		return XLATE;
	client = side_of_segment(p);
	client.isn = h->client.isn;
	client_entry(p, x, state, now, &client, &key, &f);
	if (bpf_map_update_elem(&flows, &key, &f, BPF_ANY) == 0)
		bpf_map_delete_elem(&half_open_flows, hkey);
	return XLATE;
}

/* A mid-stream TCP segment that matches no flow: the flow was lost (flushed
 * with `nodeport flows --flush`, evicted, expired while idle, dropped by an
 * RST, or never seen by this build). Like conntrack with
 * nf_conntrack_tcp_loose=1 (the default), a plain segment (ACK, no SYN, FIN
 * or RST) to a node address and a mapped port that no socket of the node
 * owns picks the connection up, to the port's current backend `x`: the same
 * sandbox goes on serving it. After a remap the new backend has no such
 * connection and resets it, as it would behind conntrack. Anything else is the node's (NOT_FLOW_START). A picked-up flow
 * idles out after tcp_closing_ns, not the established lifetime: the segment
 * may be the late ACK of a connection long closed, which a TIME_WAIT socket
 * answers, and must not leave an entry for hours. Its backend's numbers are
 * unknown until the backend sends: until then an RST ends it whatever its
 * sequence number (conntrack's be_liberal). */
static __always_inline int tcp_pick_up(struct __sk_buff *skb, const struct pkt *p, struct xlat *x)
{
	struct np_tcp_side side;

	if ((p->tcp_flags & (NP_TCP_SYN | NP_TCP_FIN | NP_TCP_RST | NP_TCP_ACK)) != NP_TCP_ACK)
		return NP_REASON_NOT_FLOW_START;
	if (tcp_owned_by_node(skb, p))
		return NP_REASON_NOT_FLOW_START;
	side = side_of_segment(p);
	return flow_create(FLOWS_TCP, p, x, NP_FLOW_PICKED_UP, &side);
}

/* A client's TCP segment, not a SYN, with no live flow in `flows`: a packet
 * of its handshake, or one to pick up. The map first: the node's own traffic
 * to unmapped ports (ssh, ...) pays no more lookups. */
static __noinline int tcp_no_flow(struct __sk_buff *skb, const struct pkt *p, struct xlat *x)
{
	struct np_flow_key hkey;
	struct np_half_open *h;
	enum np_reason why;
	__u64 now = np_now();

	if (!current_backend(p, x, &why))
		return NP_REASON_NOT_FLOW_START;
	hkey = half_open_key(p, x->addr_be, x->port_be);
	h = bpf_map_lookup_elem(&half_open_flows, &hkey);
	if (handshake_of(h, p, now))
		return tcp_handshake_ingress(p, &hkey, h, now, x);
	return tcp_pick_up(skb, p, x);
}

/* What tcp_ingress and udp_ingress return, instead of a decision, when no
 * live flow matched the packet: the program's entry then decides it afresh
 * (tcp_no_flow, udp_new_flow). Called from there, not from below, so that
 * the packets of a flow pay for no more calls than that, and a new flow's
 * frames sit beside the flow lookup's (the verifier's 512 bytes of stack per
 * chain of calls). */
#define NO_FLOW (-2)

/* Client -> node, TCP, not a SYN: the segment of a live flow. Live flows keep
 * their backend when the port is remapped (an established connection stays
 * on its sandbox). The clock is read only once a flow matched: the node's
 * own traffic pays one lookup per packet. An idle connection that outlived
 * its flow is picked up again (NO_FLOW). */
static __noinline int tcp_ingress(const struct pkt *p, struct xlat *x)
{
	struct np_flow_key key = to_backend_key(p);
	struct np_flow *f;
	__u64 now;

	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return NO_FLOW;
	now = np_now();
	if (flow_expired(FLOWS_TCP, f, now))
		return NO_FLOW;
	xlate(x, f->addr_be, f->port_be, false); /* before tcp_track: it may end the flow */
	if (!tcp_track(&key, f, p, now))
		return NP_REASON_TCP_OUT_OF_WINDOW;
	return XLATE;
}

/* Client -> node, UDP: the datagram of a live flow. A flow follows the
 * port's mapping: when the port was remapped or unmapped since the flow
 * started, the flow is dropped and the datagram decided again (NO_FLOW), so
 * a client that keeps its source port (DNS forwarders, statsd, QUIC,
 * WireGuard) reaches the new sandbox with its very next datagram, the way
 * kube-proxy clears a removed backend's UDP conntrack entries. */
static __noinline int udp_ingress(const struct pkt *p, struct xlat *x)
{
	struct np_flow_key key = to_backend_key(p);
	const struct np_backend *be;
	struct np_flow *f;
	__u64 now;

	f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f)
		return NO_FLOW;
	now = np_now();
	be = lookup_backend(p->proto, p->family, p->dport_be);
	if (be && read_backend(be, p->family, x->addr_be, &x->port_be) && addr_eq(x->addr_be, f->addr_be) &&
	    x->port_be == f->port_be && !flow_expired(FLOWS_UDP, f, now)) {
		flow_touch(FLOWS_UDP, &key, f, now);
		x->new_flow = false;
		return XLATE;
	}
	flow_pair_delete(FLOWS_UDP, &key, f);
	return NO_FLOW;
}

/* Client -> node, UDP, with no live flow: a new flow to the port's backend,
 * unless the datagram answers the node. */
static __noinline int udp_new_flow(struct __sk_buff *skb, const struct pkt *p, struct xlat *x)
{
	const struct np_tcp_side no_tcp = {};
	struct np_flow_key key = to_backend_key(p);
	enum np_reason why;

	if (!current_backend(p, x, &why))
		return why;
	if (udp_answers_node(skb, p, &key, np_now()))
		return NP_REASON_UDP_ANSWERS_NODE;
	return flow_create(FLOWS_UDP, p, x, NP_FLOW_OPEN, &no_tcp);
}

/* The flow entry an error's quoted packet would match in direction `dir`:
 * towards the backend, the quote is a reply as it left the node (the client
 * is its destination); towards the client, it is the client's packet as the
 * backend got it (the client is its source). */
static __always_inline struct np_flow_key quoted_flow_key(const __be32 in_saddr_be[4], __be16 in_sport_be,
							   const __be32 in_daddr_be[4], __be16 in_dport_be,
							   __u8 proto, __u8 dir, __u8 family)
{
	if (dir == NP_FLOW_TO_CLIENT)
		return flow_key(in_saddr_be, in_sport_be, in_daddr_be, in_dport_be, proto, dir, family);
	return flow_key(in_daddr_be, in_dport_be, in_saddr_be, in_sport_be, proto, dir, family);
}

static __always_inline struct np_flow_key quoted_flow_key4(const struct icmp4_err *e, __u8 dir)
{
	__be32 in_saddr_be[4] = { e->in_saddr_be }, in_daddr_be[4] = { e->in_daddr_be };

	return quoted_flow_key(in_saddr_be, e->in_sport_be, in_daddr_be, e->in_dport_be, e->in_proto, dir,
			       NP_FAMILY_IPV4);
}

/* An ICMP error from outside about a packet the node sent for a flow: a
 * backend's reply, which left as <node-addr>:<node-port> -> client. The error
 * goes on to that backend as if the node were not in between: its outer
 * destination (the node address, which sent the reply) and the embedded
 * source become the backend's. So a router's "fragmentation needed" reaches
 * the sandbox's socket, which lowers its path MTU at once; a client's "port
 * unreachable" reaches the sandbox's UDP socket. Errors about the node's own
 * traffic, echo and all other ICMP pass untouched; flows are read, not
 * changed (an error says nothing about a connection's state). */
static __noinline int icmp_ingress(struct __sk_buff *skb, const struct pkt *p)
{
	struct np_flow_key key;
	struct icmp4_err e;
	__be32 addr_be[4];
	__be16 port_be;

	if (!icmp4_error_load(skb, p, &e))
		return pass(NP_REASON_NOT_IPV4_TCP_UDP);
	key = quoted_flow_key4(&e, NP_FLOW_TO_BACKEND);
	/* An error goes to whoever sent the packet it quotes; one addressed to
	 * another host is not this reply's. */
	if (e.daddr_be != e.in_saddr_be || !flow_find(&key, np_now(), addr_be, &port_be))
		return pass(NP_REASON_ICMP_NO_FLOW);
	if (icmp4_error_rewrite(skb, p, &e, NAT_SRC, addr_be[0], port_be, true))
		return pass(NP_REASON_REWRITE_FAILED);
	count_to_backend(skb, p, key.proto, key.peer_port_be, false);
	return forward(skb, p);
}

/* icmp_ingress for ICMPv6: a router's packet too big, above all, reaches the
 * sandbox, which lowers its path MTU at once. */
static __noinline int icmp6_ingress(struct __sk_buff *skb, const struct pkt *p)
{
	struct np_flow_key key;
	struct icmp6_err e;
	__be32 addr_be[4];
	__be16 port_be;

	if (!icmp6_error_load(skb, p, &e))
		return pass(NP_REASON_NOT_IPV4_TCP_UDP);
	key = quoted_flow_key(e.in_saddr_be, e.in_sport_be, e.in_daddr_be, e.in_dport_be, e.in_next,
			      NP_FLOW_TO_BACKEND, NP_FAMILY_IPV6);
	if (!addr_eq(e.daddr_be, e.in_saddr_be) || !flow_find(&key, np_now(), addr_be, &port_be))
		return pass(NP_REASON_ICMP_NO_FLOW);
	if (icmp6_error_rewrite(skb, p, &e, NAT_SRC, addr_be, port_be, true))
		return pass(NP_REASON_REWRITE_FAILED);
	count_to_backend(skb, p, key.proto, key.peer_port_be, false);
	return forward(skb, p);
}

/* A client's fragment after the first goes where its first fragment went
 * (frag.bpf.h); without a translated first fragment it passes: the node's
 * own fragmented traffic, or a fragment that came before its first. */
static __noinline int later_fragment_ingress(struct __sk_buff *skb, const struct pkt *p)
{
	const struct np_frag *f = frag_find(p, NP_FLOW_TO_BACKEND);
	__be16 node_port_be;
	__be32 addr_be[4];

	if (!f)
		return pass(NP_REASON_FRAGMENT);
	addr_copy(addr_be, f->addr_be);
	node_port_be = f->node_port_be;
	if (nat_rewrite_addr(skb, p, NAT_DST, addr_be))
		return pass(NP_REASON_REWRITE_FAILED);
	count_to_backend(skb, p, p->proto, node_port_be, false);
	return forward(skb, p);
}

/* The flow table is read before the port map: the node's own connections are
 * never in it, and their packets never start a flow (a SYN-ACK is not a SYN,
 * a datagram to a local socket is owned), so a node port that equals their
 * local port does not catch them. `l2_hlen`: see np_tc_ingress and
 * np_l3_ingress. */
static __always_inline int tc_ingress(struct __sk_buff *skb, const __u32 l2_hlen)
{
	enum np_reason why;
	struct xlat x;
	struct pkt p;
	int verdict;

	NP_TEST_VARIANT_MARK();
	switch (parse_pkt(skb, l2_hlen, &p, &why)) {
	case PKT_L4:
		break;
	case PKT_ICMP:
		if (p.family == NP_FAMILY_IPV6)
			return icmp6_ingress(skb, &p);
		return icmp_ingress(skb, &p);
	case PKT_LATER_FRAGMENT:
		return later_fragment_ingress(skb, &p);
	default:
		return pass(why);
	}
	if (p.first_fragment)
		frag_forget(&p, NP_FLOW_TO_BACKEND);
	if (p.proto == IPPROTO_UDP) {
		verdict = udp_ingress(&p, &x);
		if (verdict == NO_FLOW)
			verdict = udp_new_flow(skb, &p, &x);
	} else if (is_tcp_syn(&p)) {
		verdict = tcp_syn_ingress(skb, &p, &x);
	} else {
		verdict = tcp_ingress(&p, &x);
		if (verdict == NO_FLOW)
			verdict = tcp_no_flow(skb, &p, &x);
	}
	if (verdict != XLATE)
		return pass(verdict);
	return to_backend(skb, &p, &x);
}

/* Two builds of each program, as Cilium compiles separate programs for L3
 * devices: the header before IPv4 is a constant in each, so neither pays for
 * the other (`load` attaches each interface's kind, tc_attach.cpp). On an
 * Ethernet interface skb->data is the Ethernet header; on one without a
 * link-layer header (WireGuard, tun, ipip, GRE, ppp) it is the IPv4 header. */
SEC("tc")
int np_tc_ingress(struct __sk_buff *skb)
{
	return tc_ingress(skb, NP_ETH_HLEN);
}

SEC("tc")
int np_l3_ingress(struct __sk_buff *skb)
{
	return tc_ingress(skb, 0);
}

/* Counts a packet from a backend translated back to node port (proto, port_be). */
static __always_inline void count_from_backend(struct __sk_buff *skb, const struct pkt *p, __u8 proto,
					       __be16 port_be)
{
	struct np_port_counters *c = port_counters_of_family(proto, port_key_family(p->family), port_be);

	if (c) {
		c->from_backend_packets += wire_packets(skb);
		c->from_backend_bytes += ip_bytes(skb, p->l2_hlen);
	}
}

/* Writes the node address and port `x` back as the reply's source, and
 * counts the reply for that node port. */
static __noinline int to_client(struct __sk_buff *skb, const struct pkt *p, const struct xlat *x)
{
	if (nat_rewrite(skb, p, NAT_SRC, x->addr_be, x->port_be))
		return pass(NP_REASON_REPLY_REWRITE_FAILED);
	if (p->first_fragment)
		frag_note(p, NP_FLOW_TO_CLIENT, x->addr_be, x->port_be);
	count_from_backend(skb, p, p->proto, x->port_be);
	return TC_ACT_OK;
}

/* A backend's fragment after the first leaves as its first fragment did: with
 * the node address as its source. */
static __noinline int later_fragment_egress(struct __sk_buff *skb, const struct pkt *p)
{
	const struct np_frag *f = frag_find(p, NP_FLOW_TO_CLIENT);
	__be16 node_port_be;
	__be32 node_addr_be[4];

	if (!f)
		return pass(NP_REASON_REPLY_NO_FLOW);
	addr_copy(node_addr_be, f->addr_be);
	node_port_be = f->node_port_be;
	if (nat_rewrite_addr(skb, p, NAT_SRC, node_addr_be))
		return pass(NP_REASON_REPLY_REWRITE_FAILED);
	count_from_backend(skb, p, p->proto, node_port_be);
	return TC_ACT_OK;
}

/* A backend's packet of a handshake in `half_open_flows` under `key`. Its
 * SYN-ACK records the backend's side (it comes from a sandbox of this node,
 * not from an off-path sender: its acknowledgement is not checked). An RST
 * ends the handshake only when it acknowledges the SYN (the backend refuses
 * the connection, RFC 793); another RST is outside the window and passes
 * untranslated. During a handshake the backend sends nothing else, so any
 * other packet belongs to a connection nodeport never translated on the
 * same tuple: the client reached the sandbox's own address from the port it
 * now uses through the node port, and the backend answers the SYN with that
 * connection's challenge ACK. It passes untouched, as that connection's
 * packets always did, and that connection goes on; the new one cannot be
 * made. (Through iptables DNAT, measured, the new one is made and the old
 * one ends.) */
static __always_inline int tcp_handshake_egress(const struct pkt *p, const struct np_flow_key *key,
						enum np_reason no_handshake, struct xlat *x)
{
	struct np_half_open *h = bpf_map_lookup_elem(&half_open_flows, key);
	__be32 node_addr_be[4];
	__be16 node_port_be;

	if (!h)
		return no_handshake;
	if (half_open_expired(h, np_now()))
		return NP_REASON_REPLY_EXPIRED;
	addr_copy(node_addr_be, h->node_addr_be);
	node_port_be = h->node_port_be;
	if (p->tcp_flags & NP_TCP_RST) {
		if (!(p->tcp_flags & NP_TCP_ACK) ||
		    ((h->client.flags & NP_SIDE_SEEN) && p->ack_seq != h->client.seq_end))
			return NP_REASON_TCP_OUT_OF_WINDOW;
		bpf_map_delete_elem(&half_open_flows, key);
	} else if ((p->tcp_flags & (NP_TCP_SYN | NP_TCP_ACK)) == (NP_TCP_SYN | NP_TCP_ACK)) {
		h->backend = side_of_syn(p);
	} else {
		return NP_REASON_REPLY_NOT_OURS;
	}
	return xlate(x, node_addr_be, node_port_be, false);
}

/* Backend -> client, TCP. A SYN-ACK on an established flow is translated
 * only when it is the backend's retransmitted one (the ISN it had: the
 * client's ACK did not reach its socket, an accept queue was full); any
 * other belongs to a connection nodeport never saw (the same client reaching
 * the sandbox's own address from a port it used through the node port
 * before): it passes, and the old flow, now proven over, goes. */
static __noinline int tcp_egress(const struct pkt *p, struct xlat *x)
{
	struct np_flow_key key = to_client_key(p);
	__be32 node_addr_be[4];
	__be16 node_port_be;
	struct np_flow *f;
	__u64 now;

	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return tcp_handshake_egress(p, &key, NP_REASON_REPLY_NO_FLOW, x);
	now = np_now();
	/* An expired entry waits for the LRU; a new handshake on its tuple (the
	 * client's port reused, through another node port or after the entry's
	 * partner went) must still be found. */
	if (flow_expired(FLOWS_TCP, f, now))
		return tcp_handshake_egress(p, &key, NP_REASON_REPLY_EXPIRED, x);
	addr_copy(node_addr_be, f->addr_be);
	node_port_be = f->port_be;
	if (p->tcp_flags & NP_TCP_SYN) {
		/* Half closed too: the client may send its request and FIN
		 * while the backend, its accept queue full, still repeats it. */
		if (f->state != NP_FLOW_PICKED_UP && (f->tcp.flags & NP_SIDE_SEEN) && p->seq == f->tcp.isn)
			return xlate(x, node_addr_be, node_port_be, false);
		flow_pair_delete(FLOWS_TCP, &key, f);
		return NP_REASON_REPLY_NOT_OURS;
	}
	if (!tcp_track(&key, f, p, now))
		return NP_REASON_TCP_OUT_OF_WINDOW;
	return xlate(x, node_addr_be, node_port_be, false);
}

static __noinline int udp_egress(const struct pkt *p, struct xlat *x)
{
	struct np_flow_key key = to_client_key(p);
	__be32 node_addr_be[4];
	__be16 node_port_be;
	struct np_flow *f;
	__u64 now;

	f = bpf_map_lookup_elem(&udp_flows, &key);
	if (!f) {
		note_node_udp(p);
		return NP_REASON_REPLY_NO_FLOW;
	}
	now = np_now();
	if (flow_expired(FLOWS_UDP, f, now))
		return NP_REASON_REPLY_EXPIRED;
	addr_copy(node_addr_be, f->addr_be);
	node_port_be = f->port_be;
	flow_touch(FLOWS_UDP, &key, f, now);
	return xlate(x, node_addr_be, node_port_be, false);
}

/* An ICMP error leaving for a client about the client's packet as a backend
 * got it (client -> backend): sent by the sandbox (its UDP port is closed),
 * or by the node itself while forwarding the packet to the sandbox
 * ("fragmentation needed" into a sandbox network with a smaller MTU, TTL
 * exceeded). The client must find its socket by the embedded packet, so the
 * embedded destination becomes the node address and port it used, and the
 * outer source too when it is the backend's (the sandbox sent the error); an
 * error the node or a router sent keeps its own source, as with conntrack. */
static __noinline int icmp_egress(struct __sk_buff *skb, const struct pkt *p)
{
	struct np_flow_key key;
	struct icmp4_err e;
	__be32 node_addr_be[4];
	__be16 node_port_be;

	if (!icmp4_error_load(skb, p, &e))
		return pass(NP_REASON_REPLY_NO_FLOW);
	key = quoted_flow_key4(&e, NP_FLOW_TO_CLIENT);
	if (!flow_find(&key, np_now(), node_addr_be, &node_port_be))
		return pass(NP_REASON_REPLY_NO_FLOW);
	if (icmp4_error_rewrite(skb, p, &e, NAT_DST, node_addr_be[0], node_port_be, e.saddr_be == e.in_daddr_be))
		return pass(NP_REASON_REPLY_REWRITE_FAILED);
	count_from_backend(skb, p, key.proto, node_port_be);
	return TC_ACT_OK;
}

/* icmp_egress for ICMPv6. */
static __noinline int icmp6_egress(struct __sk_buff *skb, const struct pkt *p)
{
	struct np_flow_key key;
	struct icmp6_err e;
	__be32 node_addr_be[4];
	__be16 node_port_be;

	if (!icmp6_error_load(skb, p, &e))
		return pass(NP_REASON_REPLY_NO_FLOW);
	key = quoted_flow_key(e.in_saddr_be, e.in_sport_be, e.in_daddr_be, e.in_dport_be, e.in_next,
			      NP_FLOW_TO_CLIENT, NP_FAMILY_IPV6);
	if (!flow_find(&key, np_now(), node_addr_be, &node_port_be))
		return pass(NP_REASON_REPLY_NO_FLOW);
	if (icmp6_error_rewrite(skb, p, &e, NAT_DST, node_addr_be, node_port_be, addr_eq(e.saddr_be, e.in_daddr_be)))
		return pass(NP_REASON_REPLY_REWRITE_FAILED);
	count_from_backend(skb, p, key.proto, node_port_be);
	return TC_ACT_OK;
}

/*
 * Replies are translated on EGRESS of the client-facing interface, after the
 * kernel routed the backend's packet out of it, not on ingress of the bridge
 * side where the backend's packet enters the node. Rewritten there, the reply
 * would carry a local (node) source address into the input path: the kernel
 * drops it as martian, and netfilter conntrack marks the SYN-ACK INVALID
 * (both seen on the first design's test nodes). On egress the forward
 * decision and conntrack are already done with the backend's addresses,
 * which is the view conntrack expects.
 */
static __always_inline int tc_egress(struct __sk_buff *skb, const __u32 l2_hlen)
{
	enum np_reason why;
	struct xlat x;
	struct pkt p;
	int verdict;

	/* A reply that cannot be parsed is counted as no flow's: the ingress
	 * reasons are about what clients send. */
	NP_TEST_VARIANT_MARK();
	switch (parse_pkt(skb, l2_hlen, &p, &why)) {
	case PKT_L4:
		break;
	case PKT_ICMP:
		if (p.family == NP_FAMILY_IPV6)
			return icmp6_egress(skb, &p);
		return icmp_egress(skb, &p);
	case PKT_LATER_FRAGMENT:
		return later_fragment_egress(skb, &p);
	default:
		return pass(NP_REASON_REPLY_NO_FLOW);
	}
	if (p.first_fragment)
		frag_forget(&p, NP_FLOW_TO_CLIENT);
	if (p.proto == IPPROTO_TCP)
		verdict = tcp_egress(&p, &x);
	else
		verdict = udp_egress(&p, &x);
	if (verdict != XLATE)
		return pass(verdict);
	return to_client(skb, &p, &x);
}

SEC("tc")
int np_tc_egress(struct __sk_buff *skb)
{
	return tc_egress(skb, NP_ETH_HLEN);
}

SEC("tc")
int np_l3_egress(struct __sk_buff *skb)
{
	return tc_egress(skb, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
