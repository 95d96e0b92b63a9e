// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * External forwarding: TC programs on the node's client-facing interface NAT
 * the packets of clients outside the node to the backend of a node port, the
 * job an iptables DNAT rule plus conntrack did.
 *
 *  np_tc_ingress  client -> node addr:port   becomes  client -> backend
 *  np_tc_egress   backend -> client          becomes  node addr:port -> client
 *
 * The translated packet is then routed by the kernel (TC_ACT_OK), so the node
 * needs net.ipv4.ip_forward=1; `fib_redirect` optionally routes it here.
 *
 * Every program fails open: whatever it cannot parse, does not own or fails
 * to translate goes on untouched (TC_ACT_OK). These programs sit on the
 * node's main interface, so dropping would cut the node's own traffic (ssh,
 * ARP, IPv6, ...) because of a nodeport bug or a full table.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "packet.bpf.h"
#include "nat.bpf.h"
#include "flows.bpf.h"
#include "fib.bpf.h"

#define NSEC_PER_SEC 1000000000ULL

/* Idle timeouts, set through skel->rodata before load. A flow idle for longer
 * is forgotten: its packets pass untouched and a new SYN (or, for UDP, any
 * packet) starts a fresh flow. The TCP default is above Linux's default
 * keepalive time (7200 s), so a keepalive probe still finds an idle
 * connection's flow. */
const volatile __u64 tcp_idle_ns = 7800 * NSEC_PER_SEC;
const volatile __u64 udp_idle_ns = 60 * NSEC_PER_SEC;
/* Route translated client packets with bpf_fib_lookup + bpf_redirect_neigh
 * instead of the kernel's forward path; see fib.bpf.h for the catch. Replies
 * need nothing like it: egress already is their way out. */
const volatile bool fib_redirect = false;

static __always_inline __u64 idle_ns(const struct pkt4 *p)
{
	return p->proto == IPPROTO_TCP ? tcp_idle_ns : udp_idle_ns;
}

/* For UDP there is no SYN: a datagram to a node port starts a flow unless a
 * socket on the node owns its tuple (a reply to the node's own query from a
 * local port that happens to be a node port, or a node service bound there). */
static __always_inline bool udp_owned_by_node(struct __sk_buff *skb, const struct pkt4 *p)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;

	tuple.ipv4.saddr = p->saddr_be;
	tuple.ipv4.daddr = p->daddr_be;
	tuple.ipv4.sport = p->sport_be;
	tuple.ipv4.dport = p->dport_be;
	sk = bpf_sk_lookup_udp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	bpf_sk_release(sk); /* the verifier insists every lookup is released */
	return true;
}

static __always_inline bool starts_flow(struct __sk_buff *skb, const struct pkt4 *p)
{
	if (p->proto == IPPROTO_TCP)
		return is_tcp_syn(p);
	return !udp_owned_by_node(skb, p);
}

/* Sends the client's packet to `addr_be`:`port_be`. */
static __always_inline int to_backend(struct __sk_buff *skb, const struct pkt4 *p, __be32 addr_be, __be16 port_be)
{
	if (nat4_rewrite(skb, p, NAT_DST, addr_be, port_be))
		return TC_ACT_OK;
	if (fib_redirect)
		return fib_redirect4(skb);
	return TC_ACT_OK;
}

SEC("tc")
int np_tc_ingress(struct __sk_buff *skb)
{
	struct np_flow_key key;
	const struct np_backend *be;
	struct np_flow *f;
	struct pkt4 p;
	__u64 now;

	if (!parse_pkt4(skb, &p))
		return TC_ACT_OK;
	now = bpf_ktime_get_ns();

	/* The flow table first: a flow keeps its backend after its port is
	 * remapped. The node's own connections are never in the table, and
	 * their packets never start a flow below (a SYN-ACK is not a SYN, a
	 * datagram to a local socket is owned), so a node port that equals
	 * their local port does not catch them. */
	key = to_backend_key(&p);
	f = bpf_map_lookup_elem(&flows, &key);
	if (f && !flow_idle(f, now, idle_ns(&p)) && !(f->state == NP_FLOW_CLOSING && is_tcp_syn(&p))) {
		__be32 addr_be = f->addr_be;
		__be16 port_be = f->port_be;

		flow_touch(&key, f, now, is_tcp_fin_or_rst(&p));
		return to_backend(skb, &p, addr_be, port_be);
	}

	/* A new flow: to a node address and a mapped port, and a flow start. */
	if (!is_node_addr4(p.daddr_be))
		return TC_ACT_OK;
	be = lookup_port(p.proto, p.dport_be);
	if (!be || be->family != NP_FAMILY_IPV4)
		return TC_ACT_OK;
	if (!starts_flow(skb, &p))
		return TC_ACT_OK;
	/* Copied out: the map value may change under us, and both the flow and
	 * the rewrite must use the same backend. */
	__be32 backend_addr_be = be->addr_be[0];
	__be16 backend_port_be = be->port_be;

	if (!flow_create(&p, backend_addr_be, backend_port_be, now, idle_ns(&p)))
		return TC_ACT_OK;
	return to_backend(skb, &p, backend_addr_be, backend_port_be);
}

/*
 * Replies are translated on EGRESS of the client-facing interface, after the
 * kernel routed the backend's packet out of it, not on ingress of the bridge
 * side where the backend's packet enters the node. Rewritten there, the reply
 * would carry a local (node) source address into the input path: the kernel
 * drops it as martian, and netfilter conntrack marks the SYN-ACK INVALID
 * (FACTS.md). On egress the forward decision and conntrack are already done
 * with the backend's addresses, which is the view conntrack expects.
 */
SEC("tc")
int np_tc_egress(struct __sk_buff *skb)
{
	struct np_flow_key key;
	struct np_flow *f;
	struct pkt4 p;
	__u64 now;

	if (!parse_pkt4(skb, &p))
		return TC_ACT_OK;
	key = to_client_key(&p);
	f = bpf_map_lookup_elem(&flows, &key);
	if (!f)
		return TC_ACT_OK;
	now = bpf_ktime_get_ns();
	if (flow_idle(f, now, idle_ns(&p)))
		return TC_ACT_OK;

	__be32 node_addr_be = f->addr_be;
	__be16 node_port_be = f->port_be;

	flow_touch(&key, f, now, is_tcp_fin_or_rst(&p));
	nat4_rewrite(skb, &p, NAT_SRC, node_addr_be, node_port_be);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
