/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Rewriting one address and one port of a parsed TCP/UDP packet, with
 * incremental checksum updates (RFC 1624). The TCP/UDP checksum goes through
 * the kernel helpers, which also keep skb->csum right for CHECKSUM_COMPLETE
 * and only touch the pseudo-header part for CHECKSUM_PARTIAL (offloaded)
 * packets, something a program cannot see. The IPv4 header checksum is
 * computed here and written with the addresses and ports in one store; IPv6
 * has no header checksum, and its pseudo-header holds 128-bit addresses. */
#ifndef NODEPORT_NAT_BPF_H
#define NODEPORT_NAT_BPF_H

#include "packet.bpf.h"

enum nat_side { NAT_SRC, NAT_DST };

/* The bytes from the IPv4 header checksum to the destination port: one
 * contiguous span (ihl 5), so one bpf_skb_store_bytes() writes every field
 * the rewrite changes. Not direct packet writes: those make the verifier
 * unclone every cloned skb the program sees (each TCP segment the node sends
 * is a clone), and fail closed when that fails. */
struct nat4_span {
	__u16 ip_csum; /* as on the wire: read and written as the same two bytes */
	__be32 saddr_be;
	__be32 daddr_be;
	__be16 sport_be;
	__be16 dport_be;
} __attribute__((packed));

#define NP_NAT4_SPAN_OFF NP_IP_CSUM_OFF
_Static_assert(sizeof(struct nat4_span) == 14 && __builtin_offsetof(struct nat4_span, saddr_be) == 2 &&
		       __builtin_offsetof(struct nat4_span, dport_be) == 12,
	       "nat4_span is packed as on the wire");
_Static_assert(NP_IP_SADDR_OFF == NP_NAT4_SPAN_OFF + 2 && NP_L4_DPORT_OFF == NP_NAT4_SPAN_OFF + 12,
	       "nat4_span matches the IPv4 + L4 header layout");

/* RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m'), in 16-bit one's complement
 * words. A change is gathered as a sum of ~m + m' over the words it touches
 * (csum_delta16/32), then applied to a checksum (csum_apply). Byte order does
 * not matter as long as all words are taken from the packet the same way. */
static __always_inline __u32 csum_delta16(__u32 delta, __u16 from, __u16 to)
{
	return delta + (__u16)~from + to;
}

static __always_inline __u32 csum_delta32(__u32 delta, __be32 from, __be32 to)
{
	return csum_delta16(csum_delta16(delta, from & 0xffff, to & 0xffff), from >> 16, to >> 16);
}

/* A 128-bit address's change as csum_delta32 counts one: word by word. The
 * sum is also what bpf_l4_csum_replace takes as a difference (size 0). */
static __always_inline __u32 csum_delta128(__u32 delta, const __be32 from[4], const __be32 to[4])
{
	for (int i = 0; i < 4; i++)
		delta = csum_delta32(delta, from[i], to[i]);
	return delta;
}

static __always_inline __u16 csum_apply(__u16 csum, __u32 delta)
{
	__u32 sum = (__u16)~csum + delta;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 csum_replace4(__u16 csum, __be32 from, __be32 to)
{
	return csum_apply(csum, csum_delta32(0, from, to));
}

/* Rewrites the source or destination address and port of `p` to
 * `addr_be`:`port_be`. Returns 0 or a negative errno from a helper; after a
 * failure the packet may be half rewritten (its checksums then fail and the
 * receiver drops it, as it would drop a corrupt packet).
 * All offsets are fixed (ihl 5) and were bounds-checked by parse_pkt4. */
static __always_inline int nat4_rewrite(struct __sk_buff *skb, const struct pkt *p, enum nat_side side,
					__be32 addr_be, __be16 port_be)
{
	__be32 old_addr_be = side == NAT_DST ? p->daddr_be[0] : p->saddr_be[0];
	__be16 old_port_be = side == NAT_DST ? p->dport_be : p->sport_be;
	__u32 l4_csum_off = p->proto == IPPROTO_TCP ? NP_TCP_CSUM_OFF : NP_UDP_CSUM_OFF;
	/* UDP over IPv4 may carry no checksum (0). BPF_F_MARK_MANGLED_0 leaves a
	 * 0 alone, and writes a computed 0 as 0xffff so it is not taken for
	 * "no checksum". TCP always has one. */
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	struct nat4_span span = {
		.ip_csum = csum_replace4(p->ip_csum, old_addr_be, addr_be),
		.saddr_be = side == NAT_SRC ? addr_be : p->saddr_be[0],
		.daddr_be = side == NAT_DST ? addr_be : p->daddr_be[0],
		.sport_be = side == NAT_SRC ? port_be : p->sport_be,
		.dport_be = side == NAT_DST ? port_be : p->dport_be,
	};
	int err;

	/* The address is part of the TCP/UDP pseudo-header: BPF_F_PSEUDO_HDR. */
	err = bpf_l4_csum_replace(skb, p->l2_hlen + l4_csum_off, old_addr_be, addr_be,
				  l4_flags | BPF_F_PSEUDO_HDR | sizeof(addr_be));
	if (err)
		return err;
	err = bpf_l4_csum_replace(skb, p->l2_hlen + l4_csum_off, old_port_be, port_be, l4_flags | sizeof(port_be));
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, p->l2_hlen + NP_NAT4_SPAN_OFF, &span, sizeof(span), 0);
}

/* Rewrites only the source or destination address of `p`, and the IPv4
 * header checksum, in one store: for a fragment after the first, which
 * carries no TCP/UDP header (its checksum, in the first fragment, covers the
 * whole datagram and was updated there). */
static __always_inline int nat4_rewrite_addr(struct __sk_buff *skb, const struct pkt *p, enum nat_side side,
					     __be32 addr_be)
{
	__be32 old_addr_be = side == NAT_DST ? p->daddr_be[0] : p->saddr_be[0];
	struct nat4_span span = {
		.ip_csum = csum_replace4(p->ip_csum, old_addr_be, addr_be),
		.saddr_be = side == NAT_SRC ? addr_be : p->saddr_be[0],
		.daddr_be = side == NAT_DST ? addr_be : p->daddr_be[0],
	};

	return bpf_skb_store_bytes(skb, p->l2_hlen + NP_NAT4_SPAN_OFF, &span, __builtin_offsetof(struct nat4_span, sport_be),
				   0);
}

/* bpf_l4_csum_replace's BPF_F_IPV6 (Linux 6.16; not in the UAPI headers
 * the programs build against): with BPF_F_PSEUDO_HDR, the kernel otherwise
 * also adjusts skb->csum of a CHECKSUM_COMPLETE skb as for IPv4, whose header
 * checksum balances the address change. An IPv6 header has none: the new
 * address and the new L4 checksum already balance each other, and skb->csum
 * must stay. */
#define NP_BPF_F_IPV6 (1ULL << 7)
#define NP_EINVAL     22

/* Applies `diff`, the change of an IPv6 address in the pseudo-header, to the
 * L4 checksum at `off`. A kernel that does not know BPF_F_IPV6 refuses it
 * (-EINVAL, and changes nothing); there the adjustment the kernel makes to
 * skb->csum is undone with bpf_csum_update, which touches only a
 * CHECKSUM_COMPLETE skb. */
static __always_inline int l4_csum_pseudo6(struct __sk_buff *skb, __u32 off, __u32 diff, __u64 flags)
{
	int err = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR | NP_BPF_F_IPV6);

	if (err != -NP_EINVAL)
		return err;
	err = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR);
	if (!err)
		bpf_csum_update(skb, diff);
	return err;
}

/* nat4_rewrite for IPv6: the TCP/UDP checksum through the helpers (the
 * address by its 128-bit difference, summed here rather than by
 * bpf_csum_diff: one helper call less per packet), then the address and the
 * port, each in its place (extension headers may lie between them). A UDP checksum of 0 is
 * invalid in IPv6; it stays 0 (BPF_F_MARK_MANGLED_0), and the receiver drops
 * the datagram as it would have. */
static __always_inline int nat6_rewrite(struct __sk_buff *skb, const struct pkt *p, enum nat_side side,
					const __be32 addr_be[4], __be16 port_be)
{
	const __be32 *old_addr_be = side == NAT_DST ? p->daddr_be : p->saddr_be;
	__be16 old_port_be = side == NAT_DST ? p->dport_be : p->sport_be;
	__u32 l4 = p->l2_hlen + p->l4_off;
	__u32 l4_csum_off = l4 + (p->proto == IPPROTO_TCP ? 16 : 6);
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 diff = csum_delta128(0, old_addr_be, addr_be);
	int err;

	err = l4_csum_pseudo6(skb, l4_csum_off, diff, l4_flags);
	if (err)
		return err;
	err = bpf_l4_csum_replace(skb, l4_csum_off, old_port_be, port_be, l4_flags | sizeof(port_be));
	if (err)
		return err;
	err = bpf_skb_store_bytes(skb, p->l2_hlen + (side == NAT_DST ? NP_IP6_DADDR_OFF : NP_IP6_SADDR_OFF), addr_be,
				  16, 0);
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, l4 + (side == NAT_DST ? 2 : 0), &port_be, sizeof(port_be), 0);
}

/* Rewrites the source or destination address and port of `p` to
 * `addr_be`:`port_be` (IPv4 in [0]), for either family. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, enum nat_side side,
				       const __be32 addr_be[4], __be16 port_be)
{
	if (p->family == NP_FAMILY_IPV4)
		return nat4_rewrite(skb, p, side, addr_be[0], port_be);
	return nat6_rewrite(skb, p, side, addr_be, port_be);
}

/* nat4_rewrite_addr for either family. An IPv6 fragment has no header
 * checksum to balance its new address: BPF_F_RECOMPUTE_CSUM keeps skb->csum
 * right. */
static __always_inline int nat_rewrite_addr(struct __sk_buff *skb, const struct pkt *p, enum nat_side side,
					    const __be32 addr_be[4])
{
	__be32 new_addr_be[4];

	if (p->family == NP_FAMILY_IPV4)
		return nat4_rewrite_addr(skb, p, side, addr_be[0]);
	addr_copy(new_addr_be, addr_be);
	return bpf_skb_store_bytes(skb, p->l2_hlen + (side == NAT_DST ? NP_IP6_DADDR_OFF : NP_IP6_SADDR_OFF),
				   new_addr_be, sizeof(new_addr_be), BPF_F_RECOMPUTE_CSUM);
}

#endif /* NODEPORT_NAT_BPF_H */
