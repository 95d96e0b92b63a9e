/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* IP fragments. Only a datagram's first fragment carries the TCP/UDP header
 * with its ports, so only it can be decided: it is translated (or not) as any
 * packet, and a translated one notes in `frag_flows` (layout:
 * include/nodeport/abi.h) how, under the datagram's reassembly identity
 * (source, destination, protocol, IP id; for IPv6, the fragment header's
 * identification). The later fragments look that up
 * and get the same address: the first fragment decides, as Cilium does
 * (which keeps the ports instead). Reassembly stays the receiver's job: the
 * node forwards each fragment as it is (or, with conntrack loaded,
 * reassembles the translated ones and fragments them again to send on).
 *
 * A later fragment that comes before its first one finds no entry and passes
 * untouched: the node, not the sandbox, then holds it until its reassembly
 * time runs out, and the datagram is lost, as on a lossy path (the sender's
 * retry, or the application's, resends it). conntrack holds such a fragment
 * until the first arrives (it reassembles); a TC program cannot hold a
 * packet. The kernel delivers one interface's packets to TC in the order they
 * arrived, so this takes a network that reorders, or a NIC that spreads one
 * datagram's fragments over receive queues (NICs hash a fragment by its
 * addresses only, to avoid just that). In any other order (middle fragments
 * swapped, the last before the middle ones, datagrams interleaved) every
 * fragment after the first is translated. */
#ifndef NODEPORT_FRAG_BPF_H
#define NODEPORT_FRAG_BPF_H

#include "nodeport/abi.h"
#include "clock.bpf.h"
#include "packet.bpf.h"

/* LRU: an entry is written once per translated datagram and never deleted on
 * the way (the last fragment may not be the last to arrive); the oldest go
 * first. Pinned by name like the flow tables. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NP_MAX_FRAG_FLOWS);
	__type(key, struct np_frag_key);
	__type(value, struct np_frag);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frag_flows SEC(".maps");

/* The key of the datagram `p` (a fragment) is part of, going `dir`. */
static __always_inline struct np_frag_key frag_key(const struct pkt *p, __u8 dir)
{
	struct np_frag_key key = {
		.id_be = p->frag_id_be,
		.proto = p->proto,
		.dir = dir,
		.family = p->family,
	};

	addr_copy(key.saddr_be, p->saddr_be);
	addr_copy(key.daddr_be, p->daddr_be);
	return key;
}

/* Before a first fragment is decided: an entry of an older datagram that had
 * the same id must not steer this one's later fragments, whether this one is
 * translated (which writes a new entry) or not. */
static __always_inline void frag_forget(const struct pkt *p, __u8 dir)
{
	struct np_frag_key key = frag_key(p, dir);

	bpf_map_delete_elem(&frag_flows, &key);
}

/* A first fragment was translated: its later fragments get `addr_be` (the
 * destination for dir NP_FLOW_TO_BACKEND, the source for NP_FLOW_TO_CLIENT)
 * and count under node port `node_port_be`. A full table evicts the oldest
 * datagram, whose remaining fragments then pass untouched. */
static __always_inline void frag_note(const struct pkt *p, __u8 dir, const __be32 addr_be[4], __be16 node_port_be)
{
	struct np_frag_key key = frag_key(p, dir);
	struct np_frag f = {
		.node_port_be = node_port_be,
		.first_ns = np_now(),
	};

	addr_copy(f.addr_be, addr_be);
	bpf_map_update_elem(&frag_flows, &key, &f, BPF_ANY);
}

/* The entry the first fragment of later fragment `p` left, or NULL: none, or
 * older than a reassembly time (an id reused by a later datagram of the
 * same sender whose first fragment has not come yet). */
static __always_inline const struct np_frag *frag_find(const struct pkt *p, __u8 dir)
{
	struct np_frag_key key = frag_key(p, dir);
	const struct np_frag *f = bpf_map_lookup_elem(&frag_flows, &key);

	if (!f || np_now() > f->first_ns + NP_FRAG_LIFETIME_S * 1000000000ULL)
		return NULL;
	return f;
}

#endif /* NODEPORT_FRAG_BPF_H */
