/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Parsing of Ethernet / IPv4 / TCP|UDP|ICMP for the TC programs. The result is a
 * copy of the header fields plus offsets, never packet pointers: every helper
 * that rewrites the packet invalidates all packet pointers, so code after a
 * rewrite must not hold any. */
#ifndef NODEPORT_PACKET_BPF_H
#define NODEPORT_PACKET_BPF_H

#include "uapi.bpf.h"
#include "nodeport/abi.h" /* enum np_reason */

#define NP_ETH_HLEN   14
#define NP_ETH_P_IP   0x0800
#define NP_AF_INET    2
#define NP_IP_MF      0x2000 /* more fragments */
#define NP_IP_OFFSET  0x1fff /* fragment offset, in 8-byte units */
#define NP_TCP_FIN    0x01
#define NP_TCP_SYN    0x02
#define NP_TCP_RST    0x04
#define NP_TCP_ACK    0x10

/* Offsets from the start of the IPv4 header, which is pkt4.l2_hlen bytes
 * into the packet: NP_ETH_HLEN after an Ethernet header, 0 on an interface
 * without one (L3: WireGuard, tun, ipip, GRE, ppp), where skb->data is the
 * IPv4 header itself. Each program is built for one of the two (tc.bpf.c),
 * so the sum is a constant. Only option-less IPv4 (ihl 5) is handled, so the
 * L4 header always starts at the same place. Plain numbers, not offsetof():
 * with the vmlinux.h these programs were once built against, every struct was
 * preserve_access_index, offsetof() on them became a CO-RE relocation, and
 * clang 14 miscompiled a ternary between two of those (it emitted a load from
 * address 6 or 16). Wire formats do not move between kernels anyway. */
#define NP_IP_TTL_OFF   8
#define NP_IP_CSUM_OFF  10
#define NP_IP_SADDR_OFF 12
#define NP_IP_DADDR_OFF 16
#define NP_L4_OFF       20
/* TCP and UDP both start with source port, then destination port. */
#define NP_L4_SPORT_OFF NP_L4_OFF
#define NP_L4_DPORT_OFF (NP_L4_OFF + 2)
#define NP_TCP_CSUM_OFF (NP_L4_OFF + 16)
#define NP_UDP_CSUM_OFF (NP_L4_OFF + 6)
#define NP_TCP_HLEN     20
#define NP_UDP_HLEN     8

struct pkt4 {
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;        /* PKT4_L4 only */
	__be16 dport_be;        /* PKT4_L4 only */
	__u8 proto;             /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP */
	__u8 tcp_flags;         /* byte 13 of the TCP header, 0 for UDP */
	__u16 ip_csum;          /* the IPv4 header checksum, as on the wire */
	__be16 ip_id_be;        /* the IP id: set for fragments only */
	__u8 first_fragment;    /* the first of several fragments (MF set, offset 0) */
	__u8 l2_hlen;           /* bytes before the IPv4 header: NP_ETH_HLEN, or 0 on an L3 interface */
	/* TCP only, host order: what sequence tracking (flows.bpf.h) reads */
	__u32 seq;              /* the segment's sequence number */
	__u32 ack_seq;          /* its acknowledgement number (meaningful with NP_TCP_ACK) */
	__u32 seg_len;          /* payload bytes: all of a GRO or GSO skb's segments */
};

/* What parse_pkt4 found. */
enum pkt4_kind {
	PKT4_OTHER,          /* nothing nodeport translates; `why` says what */
	PKT4_L4,             /* TCP or UDP with its ports: a whole datagram or a first fragment */
	PKT4_LATER_FRAGMENT, /* a fragment after the first: addresses, protocol and IP id, no ports */
	PKT4_ICMP,           /* ICMP (icmp.bpf.h reads the rest) */
};

/* Packet pointers, loaded fresh. barrier_var(skb) works around clang 14:
 * it may compute skb + offsetof(data) once, keep it in a register across
 * branches and helper calls, and load through it later; the verifier only
 * accepts context loads at a constant offset from the context register
 * itself ("dereference of modified ctx ptr"). The barrier makes the compiler
 * forget what skb pointed to, so each load is `rX = *(u32 *)(skb + 76)`. */
#define load_pkt(skb, data, data_end)                          \
	do {                                                   \
		barrier_var(skb);                              \
		data = (void *)(long)(skb)->data;              \
		data_end = (void *)(long)(skb)->data_end;      \
	} while (0)

/* True when the first `len` bytes are in the linear area, where direct packet
 * access sees them. Headers of a forwarded or GRO-built skb may sit partly in
 * paged data; pulling them is rare, so its cost (the skb may be unshared)
 * does not matter. The pull fails on a packet shorter than `len`.
 * Every caller must reload data/data_end afterwards: the helper invalidates
 * all packet pointers. */
static __always_inline bool headers_linear(struct __sk_buff *skb, __u32 len)
{
	void *data, *data_end;

	load_pkt(skb, data, data_end);
	if (data + len <= data_end)
		return true;
	return bpf_skb_pull_data(skb, len) == 0;
}

/* Fills `p` as far as `kind` says, for an IPv4 packet without IP options
 * after `l2_hlen` bytes of link-layer header; anything else is PKT4_OTHER and
 * `why` says which it was. Only a whole datagram or a first fragment carries
 * ports; a later fragment is matched to its first by its IP id (frag.bpf.h). */
static __always_inline enum pkt4_kind parse_pkt4(struct __sk_buff *skb, __u32 l2_hlen, struct pkt4 *p,
						 enum np_reason *why)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 l4_len, ip_len;

	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	/* Not IPv4 (ARP, IPv6) is the common miss: decided from skb->protocol
	 * before touching the packet. */
	if (skb->protocol != bpf_htons(NP_ETH_P_IP))
		return PKT4_OTHER;
	*why = NP_REASON_TRUNCATED;
	if (!headers_linear(skb, l2_hlen + NP_L4_OFF))
		return PKT4_OTHER;
	load_pkt(skb, data, data_end);
	eth = data;
	iph = data + l2_hlen;
	if ((void *)(iph + 1) > data_end)
		return PKT4_OTHER;
	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	/* A VLAN tag left in the frame (no VLAN offload) sits where the
	 * ethertype would be; skb->protocol alone does not rule it out. */
	if (l2_hlen == NP_ETH_HLEN && eth->h_proto != bpf_htons(NP_ETH_P_IP))
		return PKT4_OTHER;
	if (iph->protocol == IPPROTO_TCP)
		l4_len = NP_TCP_HLEN;
	else if (iph->protocol == IPPROTO_UDP || iph->protocol == IPPROTO_ICMP)
		l4_len = NP_UDP_HLEN; /* an ICMP header is 8 bytes too; icmp.bpf.h reads it */
	else
		return PKT4_OTHER;
	/* First byte 0x45: version 4 and ihl 5. Options would move the L4 header
	 * and are close to unused; they pass untranslated. */
	*why = NP_REASON_IP_OPTIONS;
	if (*(__u8 *)iph != 0x45)
		return PKT4_OTHER;
	p->l2_hlen = l2_hlen;
	p->saddr_be = iph->saddr;
	p->daddr_be = iph->daddr;
	p->ip_csum = iph->check;
	p->proto = iph->protocol;
	ip_len = bpf_ntohs(iph->tot_len);
	p->tcp_flags = 0;
	p->seq = 0;
	p->ack_seq = 0;
	p->seg_len = 0;
	p->first_fragment = 0;
	if (iph->frag_off & bpf_htons(NP_IP_MF | NP_IP_OFFSET)) {
		*why = NP_REASON_FRAGMENT;
		p->ip_id_be = iph->id;
		if (iph->frag_off & bpf_htons(NP_IP_OFFSET))
			return PKT4_LATER_FRAGMENT;
		p->first_fragment = 1;
	}
	if (p->proto == IPPROTO_ICMP)
		return PKT4_ICMP;

	*why = NP_REASON_TRUNCATED;
	if (!headers_linear(skb, l2_hlen + NP_L4_OFF + l4_len))
		return PKT4_OTHER;
	/* Reloaded: headers_linear may have pulled. */
	load_pkt(skb, data, data_end);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + l2_hlen + NP_L4_OFF;

		if ((void *)(tcp + 1) > data_end)
			return PKT4_OTHER;
		p->sport_be = tcp->source;
		p->dport_be = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
		p->seq = bpf_ntohl(tcp->seq);
		p->ack_seq = bpf_ntohl(tcp->ack_seq);
		/* From tot_len: on ingress skb->len still counts the padding
		 * of a short Ethernet frame. A BIG TCP GRO skb has tot_len 0:
		 * then from the skb's length. Clamped, so a header longer than
		 * the packet says nothing odd. */
		l4_len = NP_L4_OFF + tcp->doff * 4;
		if (!ip_len)
			ip_len = skb->len - l2_hlen;
		p->seg_len = ip_len > l4_len ? ip_len - l4_len : 0;
	} else {
		struct udphdr *udp = data + l2_hlen + NP_L4_OFF;

		if ((void *)(udp + 1) > data_end)
			return PKT4_OTHER;
		p->sport_be = udp->source;
		p->dport_be = udp->dest;
	}
	return PKT4_L4;
}

/* A TCP SYN without ACK: the only packet that may start a TCP flow. A SYN-ACK
 * to a node port is the reply to one of the node's own connections. */
static __always_inline bool is_tcp_syn(const struct pkt4 *p)
{
	return p->proto == IPPROTO_TCP && (p->tcp_flags & (NP_TCP_SYN | NP_TCP_ACK)) == NP_TCP_SYN;
}

#endif /* NODEPORT_PACKET_BPF_H */
