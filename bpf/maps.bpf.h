/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps shared by every nodeport BPF object. Each object declares them the
 * same way and pins them by name, so libbpf reuses the pinned instance:
 * the socket hooks and the TC programs see one `ports` table. */
#ifndef NODEPORT_MAPS_BPF_H
#define NODEPORT_MAPS_BPF_H

#include "nodeport/abi.h"

/* Not preallocated: a value is 288 bytes (the owner), and a node maps far
 * fewer ports than the 131,072 it may, so memory follows the mappings. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct np_port_key);
	__type(value, struct np_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_NODE_ADDRS);
	__type(key, struct np_node_addr);
	__type(value, struct np_node_addr_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} node_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} node_config SEC(".maps");

/* Loader bookkeeping, not read by the programs. Declared with the shared
 * maps so whichever object loads first creates and pins it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_TC_ATTACHMENTS);
	__type(key, __u32);
	__type(value, struct np_tc_attachment);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tc_attachments SEC(".maps");

/* Copies an IPv4 backend out of a `ports` value, each field read exactly once
 * (volatile: the compiler may otherwise load the field again at each use), so
 * whoever sends traffic to the backend remembers that same backend for the
 * reverse path. */
static __always_inline bool read_backend4(const struct np_backend *be, __be32 *addr_be, __be16 *port_be)
{
	if (*(const volatile __u8 *)&be->family != NP_FAMILY_IPV4)
		return false;
	*addr_be = *(const volatile __be32 *)&be->addr[0];
	*port_be = bpf_htons(*(const volatile __u16 *)&be->port);
	return true;
}

/* read_backend4 for an IPv6 backend. */
static __always_inline bool read_backend6(const struct np_backend *be, __be32 addr_be[4], __be16 *port_be)
{
	if (*(const volatile __u8 *)&be->family != NP_FAMILY_IPV6)
		return false;
	for (int i = 0; i < 4; i++)
		addr_be[i] = *(const volatile __be32 *)&be->addr[4 * i];
	*port_be = bpf_htons(*(const volatile __u16 *)&be->port);
	return true;
}

/* The `ports` key's family byte for a backend of `family` (IPv4 writes 0:
 * include/nodeport/abi.h). */
static __always_inline __u8 port_key_family(__u8 family)
{
	return family == NP_FAMILY_IPV4 ? NP_PORT_KEY_IPV4 : NP_PORT_KEY_IPV6;
}

/* The backend of node port (proto, port_be) for clients of `family`, and
 * what it holds, for either family (addresses as the maps hold them: IPv4 in
 * [0], the rest 0). */
static __always_inline const struct np_backend *lookup_backend(__u8 proto, __u8 family, __be16 port_be)
{
	struct np_port_key key = { .proto = proto, .family = port_key_family(family), .port = bpf_ntohs(port_be) };

	return bpf_map_lookup_elem(&ports, &key);
}

static __always_inline bool read_backend(const struct np_backend *be, __u8 family, __be32 addr_be[4],
					 __be16 *port_be)
{
	if (family == NP_FAMILY_IPV6)
		return read_backend6(be, addr_be, port_be);
	addr_be[1] = addr_be[2] = addr_be[3] = 0;
	return read_backend4(be, &addr_be[0], port_be);
}

static __always_inline bool is_node_addr(__u8 family, const __be32 addr_be[4])
{
	struct np_node_addr key = { .family = family, .addr_be = { addr_be[0], addr_be[1], addr_be[2], addr_be[3] } };

	return bpf_map_lookup_elem(&node_addrs, &key) != NULL;
}

/* is_node_addr of an IPv4 address held on its own (the socket hooks'). */
static __always_inline bool is_node_addr4(__be32 addr_be)
{
	const __be32 addr[4] = { addr_be };

	return is_node_addr(NP_FAMILY_IPV4, addr);
}

static __always_inline __u64 node_netns_cookie(void)
{
	__u32 zero = 0;
	const struct np_config *cfg = bpf_map_lookup_elem(&node_config, &zero);

	return cfg ? cfg->node_netns_cookie : 0;
}

#endif /* NODEPORT_MAPS_BPF_H */
