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
 * fragmenting, or a TTL about to expire (the kernel sends the ICMP). */
static __always_inline int fib_redirect4(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	void *data, *data_end;
	struct iphdr *iph;
	__be16 old_ttl_word, new_ttl_word;
	__u8 ttl;
	long rc;

	/* Reloaded: the NAT rewrite before this invalidated packet pointers. */
	load_pkt(skb, data, data_end);
	iph = data + NP_IP_OFF;
	if ((void *)(iph + 1) > data_end)
		return TC_ACT_OK;
	if (iph->ttl <= 1)
		return TC_ACT_OK;

	fib.family = NP_AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
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
	if (bpf_l3_csum_replace(skb, NP_IP_CSUM_OFF, old_ttl_word, new_ttl_word, sizeof(new_ttl_word)))
		return TC_ACT_OK;
	if (bpf_skb_store_bytes(skb, NP_IP_TTL_OFF, &ttl, sizeof(ttl), 0))
		return TC_ACT_OK;

	/* After a lookup ipv4_dst holds the next hop (gateway or destination). */
	nh.nh_family = NP_AF_INET;
	nh.ipv4_nh = fib.ipv4_dst;
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

#endif /* NODEPORT_FIB_BPF_H */
