/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sock_xlat`: the translations a socket made, in socket-local storage so
 * they die with the socket. Written by the socket hooks (sock.bpf.c), read
 * back by them for replies and by the socket iterators (sock_end.bpf.c) to
 * find the sockets nodeport sent to a backend. Both objects declare it and
 * pin it by name, so they share one map. */
#ifndef NODEPORT_SOCK_XLAT_BPF_H
#define NODEPORT_SOCK_XLAT_BPF_H

#include "nodeport/abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for socket storage */
	__type(key, int);
	__type(value, struct np_sock_xlat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_xlat SEC(".maps");

/* The same for native IPv6 translations (np_sock_xlat6). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct np_sock_xlat6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_xlat6 SEC(".maps");

/* Whether two IPv6 addresses (as np_xlat6 holds them) are the same: the
 * hooks find a socket's slot by it, and so do the socket iterators. */
static __always_inline bool same_addr6(const __be32 a[4], const __be32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

#endif /* NODEPORT_SOCK_XLAT_BPF_H */
