/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Rewriting one address and one port of a parsed IPv4 TCP/UDP packet, with
 * incremental checksum updates (RFC 1624) through the kernel helpers, which
 * also keep skb->csum right for CHECKSUM_COMPLETE and only touch the
 * pseudo-header part for CHECKSUM_PARTIAL (offloaded) packets. */
#ifndef NODEPORT_NAT_BPF_H
#define NODEPORT_NAT_BPF_H

#include "packet.bpf.h"

enum nat_side { NAT_SRC, NAT_DST };

/* Rewrites the source or destination address and port of `p` to
 * `addr_be`:`port_be`. Returns 0 or a negative errno from a helper; after a
 * failure the packet may be half rewritten (its checksums then fail and the
 * receiver drops it, as it would drop a corrupt packet).
 * All offsets are fixed (ihl 5) and were bounds-checked by parse_pkt4. */
static __always_inline int nat4_rewrite(struct __sk_buff *skb, const struct pkt4 *p, enum nat_side side,
					__be32 addr_be, __be16 port_be)
{
	__u32 addr_off = side == NAT_DST ? NP_IP_DADDR_OFF : NP_IP_SADDR_OFF;
	__u32 port_off = side == NAT_DST ? NP_L4_DPORT_OFF : NP_L4_SPORT_OFF;
	__be32 old_addr_be = side == NAT_DST ? p->daddr_be : p->saddr_be;
	__be16 old_port_be = side == NAT_DST ? p->dport_be : p->sport_be;
	__u32 l4_csum_off = p->proto == IPPROTO_TCP ? NP_TCP_CSUM_OFF : NP_UDP_CSUM_OFF;
	/* UDP over IPv4 may carry no checksum (0). BPF_F_MARK_MANGLED_0 leaves a
	 * 0 alone, and writes a computed 0 as 0xffff so it is not taken for
	 * "no checksum". TCP always has one. */
	__u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	int err;

	/* The address is part of the TCP/UDP pseudo-header: BPF_F_PSEUDO_HDR. */
	err = bpf_l4_csum_replace(skb, l4_csum_off, old_addr_be, addr_be,
				  l4_flags | BPF_F_PSEUDO_HDR | sizeof(addr_be));
	if (err)
		return err;
	err = bpf_l4_csum_replace(skb, l4_csum_off, old_port_be, port_be, l4_flags | sizeof(port_be));
	if (err)
		return err;
	err = bpf_l3_csum_replace(skb, NP_IP_CSUM_OFF, old_addr_be, addr_be, sizeof(addr_be));
	if (err)
		return err;
	err = bpf_skb_store_bytes(skb, addr_off, &addr_be, sizeof(addr_be), 0);
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, port_off, &port_be, sizeof(port_be), 0);
}

#endif /* NODEPORT_NAT_BPF_H */
