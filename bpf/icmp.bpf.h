/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* ICMP errors about a translated packet, rewritten as conntrack's NAT does
 * (nf_nat_icmp_reply_translation): an error (destination unreachable, which
 * includes "fragmentation needed", time exceeded, parameter problem) embeds
 * the IPv4 header and at least the first 8 bytes of the packet it is about,
 * and the host that gets it finds the socket by that embedded packet. So when
 * nodeport translated that packet, the error's embedded addresses and ports
 * are translated the same way, and so is the outer address that names the
 * same host. How the TC programs decide which errors: tc.bpf.c. */
#ifndef NODEPORT_ICMP_BPF_H
#define NODEPORT_ICMP_BPF_H

#include "packet.bpf.h"
#include "nat.bpf.h"

#define NP_ICMP_DEST_UNREACH  3
#define NP_ICMP_TIME_EXCEEDED 11
#define NP_ICMP_PARAMETERPROB 12

/* The bytes from the outer IPv4 header checksum to the end of the first 8
 * bytes of the embedded TCP/UDP header, as on the wire (outer and embedded
 * ihl 5): what an error must carry, read and written in one piece. */
struct icmp4_err {
	/* the outer IPv4 header, from its checksum */
	__u16 ip_csum;
	__be32 saddr_be;
	__be32 daddr_be;
	/* the ICMP header */
	__u8 type;
	__u8 code;
	__u16 icmp_csum;
	__be32 rest; /* unused, the next hop's MTU, or a pointer: not touched */
	/* the embedded IPv4 header */
	__u8 in_ver_ihl;
	__u8 in_tos;
	__be16 in_tot_len_be;
	__be16 in_id_be;
	__be16 in_frag_off_be;
	__u8 in_ttl;
	__u8 in_proto;
	__u16 in_ip_csum;
	__be32 in_saddr_be;
	__be32 in_daddr_be;
	/* the first 8 bytes of the embedded TCP or UDP header */
	__be16 in_sport_be;
	__be16 in_dport_be;
	__be16 in_l4_word2; /* UDP length; TCP sequence number */
	__be16 in_l4_word3; /* UDP checksum; TCP sequence number */
} __attribute__((packed));

/* From the outer IPv4 header, like packet.bpf.h's offsets. */
#define NP_ICMP_ERR_OFF      NP_IP_CSUM_OFF
#define NP_ICMP_INNER_L4_OFF (NP_L4_OFF + 8 + 20)
/* The embedded TCP/UDP checksums. TCP's lies 16 bytes into its header, beyond
 * the 8 bytes an error must carry: present in errors from Linux (which quote
 * up to 576 bytes), maybe not in a router's. */
#define NP_ICMP_INNER_TCP_CSUM_OFF (NP_ICMP_INNER_L4_OFF + 16)
#define NP_ICMP_INNER_UDP_CSUM_OFF (NP_ICMP_INNER_L4_OFF + 6)
_Static_assert(sizeof(struct icmp4_err) == 46 && __builtin_offsetof(struct icmp4_err, type) == 10 &&
		       __builtin_offsetof(struct icmp4_err, in_ver_ihl) == 18 &&
		       __builtin_offsetof(struct icmp4_err, in_sport_be) == 38,
	       "icmp4_err is packed as on the wire");
_Static_assert(NP_ICMP_ERR_OFF + 10 == NP_L4_OFF && NP_ICMP_ERR_OFF + 38 == NP_ICMP_INNER_L4_OFF,
	       "icmp4_err matches the outer IPv4, ICMP and embedded IPv4 header layout");

/* Reads the ICMP packet `p` (parse_pkt said PKT_ICMP) into `e`. False when
 * it is not an error nodeport translates: another type (echo, redirect, ...),
 * a fragmented ICMP message (errors are short: Linux sends at most 576 bytes),
 * or one about a packet that is not an option-less TCP/UDP datagram or first
 * fragment with its ports (Linux sends no error about a later fragment), or
 * too short to hold all that. bpf_skb_load_bytes also reads paged data, so
 * nothing needs pulling. */
static __always_inline bool icmp4_error_load(struct __sk_buff *skb, const struct pkt *p, struct icmp4_err *e)
{
	if (p->first_fragment)
		return false;
	if (bpf_skb_load_bytes(skb, p->l2_hlen + NP_ICMP_ERR_OFF, e, sizeof(*e)))
		return false;
	if (e->type != NP_ICMP_DEST_UNREACH && e->type != NP_ICMP_TIME_EXCEEDED && e->type != NP_ICMP_PARAMETERPROB)
		return false;
	if (e->in_ver_ihl != 0x45 || (e->in_proto != IPPROTO_TCP && e->in_proto != IPPROTO_UDP))
		return false;
	return !(e->in_frag_off_be & bpf_htons(NP_IP_OFFSET));
}

/* Rewrites the embedded packet of error `e` (read from `p`) at its source
 * (NAT_SRC) or destination (NAT_DST) to `addr_be`:`port_be`, and, when
 * `outer`, the outer address on the other side, which then named the same
 * host (the error travels back the way the embedded packet came). Checksums, as conntrack keeps them: the embedded
 * IPv4 header's; the embedded TCP/UDP checksum when the error carries it (a
 * zero UDP checksum stays zero; nobody verifies it, but the packet then reads
 * as the one really sent); the ICMP checksum over all of those changes; the
 * outer IPv4 header's. Each change is balanced by a checksum's, so the sum
 * over the whole packet stays what it was, and skb->csum (CHECKSUM_COMPLETE)
 * needs no update: plain stores, no csum helpers. Returns 0 or a negative
 * errno from a store. */
static __always_inline int icmp4_error_rewrite(struct __sk_buff *skb, const struct pkt *p, struct icmp4_err *e,
					       enum nat_side inner_side, __be32 addr_be, __be16 port_be, bool outer)
{
	__be32 old_addr_be = inner_side == NAT_SRC ? e->in_saddr_be : e->in_daddr_be;
	__be16 old_port_be = inner_side == NAT_SRC ? e->in_sport_be : e->in_dport_be;
	/* The embedded TCP/UDP checksum covers both: the address through the
	 * pseudo-header. */
	__u32 d_tuple = csum_delta16(csum_delta32(0, old_addr_be, addr_be), old_port_be, port_be);
	__u32 l4_csum_off =
		p->l2_hlen + (e->in_proto == IPPROTO_TCP ? NP_ICMP_INNER_TCP_CSUM_OFF : NP_ICMP_INNER_UDP_CSUM_OFF);
	__u16 in_ip_csum = csum_replace4(e->in_ip_csum, old_addr_be, addr_be);
	__u32 d_icmp = csum_delta16(d_tuple, e->in_ip_csum, in_ip_csum);
	__u16 l4_csum = 0, new_l4_csum = 0;
	bool l4_csum_present;
	int err;

	l4_csum_present = bpf_skb_load_bytes(skb, l4_csum_off, &l4_csum, sizeof(l4_csum)) == 0 &&
			  !(e->in_proto == IPPROTO_UDP && l4_csum == 0);
	if (l4_csum_present) {
		new_l4_csum = csum_apply(l4_csum, d_tuple);
		if (e->in_proto == IPPROTO_UDP && new_l4_csum == 0)
			new_l4_csum = 0xffff; /* 0 would say "no checksum" */
		d_icmp = csum_delta16(d_icmp, l4_csum, new_l4_csum);
	}

	e->in_ip_csum = in_ip_csum;
	if (inner_side == NAT_SRC) {
		e->in_saddr_be = addr_be;
		e->in_sport_be = port_be;
	} else {
		e->in_daddr_be = addr_be;
		e->in_dport_be = port_be;
	}
	e->icmp_csum = csum_apply(e->icmp_csum, d_icmp);
	if (outer) {
		e->ip_csum = csum_replace4(e->ip_csum, old_addr_be, addr_be);
		if (inner_side == NAT_SRC)
			e->daddr_be = addr_be;
		else
			e->saddr_be = addr_be;
	}
	err = bpf_skb_store_bytes(skb, p->l2_hlen + NP_ICMP_ERR_OFF, e, sizeof(*e), 0);
	/* After the span: for UDP the checksum is inside it, stored again here. */
	if (!err && l4_csum_present)
		err = bpf_skb_store_bytes(skb, l4_csum_off, &new_l4_csum, sizeof(new_l4_csum), 0);
	return err;
}

/* ---- ICMPv6 (RFC 4443) ----
 * The same for IPv6: destination unreachable, packet too big (IPv6 routers
 * never fragment: path MTU discovery rests on it), time exceeded and
 * parameter problem quote the packet they are about, from its IPv6 header
 * on. Unlike ICMP's, the ICMPv6 checksum covers a pseudo-header of the outer
 * addresses, and IPv6 headers have no checksum of their own. Neighbour
 * discovery, echo and the rest are not errors and pass untouched. */
#define NP_ICMP6_DEST_UNREACH  1
#define NP_ICMP6_PACKET_TOO_BIG 2
#define NP_ICMP6_TIME_EXCEEDED 3
#define NP_ICMP6_PARAMPROB     4

/* From the outer source address to the end of the first 8 bytes of the
 * quoted TCP/UDP header, as on the wire, for an error whose outer header
 * and quoted header carry no extension headers: what such an error must
 * carry, read and written in one piece. */
struct icmp6_err {
	/* the outer IPv6 header, from its source address */
	__be32 saddr_be[4];
	__be32 daddr_be[4];
	/* the ICMPv6 header */
	__u8 type;
	__u8 code;
	__u16 icmp_csum;
	__be32 rest; /* unused, the MTU (packet too big) or a pointer (parameter problem): not touched */
	/* the quoted IPv6 header */
	__be32 in_ver_tc_flow;
	__be16 in_payload_len_be;
	__u8 in_next;
	__u8 in_hop_limit;
	__be32 in_saddr_be[4];
	__be32 in_daddr_be[4];
	/* the first 8 bytes of the quoted TCP or UDP header */
	__be16 in_sport_be;
	__be16 in_dport_be;
	__be16 in_l4_word2;
	__be16 in_l4_word3;
}; /* every field at its natural alignment: no padding, and no packed attribute (addresses of fields are taken) */

#define NP_ICMP6_ERR_OFF      NP_IP6_SADDR_OFF
#define NP_ICMP6_INNER_L4_OFF (NP_IP6_HLEN + 8 + NP_IP6_HLEN)

_Static_assert(sizeof(struct icmp6_err) == 88 && __builtin_offsetof(struct icmp6_err, type) == 32 &&
		       __builtin_offsetof(struct icmp6_err, in_saddr_be) == 48 &&
		       __builtin_offsetof(struct icmp6_err, in_sport_be) == 80,
	       "icmp6_err is laid out as on the wire");
_Static_assert(NP_ICMP6_ERR_OFF + 32 == NP_IP6_HLEN && NP_ICMP6_ERR_OFF + 80 == NP_ICMP6_INNER_L4_OFF,
	       "icmp6_err matches the outer IPv6, ICMPv6 and quoted IPv6 header layout");

/* icmp4_error_load for ICMPv6: false for what is not an error nodeport
 * translates, for an error with extension headers (outer or quoted), a
 * fragmented one, or one about what is not TCP or UDP, or too short. */
static __always_inline bool icmp6_error_load(struct __sk_buff *skb, const struct pkt *p, struct icmp6_err *e)
{
	if (p->l4_off != NP_IP6_HLEN || p->first_fragment)
		return false;
	if (bpf_skb_load_bytes(skb, p->l2_hlen + NP_ICMP6_ERR_OFF, e, sizeof(*e)))
		return false;
	if (e->type < NP_ICMP6_DEST_UNREACH || e->type > NP_ICMP6_PARAMPROB)
		return false;
	return e->in_next == IPPROTO_TCP || e->in_next == IPPROTO_UDP;
}

/* icmp4_error_rewrite for ICMPv6: the quoted address and port on
 * `inner_side`, and with `outer` the outer address on the other side. The
 * quoted TCP/UDP checksum follows its pseudo-header (when the error carries
 * it; a zero UDP checksum, invalid in IPv6, stays as it is), and the ICMPv6
 * checksum follows all of that and its own pseudo-header. Each change is
 * balanced by the ICMPv6 checksum's, so the sum over the packet stays, and
 * skb->csum needs no update. */
static __always_inline int icmp6_error_rewrite(struct __sk_buff *skb, const struct pkt *p, struct icmp6_err *e,
					       enum nat_side inner_side, const __be32 addr_be[4], __be16 port_be,
					       bool outer)
{
	__be32 *in_addr_be = inner_side == NAT_SRC ? e->in_saddr_be : e->in_daddr_be;
	__be16 *in_port_be = inner_side == NAT_SRC ? &e->in_sport_be : &e->in_dport_be;
	__u32 d_addr = csum_delta128(0, in_addr_be, addr_be);
	__u32 d_tuple = csum_delta16(d_addr, *in_port_be, port_be);
	__u32 l4_csum_off = p->l2_hlen + NP_ICMP6_INNER_L4_OFF + (e->in_next == IPPROTO_TCP ? 16 : 6);
	__u32 d_icmp = outer ? d_tuple + d_addr : d_tuple;
	__u16 l4_csum = 0, new_l4_csum = 0;
	bool l4_csum_present;
	int err;

	l4_csum_present = bpf_skb_load_bytes(skb, l4_csum_off, &l4_csum, sizeof(l4_csum)) == 0 &&
			  !(e->in_next == IPPROTO_UDP && l4_csum == 0);
	if (l4_csum_present) {
		new_l4_csum = csum_apply(l4_csum, d_tuple);
		if (e->in_next == IPPROTO_UDP && new_l4_csum == 0)
			new_l4_csum = 0xffff;
		d_icmp = csum_delta16(d_icmp, l4_csum, new_l4_csum);
	}
	if (outer)
		addr_copy(inner_side == NAT_SRC ? e->daddr_be : e->saddr_be, addr_be);
	addr_copy(in_addr_be, addr_be);
	*in_port_be = port_be;
	e->icmp_csum = csum_apply(e->icmp_csum, d_icmp);
	err = bpf_skb_store_bytes(skb, p->l2_hlen + NP_ICMP6_ERR_OFF, e, sizeof(*e), 0);
	if (!err && l4_csum_present)
		err = bpf_skb_store_bytes(skb, l4_csum_off, &new_l4_csum, sizeof(new_l4_csum), 0);
	return err;
}

#endif /* NODEPORT_ICMP_BPF_H */
