/* nodeport's C ABI: the port table of a loaded nodeport, for cgo, Python
 * ctypes, Rust and C. A thin layer over the C++ library (libnodeport,
 * loader/capi/c_api.cpp) with the same checks: every call validates its input as
 * the CLI does, and nothing is changed when it refuses.
 *
 * Every int-returning call gives NODEPORT_OK (0) or one of the negative codes
 * below; nodeport_strerror names a code, and nodeport_last_error gives the
 * calling thread's message for its last failed call ("bad input: backend
 * address: '127.0.0.1' is not a unicast address a sandbox can have").
 *
 * A handle may be used from several threads at once: writers serialize on a
 * mutex and on the pin directory's flock (shared with the CLI and other
 * processes), waiting at most 5 s for another writer (NODEPORT_EBUSY).
 * nodeport_close must not race other calls on the same handle.
 * Nothing throws or aborts across this boundary.
 *
 * Strings are NUL-terminated ASCII. In C the handle type is `nodeport`; in
 * C++, where `nodeport` is the library's namespace, spell it `nodeport_table`.
 *
 * A node port may lead to an IPv4 and an IPv6 backend (`nodeport set
 * tcp/6667 [fd00::2]:6667`). nodeport_set takes either family and replaces
 * that family's backend; del and del_owner remove both families; drain takes
 * either. nodeport_mapping has room for an IPv4 address only, so get, list
 * and sync are the IPv4 view, kept as they were for callers built against
 * 0.1: they leave the IPv6 mappings alone. get2, list2 and sync2, with
 * nodeport_mapping2, carry both families.
 */
#ifndef NODEPORT_NODEPORT_H
#define NODEPORT_NODEPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum nodeport_error {
	NODEPORT_OK = 0,
	NODEPORT_EBADINPUT = -1,  /* an argument is not valid: nothing was changed */
	NODEPORT_ENOTLOADED = -2, /* nodeport is not loaded at the pin directory */
	NODEPORT_ENOTFOUND = -3,  /* nothing is mapped on that node port */
	NODEPORT_EOWNED = -4,     /* another owner holds the port: it was left alone */
	NODEPORT_EPERM = -5,      /* not allowed: BPF maps need CAP_BPF (root) */
	NODEPORT_EINTERNAL = -6,  /* anything else: a failed system call, out of memory, an unsafe pin directory,
	                             pins of another map ABI (nodeport_last_error says which) */
	NODEPORT_EBUSY = -7,      /* another writer held the pin directory's lock for the whole wait; retry */
	NODEPORT_ETIMEDOUT = -8,  /* nodeport_drain: the timeout passed with connections left */
};

#define NODEPORT_PROTO_SIZE 4       /* "tcp" or "udp" and the NUL */
#define NODEPORT_ADDR_SIZE 16       /* a dotted quad and the NUL (INET_ADDRSTRLEN) */
#define NODEPORT_OWNER_SIZE 256     /* an owner is 1-255 printable, non-blank ASCII characters; "" is none */
#define NODEPORT_ADDR2_SIZE 48      /* an IPv6 address without brackets and the NUL (INET6_ADDRSTRLEN, 46), rounded up */

/* One node port and its backend. Plain data, no pointers: filled by
 * nodeport_get and nodeport_list, read by nodeport_sync. */
typedef struct nodeport_mapping {
	char proto[NODEPORT_PROTO_SIZE];           /* "tcp" or "udp" (any case on input) */
	uint16_t port;                             /* the node port, 1-65535 */
	uint16_t backend_port;                     /* 1-65535 */
	char backend_ip[NODEPORT_ADDR_SIZE];       /* "10.8.32.126": unicast, not loopback */
	char owner[NODEPORT_OWNER_SIZE];           /* "" when the mapping has no owner */
} nodeport_mapping;
/* The layout other languages declare (ctypes, Rust #[repr(C)]): no padding. */
#ifdef __cplusplus
static_assert(sizeof(nodeport_mapping) == 280, "nodeport_mapping is 280 bytes");
#else
_Static_assert(sizeof(nodeport_mapping) == 280, "nodeport_mapping is 280 bytes");
#endif

/* A mapping of either family (IPv6 without brackets: "fd00::2"), for get2,
 * list2 and sync2. The same fields, in the same order, with room for IPv6. */
typedef struct nodeport_mapping2 {
	char proto[NODEPORT_PROTO_SIZE];
	uint16_t port;
	uint16_t backend_port;
	char backend_ip[NODEPORT_ADDR2_SIZE];      /* "10.8.32.126" or "fd00::2": unicast, not loopback */
	char owner[NODEPORT_OWNER_SIZE];
} nodeport_mapping2;
#ifdef __cplusplus
static_assert(sizeof(nodeport_mapping2) == 312, "nodeport_mapping2 is 312 bytes");
#else
_Static_assert(sizeof(nodeport_mapping2) == 312, "nodeport_mapping2 is 312 bytes");
#endif

/* An open port table (opaque). */
struct nodeport_table;
#ifndef __cplusplus
typedef struct nodeport_table nodeport;
#endif

/* Opens the port table of the nodeport loaded at pin_dir (NULL: the default,
 * /sys/fs/bpf/nodeport). On success *out is a handle for nodeport_close. */
int nodeport_open(const char *pin_dir, struct nodeport_table **out);
/* Closes a handle. NULL, and a handle closed already, are fine: nothing
 * happens. Any call with a closed handle returns NODEPORT_EBADINPUT at once
 * ("bad input: handle: not open ..."), as does one with a pointer that
 * nodeport_open never gave. (A later nodeport_open may return the same
 * address again; it is then that table's handle.) */
void nodeport_close(struct nodeport_table *np);

/* Options for nodeport_open_with, libbpf style: set sz to sizeof the struct
 * you compiled against and zero what you do not set; later versions add
 * fields at the end, and a library older than your header refuses non-zero
 * fields it does not know (NODEPORT_EBADINPUT) rather than ignore them. */
struct nodeport_open_opts {
	size_t sz;            /* sizeof(struct nodeport_open_opts) */
	const char *pin_dir;  /* NULL: /sys/fs/bpf/nodeport */
	int64_t lock_wait_ms; /* how long a write waits for another writer's lock: 0 the default (5000),
	                         -1 not at all (NODEPORT_EBUSY at once), else 1-3600000 */
};
/* nodeport_open with options; opts NULL is nodeport_open(NULL, out). */
int nodeport_open_with(const struct nodeport_open_opts *opts, struct nodeport_table **out);
/* This library's version, "0.1.0": what a program loaded, not what it was
 * built against. */
const char *nodeport_version(void);

/* Maps proto/port to backend_ip:backend_port (IPv4, or IPv6 without
 * brackets), replacing whatever backend of that family was there.
 * owner: NULL or "" for none. A connected UDP socket of the node translated
 * to the old backend is ended, as with `nodeport set`. */
int nodeport_set(struct nodeport_table *np, const char *proto, uint16_t port, const char *backend_ip,
		 uint16_t backend_port, const char *owner);
/* Unmaps proto/port, both families. owner NULL: whoever holds it; otherwise only what that
 * owner holds it (NODEPORT_EOWNED when another does). NODEPORT_ENOTFOUND when
 * nothing was mapped there. */
int nodeport_del(struct nodeport_table *np, const char *proto, uint16_t port, const char *owner);
/* Unmaps every port the owner holds, each checked under the write lock; none
 * held is success. */
int nodeport_del_owner(struct nodeport_table *np, const char *owner);
/* The IPv4 mapping of proto/port into *out; NODEPORT_ENOTFOUND when there is none. */
int nodeport_get(struct nodeport_table *np, const char *proto, uint16_t port, nodeport_mapping *out);
/* Every IPv4 mapping, sorted by protocol and port, in an array for nodeport_free
 * (*out is NULL when *n is 0). */
int nodeport_list(struct nodeport_table *np, nodeport_mapping **out, size_t *n);
/* Frees what nodeport_list returned; NULL is fine. */
void nodeport_free(nodeport_mapping *list);
/* Makes the table's IPv4 mappings equal to want[0..n): each node port at
 * most once, every entry valid (else NODEPORT_EBADINPUT, nothing changed).
 * Adds and overwrites first, removals last, under the write lock. The IPv6
 * mappings are left as they are. */
int nodeport_sync(struct nodeport_table *np, const nodeport_mapping *want, size_t n);

/* The mappings of proto/port, none, one or one per family, IPv4 first, into
 * out[0..*n): `out` has room for 2. NODEPORT_ENOTFOUND when there is none. */
int nodeport_get2(struct nodeport_table *np, const char *proto, uint16_t port, nodeport_mapping2 out[2], size_t *n);
/* Every mapping of both families, sorted by protocol, port and family, in an
 * array for nodeport_free2 (*out is NULL when *n is 0). */
int nodeport_list2(struct nodeport_table *np, nodeport_mapping2 **out, size_t *n);
void nodeport_free2(nodeport_mapping2 *list);
/* nodeport_sync for both families: each node port at most once per family. */
int nodeport_sync2(struct nodeport_table *np, const nodeport_mapping2 *want, size_t n);

/* Live connections nodeport translated to one backend, per path. */
typedef struct nodeport_connections {
	uint32_t external; /* external flows: TCP until closed both ways or reset, UDP until idle */
	uint32_t local;    /* the node's sockets the socket hooks translated: TCP until closed, connected UDP */
} nodeport_connections;

/* Waits until no connection nodeport translated reaches
 * backend_ip:backend_port (IPv4, or IPv6 without brackets), or timeout_ms passes (0: one count), counting
 * every 100 ms. Changes nothing and holds no lock: call it after
 * nodeport_del / nodeport_del_owner / nodeport_set, before destroying the
 * old sandbox. NODEPORT_OK when drained; NODEPORT_ETIMEDOUT when the timeout
 * passed with connections left. *left (NULL: not wanted) gets the last
 * count. The node's sockets are counted only from the network namespace
 * nodeport was loaded in (elsewhere local stays 0). */
int nodeport_drain(struct nodeport_table *np, const char *backend_ip, uint16_t backend_port, uint32_t timeout_ms,
		   nodeport_connections *left);

/* A static description of a code: "bad input", "not loaded", ... */
const char *nodeport_strerror(int code);
/* The calling thread's message for its last failed call ("" if none). Valid
 * until that thread's next nodeport_* call. */
const char *nodeport_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* NODEPORT_NODEPORT_H */
