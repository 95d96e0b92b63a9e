/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Counting what the programs do: per node port what was translated, and per
 * reason what was left untouched (layouts and meaning: include/nodeport/abi.h).
 * Both maps are per-CPU: a counter is a plain add to this CPU's copy, with no
 * atomic and no cache line shared with another CPU. (A socket hook may be
 * preempted by another task on the same CPU between its read and its write,
 * and lose one count: rare, and no reason for an atomic on every packet.) Pinned by name, so the
 * socket hooks and the TC programs share them and a reload keeps them. */
#ifndef NODEPORT_COUNTERS_BPF_H
#define NODEPORT_COUNTERS_BPF_H

#include "nodeport/abi.h"

/* Not preallocated: per-CPU values times every possible port would be
 * 131,072 x 64 bytes per CPU; memory follows the ports actually used. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NP_MAX_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np_port_key);
	__type(value, struct np_port_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NP_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reason_counters SEC(".maps");

/* Counts one packet or call left alone for `reason`. The verifier inlines a
 * per-CPU array lookup, so this is a few instructions. */
static __always_inline void count_reason(enum np_reason reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&reason_counters, &key);

	if (n)
		*n += 1;
}

/* This CPU's counters of node port (proto, port_be) for the backend of
 * `family` (the key's NP_PORT_KEY_*), created on first use:
 * `set` deletes them when the port changes owner, and the next translation
 * starts them again from zero. NULL only when the map is full or out of
 * memory; the translation goes on uncounted. */
static __always_inline struct np_port_counters *port_counters_of_family(__u8 proto, __u8 family, __be16 port_be)
{
	struct np_port_key key = { .proto = proto, .family = family, .port = bpf_ntohs(port_be) };
	struct np_port_counters *c = bpf_map_lookup_elem(&port_counters, &key);
	struct np_port_counters zero = {};

	if (c)
		return c;
	bpf_map_update_elem(&port_counters, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&port_counters, &key);
}

#endif /* NODEPORT_COUNTERS_BPF_H */
