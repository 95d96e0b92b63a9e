/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What nodeport translated for a socket (include/nodeport/abi.h says which
 * socket goes where, and why two tables): `sock_peers` for connected sockets,
 * keyed by socket cookie, and `sock_xlat`, socket-local storage, for
 * unconnected UDP sockets. Written by the socket hooks (sock.bpf.c), read
 * back by them for replies and by the socket iterators (sock_end.bpf.c) to
 * find the sockets nodeport sent to a backend. Both objects declare them and
 * pin them by name, so they share one instance of each. */
#ifndef NODEPORT_SOCK_XLAT_BPF_H
#define NODEPORT_SOCK_XLAT_BPF_H

#include "nodeport/abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NP_MAX_SOCK_PEERS);
	__type(key, __u64);
	__type(value, struct np_xlat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for socket storage */
	__type(key, int);
	__type(value, struct np_sock_xlat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_xlat SEC(".maps");

#endif /* NODEPORT_SOCK_XLAT_BPF_H */
