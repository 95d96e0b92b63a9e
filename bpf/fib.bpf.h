/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Optional fast path for a packet whose destination was just rewritten on
 * ingress: route it with the kernel FIB and hand it straight to the output
 * device (bpf_redirect_neigh), skipping the IP receive and forward path.
 *
 * Off by default. What it skips is also what some setups rely on: netfilter
 * never sees the client's packets, so conntrack sees the backend's SYN-ACK
 * without its SYN and marks it INVALID; a FORWARD rule dropping INVALID then
 * drops every reply. */
#ifndef NODEPORT_FIB_BPF_H
#define NODEPORT_FIB_BPF_H

#include "packet.bpf.h"

/* Returns TC_ACT_REDIRECT when the packet was handed to the output device,
 * TC_ACT_OK when the kernel should route it as usual: no route, forwarding
 * disabled on the input device (the FIB lookup checks it), needs
 * fragmenting, a TTL about to expire (the kernel sends the ICMP), or it came
 * in on an interface without a link-layer header (`l2_hlen` 0):
 * bpf_redirect_neigh takes the Ethernet header off before it adds the next
 * hop's, and drops a packet that has none. */
/* The length the FIB lookup checks against the route's MTU, from the IP
 * header on. A GRO-built (or GSO) skb carries many segments and its IP header
 * says their sum, up to 64 KB, which no route fits: every bulk transfer would
 * silently take the kernel path (measured: 319 of 326 skbs of a 20 MB
 * upload). What goes on the wire is one segment, its headers plus gso_size,
 * the length the kernel's own forward path checks
 * (skb_gso_validate_network_len). `ip_len`: the IP header's length. */
static __always_inline __u32 fib_tot_len(const struct __sk_buff *skb, const struct pkt *p, __u32 ip_len)
{
	if (!skb->gso_size)
		return ip_len;
	return p->l4_off + (p->proto == IPPROTO_TCP ? p->tcp_hlen : NP_UDP_HLEN) + skb->gso_size;
}

static __always_inline int fib_redirect4(struct __sk_buff *skb, const struct pkt *p)
{
	const __u32 l2_hlen = p->l2_hlen;
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	void *data, *data_end;
	struct iphdr *iph;
	__be16 old_ttl_word, new_ttl_word;
	__u8 ttl;
	long rc;

	if (l2_hlen != NP_ETH_HLEN)
		return TC_ACT_OK;
	/* Reloaded: the NAT rewrite before this invalidated packet pointers. */
	load_pkt(skb, data, data_end);
	iph = data + l2_hlen;
	if ((void *)(iph + 1) > data_end)
		return TC_ACT_OK;
	if (iph->ttl <= 1)
		return TC_ACT_OK;

	fib.family = NP_AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = fib_tot_len(skb, p, bpf_ntohs(iph->tot_len));
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = skb->ingress_ifindex;
	ttl = iph->ttl;
	/* TTL shares a 16-bit checksum word with the protocol byte. */
	old_ttl_word = *(__be16 *)&iph->ttl;

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	/* NO_NEIGH still gives the output device and next hop; redirect_neigh
	 * resolves the neighbour itself. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;

	/* We replace ip_forward(), so we decrement the TTL it would have. */
	ttl--;
	new_ttl_word = old_ttl_word;
	*(__u8 *)&new_ttl_word = ttl; /* TTL is the first byte of the word */
	if (bpf_l3_csum_replace(skb, l2_hlen + NP_IP_CSUM_OFF, old_ttl_word, new_ttl_word, sizeof(new_ttl_word)))
		return TC_ACT_OK;
	if (bpf_skb_store_bytes(skb, l2_hlen + NP_IP_TTL_OFF, &ttl, sizeof(ttl), 0))
		return TC_ACT_OK;

	/* After a lookup ipv4_dst holds the next hop (gateway or destination). */
	nh.nh_family = NP_AF_INET;
	nh.ipv4_nh = fib.ipv4_dst;
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

/* fib_redirect4 for IPv6: no header checksum, and the hop limit instead of
 * the TTL. The header is read with bpf_skb_load_bytes, as parse_pkt6 reads
 * it. `p` was parsed before the rewrite: its offsets still hold. */
static __always_inline int fib_redirect6(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	struct ipv6hdr ip6;
	__u8 hop_limit;
	long rc;

	if (p->l2_hlen != NP_ETH_HLEN)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, p->l2_hlen, &ip6, sizeof(ip6)))
		return TC_ACT_OK;
	if (ip6.hop_limit <= 1)
		return TC_ACT_OK;
	fib.family = NP_AF_INET6;
	fib.flowinfo = *(__be32 *)&ip6 & bpf_htonl(0x0fffffff); /* traffic class and flow label */
	fib.l4_protocol = p->proto;
	fib.tot_len = fib_tot_len(skb, p, NP_IP6_HLEN + bpf_ntohs(ip6.payload_len));
	__builtin_memcpy(fib.ipv6_src, &ip6.saddr, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, &ip6.daddr, sizeof(fib.ipv6_dst));
	fib.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	/* We replace ip6_forward(), so we decrement the hop limit it would have. */
	hop_limit = ip6.hop_limit - 1;
	if (bpf_skb_store_bytes(skb, p->l2_hlen + NP_IP6_HOPLIMIT_OFF, &hop_limit, sizeof(hop_limit),
				BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_OK;
	nh.nh_family = NP_AF_INET6;
	__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

#endif /* NODEPORT_FIB_BPF_H */
