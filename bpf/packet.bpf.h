/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Parsing of Ethernet / IPv4 or IPv6 / TCP|UDP|ICMP for the TC programs. The
 * result is a copy of the header fields plus offsets, never packet pointers: every helper
 * that rewrites the packet invalidates all packet pointers, so code after a
 * rewrite must not hold any. */
#ifndef NODEPORT_PACKET_BPF_H
#define NODEPORT_PACKET_BPF_H

#include "uapi.bpf.h"
#include <linux/ipv6.h>
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

/* Offsets from the start of the IPv4 header, which is pkt.l2_hlen bytes
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

/* IPv6: the fixed header, and the extension headers walked before the
 * TCP/UDP/ICMPv6 header. A packet with more, or with one nodeport does not
 * walk (AH, ESP, mobility), or a routing header that still names other hops
 * (segments left: the destination is not the final one), passes untouched
 * as NP_REASON_IP_OPTIONS, as IPv4 options do. */
#define NP_ETH_P_IPV6       0x86DD
#define NP_AF_INET6         10
#define NP_IP6_HLEN         40
#define NP_IP6_HOPLIMIT_OFF 7
#define NP_IP6_SADDR_OFF    8
#define NP_IP6_DADDR_OFF    24
#define NP_IP6_MAX_EXT      4
#define NP_IPPROTO_HOPOPTS  0
#define NP_IPPROTO_ROUTING  43
#define NP_IPPROTO_FRAGMENT 44
#define NP_IPPROTO_ICMPV6   58
#define NP_IPPROTO_DSTOPTS  60
#define NP_IP6_FRAG_OFFSET  0xfff8 /* fragment offset, in 8-byte units, above 3 flag bits */
#define NP_IP6_FRAG_MF      0x0001

/* One packet's addresses, ports and TCP numbers, of either family. Addresses
 * are held as the maps hold them (include/nodeport/abi.h): IPv4 in [0], the
 * rest 0, so the flow and port code does not care which family it handles. */
struct pkt {
	__be32 saddr_be[4];
	__be32 daddr_be[4];
	__be16 sport_be;        /* PKT_L4 only */
	__be16 dport_be;        /* PKT_L4 only */
	__u8 proto;             /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or NP_IPPROTO_ICMPV6 */
	__u8 family;            /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u8 tcp_flags;         /* byte 13 of the TCP header, 0 for UDP */
	__u8 first_fragment;    /* the first of several fragments (offset 0, more to come) */
	__u8 l2_hlen;           /* bytes before the IP header: NP_ETH_HLEN, or 0 on an L3 interface */
	__u8 tcp_hlen;          /* TCP only: the header's length with its options */
	__u16 ip_csum;          /* IPv4: the header checksum, as on the wire; IPv6 has none */
	__u16 l4_off;           /* from the IP header to the TCP/UDP/ICMP header: NP_L4_OFF for IPv4, the
				   fixed header and the extension headers for IPv6 */
	__be32 frag_id_be;      /* fragments only: IPv4's 16-bit IP id zero-extended, or IPv6's identification */
	/* TCP only, host order: what sequence tracking (flows.bpf.h) reads */
	__u32 seq;              /* the segment's sequence number */
	__u32 ack_seq;          /* its acknowledgement number (meaningful with NP_TCP_ACK) */
	__u32 seg_len;          /* payload bytes: all of a GRO or GSO skb's segments */
};

/* What parse_pkt found. */
enum pkt_kind {
	PKT_OTHER,          /* nothing nodeport translates; `why` says what */
	PKT_L4,             /* TCP or UDP with its ports: a whole datagram or a first fragment */
	PKT_LATER_FRAGMENT, /* a fragment after the first: addresses, protocol and id, no ports */
	PKT_ICMP,           /* ICMP or ICMPv6 (icmp.bpf.h reads the rest) */
};

static __always_inline bool addr_eq(const __be32 a[4], const __be32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline void addr_copy(__be32 dst[4], const __be32 src[4])
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

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

/* What the parsers fill in only for TCP, or for a fragment: 0 until then. */
static __always_inline void no_tcp_no_fragment(struct pkt *p)
{
	p->tcp_flags = 0;
	p->tcp_hlen = 0;
	p->seq = 0;
	p->ack_seq = 0;
	p->seg_len = 0;
	p->first_fragment = 0;
	p->frag_id_be = 0;
}

/* The TCP header's fields flows.bpf.h reads, from the header in the packet
 * (IPv4) or copied out of it (IPv6). */
static __always_inline void read_tcp(struct pkt *p, const struct tcphdr *tcp)
{
	p->sport_be = tcp->source;
	p->dport_be = tcp->dest;
	p->tcp_flags = ((const __u8 *)tcp)[13];
	p->seq = bpf_ntohl(tcp->seq);
	p->ack_seq = bpf_ntohl(tcp->ack_seq);
	p->tcp_hlen = tcp->doff * 4;
}

/* Fills `p` as far as `kind` says, for an IPv4 packet without IP options
 * after `l2_hlen` bytes of link-layer header; anything else is PKT_OTHER and
 * `why` says which it was. Only a whole datagram or a first fragment carries
 * ports; a later fragment is matched to its first by its IP id (frag.bpf.h). */
static __always_inline enum pkt_kind parse_pkt4(struct __sk_buff *skb, __u32 l2_hlen, struct pkt *p,
						enum np_reason *why)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 l4_len, ip_len;

	*why = NP_REASON_TRUNCATED;
	if (!headers_linear(skb, l2_hlen + NP_L4_OFF))
		return PKT_OTHER;
	load_pkt(skb, data, data_end);
	eth = data;
	iph = data + l2_hlen;
	if ((void *)(iph + 1) > data_end)
		return PKT_OTHER;
	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	/* A VLAN tag left in the frame (no VLAN offload) sits where the
	 * ethertype would be; skb->protocol alone does not rule it out. */
	if (l2_hlen == NP_ETH_HLEN && eth->h_proto != bpf_htons(NP_ETH_P_IP))
		return PKT_OTHER;
	if (iph->protocol == IPPROTO_TCP)
		l4_len = NP_TCP_HLEN;
	else if (iph->protocol == IPPROTO_UDP || iph->protocol == IPPROTO_ICMP)
		l4_len = NP_UDP_HLEN; /* an ICMP header is 8 bytes too; icmp.bpf.h reads it */
	else
		return PKT_OTHER;
	/* First byte 0x45: version 4 and ihl 5. Options would move the L4 header
	 * and are close to unused; they pass untranslated. */
	*why = NP_REASON_IP_OPTIONS;
	if (*(__u8 *)iph != 0x45)
		return PKT_OTHER;
	p->family = NP_FAMILY_IPV4;
	p->l2_hlen = l2_hlen;
	p->l4_off = NP_L4_OFF;
	p->saddr_be[0] = iph->saddr;
	p->daddr_be[0] = iph->daddr;
	p->saddr_be[1] = p->saddr_be[2] = p->saddr_be[3] = 0;
	p->daddr_be[1] = p->daddr_be[2] = p->daddr_be[3] = 0;
	p->ip_csum = iph->check;
	p->proto = iph->protocol;
	ip_len = bpf_ntohs(iph->tot_len);
	no_tcp_no_fragment(p);
	if (iph->frag_off & bpf_htons(NP_IP_MF | NP_IP_OFFSET)) {
		*why = NP_REASON_FRAGMENT;
		p->frag_id_be = bpf_htonl(bpf_ntohs(iph->id));
		if (iph->frag_off & bpf_htons(NP_IP_OFFSET))
			return PKT_LATER_FRAGMENT;
		p->first_fragment = 1;
	}
	if (p->proto == IPPROTO_ICMP)
		return PKT_ICMP;

	*why = NP_REASON_TRUNCATED;
	if (!headers_linear(skb, l2_hlen + NP_L4_OFF + l4_len))
		return PKT_OTHER;
	/* Reloaded: headers_linear may have pulled. */
	load_pkt(skb, data, data_end);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + l2_hlen + NP_L4_OFF;

		if ((void *)(tcp + 1) > data_end)
			return PKT_OTHER;
		read_tcp(p, tcp);
		/* From tot_len: on ingress skb->len still counts the padding
		 * of a short Ethernet frame. A BIG TCP GRO skb has tot_len 0:
		 * then from the skb's length. Clamped, so a header longer than
		 * the packet says nothing odd. */
		l4_len = NP_L4_OFF + p->tcp_hlen;
		if (!ip_len)
			ip_len = skb->len - l2_hlen;
		p->seg_len = ip_len > l4_len ? ip_len - l4_len : 0;
	} else {
		struct udphdr *udp = data + l2_hlen + NP_L4_OFF;

		if ((void *)(udp + 1) > data_end)
			return PKT_OTHER;
		p->sport_be = udp->source;
		p->dport_be = udp->dest;
	}
	return PKT_L4;
}

/* The start of any IPv6 extension header nodeport walks, and all of a
 * fragment header. */
struct ip6_ext {
	__u8 next;
	__u8 len;         /* in 8-byte units, not counting the first 8 (0 in a fragment header) */
	__u8 byte2;       /* routing: its type; fragment: the offset's high byte */
	__u8 byte3;       /* routing: segments left; fragment: the offset's low bits and the M flag */
	__be32 frag_id_be;
};

/* parse_pkt4 for IPv6. The headers are copied out with bpf_skb_load_bytes,
 * which reads paged data too and leaves no packet pointer to check: the
 * extension headers put the L4 header at a variable offset. The walk is
 * bounded (NP_IP6_MAX_EXT). A fragment header carries the id the later
 * fragments are matched by, as IPv4's IP id; an atomic fragment (offset 0,
 * no more) is a whole datagram. */
static __noinline enum pkt_kind parse_pkt6(struct __sk_buff *skb, __u32 l2_hlen, struct pkt *p,
						enum np_reason *why)
{
	/* The ethertype and the IPv6 header in one read: two bytes of room
	 * before them keep the header 4-byte aligned on the stack. */
	struct {
		__u16 room;
		__be16 h_proto;
		struct ipv6hdr ip6;
	} hdr;
	const struct ipv6hdr *ip6h = &hdr.ip6;
	struct ip6_ext ext;
	__u32 off = l2_hlen + NP_IP6_HLEN, ip_len;
	bool fragment = false, later = false;
	__u8 next;

	*why = NP_REASON_TRUNCATED;
	if (l2_hlen == NP_ETH_HLEN ? bpf_skb_load_bytes(skb, 12, &hdr.h_proto, 2 + NP_IP6_HLEN)
				   : bpf_skb_load_bytes(skb, 0, &hdr.ip6, NP_IP6_HLEN))
		return PKT_OTHER;
	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	/* A VLAN tag left in the frame sits where the ethertype would be. */
	if (l2_hlen == NP_ETH_HLEN && hdr.h_proto != bpf_htons(NP_ETH_P_IPV6))
		return PKT_OTHER;
	if (*(const __u8 *)ip6h >> 4 != 6) /* the version, without the header's bitfields */
		return PKT_OTHER;
	p->family = NP_FAMILY_IPV6;
	p->l2_hlen = l2_hlen;
	__builtin_memcpy(p->saddr_be, &ip6h->saddr, 16);
	__builtin_memcpy(p->daddr_be, &ip6h->daddr, 16);
	p->ip_csum = 0;
	no_tcp_no_fragment(p);
	next = ip6h->nexthdr;
	for (int i = 0; i < NP_IP6_MAX_EXT; i++) {
		if (next != NP_IPPROTO_HOPOPTS && next != NP_IPPROTO_ROUTING && next != NP_IPPROTO_DSTOPTS &&
		    next != NP_IPPROTO_FRAGMENT)
			break;
		*why = NP_REASON_TRUNCATED;
		if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)))
			return PKT_OTHER;
		*why = NP_REASON_IP_OPTIONS;
		if (next == NP_IPPROTO_FRAGMENT) {
			__u16 frag = (ext.byte2 << 8) | ext.byte3;

			if (fragment)
				return PKT_OTHER; /* two fragment headers */
			fragment = true;
			if (frag & (NP_IP6_FRAG_OFFSET | NP_IP6_FRAG_MF)) {
				p->frag_id_be = ext.frag_id_be;
				later = frag & NP_IP6_FRAG_OFFSET;
				p->first_fragment = !later;
			}
			off += 8;
		} else {
			if (next == NP_IPPROTO_ROUTING && ext.byte3 != 0)
				return PKT_OTHER;
			off += (ext.len + 1) * 8;
		}
		next = ext.next;
	}
	p->proto = next;
	p->l4_off = off - l2_hlen;
	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	if (next != IPPROTO_TCP && next != IPPROTO_UDP && next != NP_IPPROTO_ICMPV6) {
		if (next == NP_IPPROTO_HOPOPTS || next == NP_IPPROTO_ROUTING || next == NP_IPPROTO_DSTOPTS ||
		    next == NP_IPPROTO_FRAGMENT)
			*why = NP_REASON_IP_OPTIONS; /* more than NP_IP6_MAX_EXT */
		return PKT_OTHER;
	}
	if (later) {
		*why = NP_REASON_FRAGMENT;
		return PKT_LATER_FRAGMENT;
	}
	if (next == NP_IPPROTO_ICMPV6)
		return PKT_ICMP;

	*why = NP_REASON_TRUNCATED;
	if (next == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (bpf_skb_load_bytes(skb, off, &tcp, sizeof(tcp)))
			return PKT_OTHER;
		read_tcp(p, &tcp);
		/* payload_len 0: a BIG TCP GRO skb (its jumbo option already
		 * gone): from the skb's length, as for IPv4. */
		ip_len = ip6h->payload_len ? NP_IP6_HLEN + bpf_ntohs(ip6h->payload_len) : skb->len - l2_hlen;
		off += p->tcp_hlen;
		p->seg_len = ip_len > off - l2_hlen ? ip_len - (off - l2_hlen) : 0;
	} else {
		struct udphdr udp;

		if (bpf_skb_load_bytes(skb, off, &udp, sizeof(udp)))
			return PKT_OTHER;
		p->sport_be = udp.source;
		p->dport_be = udp.dest;
	}
	return PKT_L4;
}

/* The packet's family from skb->protocol, before touching the packet: the
 * common miss (ARP) costs nothing more. */
static __always_inline enum pkt_kind parse_pkt(struct __sk_buff *skb, __u32 l2_hlen, struct pkt *p,
					       enum np_reason *why)
{
	if (skb->protocol == bpf_htons(NP_ETH_P_IP))
		return parse_pkt4(skb, l2_hlen, p, why);
	if (skb->protocol == bpf_htons(NP_ETH_P_IPV6))
		return parse_pkt6(skb, l2_hlen, p, why);
	*why = NP_REASON_NOT_IPV4_TCP_UDP;
	return PKT_OTHER;
}

/* A TCP SYN without ACK: the only packet that may start a TCP flow. A SYN-ACK
 * to a node port is the reply to one of the node's own connections. */
static __always_inline bool is_tcp_syn(const struct pkt *p)
{
	return p->proto == IPPROTO_TCP && (p->tcp_flags & (NP_TCP_SYN | NP_TCP_ACK)) == NP_TCP_SYN;
}

#endif /* NODEPORT_PACKET_BPF_H */
