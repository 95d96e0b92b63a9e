/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * nodeport map ABI: the one definition of every struct that lives in a pinned
 * map. The BPF programs, the C++ loader and any other reader of the pinned
 * maps (a Go controller, bpftool) all use these layouts.
 *
 * Rules, so the layout is the same for every compiler and stays readable:
 *  - fixed-width fields only, byte order in the name (_be = network order,
 *    none = host order); an address as bytes (`__u8 addr[]`) is in network
 *    order and prints as its dotted quad in `bpftool map dump`;
 *  - explicit padding, no implicit holes (map keys are hashed byte for byte);
 *  - sizes pinned by static asserts;
 *  - a change to any layout bumps NODEPORT_ABI_VERSION, which the loader stores
 *    in the `node_config` map and checks before reusing pinned maps.
 */
#ifndef NODEPORT_ABI_H
#define NODEPORT_ABI_H

#include <linux/types.h> /* both sides: the BPF programs build against the UAPI headers too */

/* 1: `ports` with __be16 ports, __be32 addresses and 63-byte owners;
 * 2: flow keys and values with 4-byte addresses, no sequence numbers, a `closed_flows` table;
 * 3: `ports` keys without a family (IPv4 backends only). Its maps have ABI 4's layouts: an ABI 3 key's
 *    family byte was padding, always 0, which is NP_PORT_KEY_IPV4, so `load` adopts ABI 3 pins as they are */
#define NODEPORT_ABI_VERSION 4

/* Address families as stored in maps: readable in a bpftool dump. */
#define NP_FAMILY_IPV4 4
#define NP_FAMILY_IPV6 6

/* Map capacities. `ports`: two protocols times every port number, for both
 * families together (the size of ABI 3's map, which ABI 4 reuses). */
#define NP_MAX_PORTS      131072
#define NP_MAX_NODE_ADDRS 1024
#define NP_MAX_OWNER_LEN  255

/* `ports` key: one entry per (protocol, family, node port): a node port
 * may lead to an IPv4 backend, an IPv6 backend, or both. A client reaches
 * the backend of its own family (no NAT46/64), so the family is that of the
 * backend and of the clients it serves. Host order, so that `bpftool map
 * dump` shows the port a person typed: "port": 6667. */
#define NP_PORT_KEY_IPV4 0              /* not NP_FAMILY_IPV4: see NODEPORT_ABI_VERSION 3 */
#define NP_PORT_KEY_IPV6 NP_FAMILY_IPV6

struct np_port_key {
	__u8 proto;  /* IPPROTO_TCP (6) or IPPROTO_UDP (17) */
	__u8 family; /* NP_PORT_KEY_IPV4 (0) or NP_PORT_KEY_IPV6 (6); part of the hashed key */
	__u16 port;  /* node port */
};

/* `ports` value: where the node port goes and who asked for it. In a dump:
 * "port": 6667, "addr": [10,8,32,126,0,...], "owner": "sb-42". Only the first
 * 32 bytes are read per packet; the owner is for people and controllers. */
struct np_backend {
	__u8 family;    /* NP_FAMILY_IPV4 (4) or NP_FAMILY_IPV6 (6): the key's family, which writes IPv4 as 0 */
	__u8 flags;     /* reserved, 0 */
	__u16 port;     /* backend (sandbox) port */
	__u32 reserved; /* 0; room for per-port options */
	__u8 addr[16];  /* network order: IPv4 in addr[0..3], the rest 0; IPv6 all 16 */
	__u64 owner_id; /* FNV-1a 64 of `owner`, 0 when there is none */
	/* NUL-padded owner name (a sandbox id such as
	 * "sandbox/<app>-<service>-<22 base58 chars>"). char, not __u8, so that
	 * bpftool prints it as a string. */
	char owner[NP_MAX_OWNER_LEN + 1];
};

/* `node_addrs` key: an address of the node. 127.0.0.0/8 is never listed:
 * loopback is matched separately and only in the node's own netns. */
struct np_node_addr {
	__u8 family; /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u8 pad[3];
	__be32 addr_be[4];
};

struct np_node_addr_info {
	__u32 ifindex; /* interface the address was found on, 0 if given by hand */
};

/* `node_config` array, one entry, written by `nodeport load`. */
struct np_config {
	__u32 abi_version;       /* NODEPORT_ABI_VERSION of the loader that created the maps */
	__u32 flags;             /* NP_CONFIG_*; the BPF programs read none of them */
	__u64 node_netns_cookie; /* netns whose 127.0.0.0/8 is the node's loopback */
};

/* np_config.flags: `sock_end_targets` may hold targets. A write sets it
 * before it records any, and a walk that has forgotten them all clears it
 * (both under the pin directory's lock); `load` sets it, so the walk it
 * resumes looks once. While it is clear, no writer has to walk the empty
 * hash map, whose every bucket a get_next_key visits (~100 us). */
#define NP_CONFIG_SOCK_END_PENDING 1

/* Per-socket record of the translations a socket made, kept in socket-local
 * storage (`sock_xlat`) so it dies with the socket. The reverse hooks
 * (getpeername4/6, recvmsg4/6) map a backend address back to the node address the
 * application used. An unconnected UDP socket may talk to several node ports,
 * hence a few slots, reused round-robin. */
#define NP_SOCK_XLAT_SLOTS 4

struct np_xlat {
	__be32 backend_addr_be;
	__be32 node_addr_be;
	__be16 backend_port_be;
	__be16 node_port_be;
};

struct np_sock_xlat {
	struct np_xlat slot[NP_SOCK_XLAT_SLOTS];
	__u32 next; /* slot to reuse next */
	__u32 pad;
};

/* The same for an AF_INET6 socket sent to an IPv6 node address (`sock_xlat6`,
 * written by connect6 and sendmsg6, read by getpeername6 and recvmsg6). A
 * v4-mapped destination is IPv4 and recorded in `sock_xlat`. */
struct np_xlat6 {
	__be32 backend_addr_be[4];
	__be32 node_addr_be[4];
	__be16 backend_port_be;
	__be16 node_port_be;
};

struct np_sock_xlat6 {
	struct np_xlat6 slot[NP_SOCK_XLAT_SLOTS];
	__u32 next; /* slot to reuse next */
	__u32 pad;
};

/* `tc_attachments` hash, key: __u32 ifindex. Where the TC programs are
 * attached, written by `load`, so that `unload` removes exactly that. */
#define NP_TC_TCX    1 /* tcx links, pinned under links/ */
#define NP_TC_CLSACT 2 /* clsact filters with NP_TC_HANDLE / NP_TC_PRIORITY */
#define NP_TC_LINK_ETHERNET 0 /* np_tc_attachment.link: np_tc_ingress/np_tc_egress */
#define NP_TC_LINK_L3       1 /* no link-layer header: np_l3_ingress/np_l3_egress */
#define NP_TC_HANDLE   0x4e50 /* "NP" */
#define NP_TC_PRIORITY 0x4e50
#define NP_MAX_TC_ATTACHMENTS 64

struct np_tc_attachment {
	__u32 ifindex;
	__u8 mode;          /* NP_TC_TCX or NP_TC_CLSACT */
	__u8 created_qdisc; /* clsact: nodeport added the qdisc, removed again when no filter is left */
	__u8 link;          /* NP_TC_LINK_*: which build of the programs; 0 in records of older loads, which
			       attached only the Ethernet one */
	__u8 pad;
	__u64 netns_cookie; /* the namespace the ifindex belongs to */
	char ifname[16];    /* the interface's name when attached, for people */
};

/* `iface_choice` array, one entry: how the external interfaces are chosen
 * (load's --iface NAMES, --iface all --exclude PATTERNS, --local-only or the
 * default route's interface) and --tc-attach, recorded by `load` (and by a
 * `watch` given interface options of its own), so that a `watch` without
 * them follows the same choice and `status` can name a chosen interface that
 * is not attached. No BPF program reads it: load creates and pins it from
 * user space. All zero (kind 0): nothing recorded. */
#define NP_IFACES_NONE          1 /* --local-only */
#define NP_IFACES_NAMED         2 /* `names`: the interfaces */
#define NP_IFACES_ALL           3 /* `names`: the --exclude patterns */
#define NP_IFACES_DEFAULT_ROUTE 4
#define NP_MAX_IFACE_NAMES NP_MAX_TC_ATTACHMENTS

struct np_iface_choice {
	__u8 kind;      /* NP_IFACES_*; 0 nothing recorded */
	__u8 tc_attach; /* 0 auto, NP_TC_TCX, NP_TC_CLSACT */
	__u8 count;     /* entries of `names` in use */
	__u8 pad[5];
	char names[NP_MAX_IFACE_NAMES][16]; /* NUL-padded interface names or fnmatch patterns */
};

/* ---- Flow tables of the external datapath (TC programs, bpf/tc.bpf.c) ----
 *
 * NAT state of the connections that entered through the node's external
 * interface. Like conntrack, each NATed flow has TWO entries, one per
 * direction, so each direction finds its translation with one lookup keyed by
 * the packet's own addresses:
 *  - NP_FLOW_TO_BACKEND, looked up on ingress with (src, dst) of the packet:
 *    client = client addr/port, peer = node addr/port the client addressed;
 *    the value is the backend the packet is sent to.
 *  - NP_FLOW_TO_CLIENT, looked up on egress with (dst, src) of the reply:
 *    client = client addr/port, peer = backend addr/port;
 *    the value is the node addr/port restored as the reply's source.
 * The value of one entry is the peer of the other, so either direction can
 * find (or rebuild) its partner.
 *
 * Three LRU tables, so that one kind of flow can never push out another:
 *  - `flows`: established TCP connections, from the client's ACK of the
 *    SYN-ACK until the final ACK after FIN both ways (or an RST in the
 *    window), which deletes both entries at once. Only real connections live
 *    here, so an idle established connection keeps its entry however many
 *    spoofed SYNs, UDP datagrams or closed connections pass.
 *  - `half_open_flows`: TCP handshakes, from the SYN until the client's ACK
 *    of the SYN-ACK moves them to `flows`. One entry per handshake, the
 *    NP_FLOW_TO_CLIENT one (the SYN-ACK's lookup): a retransmitted SYN and
 *    the client's ACK rebuild its key from the port's backend. A SYN flood
 *    from spoofed sources evicts only other handshakes.
 *  - `udp_flows`: UDP flows; a flood evicts only other UDP flows, whose next
 *    datagram is simply decided again from `ports`.
 * Keys and values hold 16-byte addresses: IPv6, or IPv4 in [0] and the rest
 * 0, as `family` says (NP_FAMILY_IPV6 or NP_FAMILY_IPV4). */
#define NP_MAX_FLOWS           262144 /* `flows` entries: two per connection */
#define NP_MAX_HALF_OPEN_FLOWS 65536  /* `half_open_flows` entries: one per handshake */
#define NP_MAX_UDP_FLOWS       131072 /* `udp_flows` entries */

/* `node_udp` LRU hash: UDP the node itself sent from a mapped node port (its
 * own query, or a sandbox's datagram the node MASQUERADEd to that port), seen
 * by np_tc_egress. Key: an np_flow_key as the answer's ingress lookup builds
 * it (client = the remote side, peer = the node's address and port, dir
 * NP_FLOW_TO_BACKEND); value: __u64 CLOCK_MONOTONIC (bpf/clock.bpf.h) of the
 * last such datagram, refreshed at most once a second. An answer within the
 * UDP idle timeout is the node's, never a new flow to the sandbox: what
 * conntrack tells an iptables DNAT rule. */
#define NP_MAX_NODE_UDP 16384

/* `frag_flows` LRU hash: how the first fragment of a fragmented datagram was
 * translated, so that the later fragments, which carry no ports, follow it
 * (bpf/frag.bpf.h). Key: the datagram as IP names it for reassembly
 * (source, destination, protocol, id), as it arrived, and the direction
 * (dir, as in np_flow_key); value: the address its later fragments get, and
 * the node port they count under. Written by each translated first fragment
 * and never refreshed: a datagram's fragments arrive within the receiver's
 * reassembly time (Linux: 30 s, net.ipv4.ipfrag_time), after which an entry
 * is inert. Room for IPv6's 16-byte addresses and 32-bit fragment id. */
#define NP_MAX_FRAG_FLOWS 8192
#define NP_FRAG_LIFETIME_S 30

struct np_frag_key {
	__be32 saddr_be[4]; /* IPv4 in [0], the rest 0 */
	__be32 daddr_be[4];
	__be32 id_be;       /* IPv4: the 16-bit IP id, zero-extended */
	__u8 proto;         /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 dir;           /* NP_FLOW_TO_BACKEND (np_tc_ingress) or NP_FLOW_TO_CLIENT (np_tc_egress) */
	__u8 family;        /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u8 pad;           /* always 0: part of the hashed key */
};

struct np_frag {
	__be32 addr_be[4];   /* the later fragments' new destination (to backend) or source (to client) */
	__be16 node_port_be; /* the node port whose counters they add to */
	__u8 pad[6];
	__u64 first_ns;      /* CLOCK_MONOTONIC (bpf/clock.bpf.h) of the first fragment */
};

#define NP_FLOW_TO_BACKEND 1 /* np_flow_key.dir */
#define NP_FLOW_TO_CLIENT  2

/* np_flow.state, the same in both entries of a flow. */
#define NP_FLOW_OPEN      1 /* UDP, or an established TCP connection */
#define NP_FLOW_FIN_WAIT  2 /* TCP FIN seen from one side or both; the final ACK ends the flow */
#define NP_FLOW_SYN_SENT  3 /* TCP handshake, in `half_open_flows` */
#define NP_FLOW_PICKED_UP 5 /* TCP picked up mid-stream (no SYN seen): lives tcp_closing_ns idle, so a late
			       packet of a dead connection leaves no long-lived entry; a live one is picked up
			       again after such an idle time. (4 was ABI 2's time-wait, in `closed_flows`.) */

/* np_tcp_side.flags */
#define NP_SIDE_SEEN      1 /* seq_end holds what this side sent: a packet of it passed this build. Unset in a
			       migrated flow and on the backend's side of a picked-up one: the window is
			       unknown, and an RST is taken as conntrack's be_liberal would */
#define NP_SIDE_ACK_SEEN  2 /* ack holds this side's highest acknowledgement */
#define NP_SIDE_FIN       4 /* this side sent its FIN; seq_end counts it */
#define NP_SIDE_FIN_ACKED 8 /* this side acknowledged the other side's FIN */

/* What one side of a TCP connection has sent, as conntrack's ip_ct_tcp_state
 * keeps it: the sequence numbers nodeport tells an RST, a SYN or a final ACK
 * by. Host order, compared in serial-number arithmetic. */
struct np_tcp_side {
	__u32 isn;     /* the sequence number of this side's SYN (or SYN-ACK): a retransmitted one has it too */
	__u32 seq_end; /* the sequence number after the last byte this side sent (SYN and FIN count one) */
	__u32 ack;     /* the highest acknowledgement this side sent */
	__u32 flags;   /* NP_SIDE_*; set with atomic ORs, the two FINs of a close often cross on two CPUs */
};

struct np_flow_key {
	__be32 client_addr_be[4]; /* IPv4 in [0], the rest 0 */
	__be32 peer_addr_be[4];
	__be16 client_port_be;
	__be16 peer_port_be;
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 dir;    /* NP_FLOW_TO_BACKEND or NP_FLOW_TO_CLIENT */
	__u8 family; /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u8 pad;    /* always 0: part of the hashed key */
};

/* One direction of a flow. Each entry keeps the TCP state of the side that
 * sends the packets it matches (the client's in NP_FLOW_TO_BACKEND entries,
 * the backend's in NP_FLOW_TO_CLIENT ones), so an ordinary segment reads and
 * writes only its own entry: one lookup per packet. An RST, a SYN and the
 * packets of a close also read the other side's entry. */
struct np_flow {
	__be32 addr_be[4];   /* translated-to address: backend, or node address for replies; IPv4 in [0] */
	__be16 port_be;      /* translated-to port */
	__u8 state;          /* NP_FLOW_* */
	__u8 family;         /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u32 pad;           /* 0 */
	/* CLOCK_MONOTONIC at a tick's resolution (bpf/clock.bpf.h) of the last packet, refreshed at
	 * most once a second. */
	__u64 last_seen_ns;
	struct np_tcp_side tcp; /* TCP: the sending side's state; UDP: 0 */
};

/* `half_open_flows` value: one TCP handshake, under its NP_FLOW_TO_CLIENT
 * key (client, backend), so the SYN-ACK finds it with the key of any reply.
 * One entry holds both sides: there is no partner entry to hold the other. */
struct np_half_open {
	__be32 node_addr_be[4];      /* the node address the client's SYN was sent to; IPv4 in [0] */
	__be16 node_port_be;         /* and the node port */
	__u8 state;                  /* NP_FLOW_SYN_SENT */
	__u8 family;                 /* NP_FAMILY_IPV4 or NP_FAMILY_IPV6 */
	__u32 pad;                   /* 0 */
	__u64 last_seen_ns;          /* the client's SYN (a retransmitted one too); lives tcp_syn_ns */
	struct np_tcp_side client;   /* from the SYN */
	struct np_tcp_side backend;  /* from the SYN-ACK; flags 0 until one passed */
};

/* `flow_timeouts` array, one entry, written by `nodeport load`: how long each
 * kind of flow lives (see bpf/flows.bpf.h). Read by the TC programs and by
 * `nodeport flows`. */
/* Their defaults, in seconds (conntrack's, and above Linux's 7200 s keepalive
 * time for established TCP): LoadOptions::timeouts starts from these, and the
 * programs fall back to them should the array lookup ever fail. */
#define NP_DEFAULT_TCP_ESTABLISHED_S 7800
#define NP_DEFAULT_TCP_SYN_S         60
#define NP_DEFAULT_TCP_CLOSING_S     120
#define NP_DEFAULT_UDP_IDLE_S        60

struct np_flow_timeouts {
	__u64 tcp_established_ns; /* idle */
	__u64 tcp_syn_ns;         /* a SYN not answered yet */
	__u64 tcp_closing_ns;     /* idle when half closed, and for picked-up flows */
	__u64 udp_idle_ns;
};

/* Ending the node's sockets that still talk to a replaced backend
 * (bpf/sock_end.bpf.c). Under the pin directory lock a write puts what it
 * will replace into the hash `sock_end_targets` before it changes `ports`,
 * then reads the socket iterator of each protocol once (one walk for any
 * number of targets) and removes the targets walked: every socket of the
 * caller's network namespace connected to a target's backend through a
 * translation nodeport made for its node port is ended with
 * bpf_sock_destroy(), and the iterator writes one byte per socket ended.
 * Outside a write it holds only what a write killed before its walk left,
 * which the next write (or load) walks. Value: __u8, unused. */
#define NP_MAX_SOCK_END_TARGETS NP_MAX_PORTS

struct np_sock_end_target {
	__be32 backend_addr_be; /* the replaced backend */
	__be16 backend_port_be;
	__be16 node_port_be;    /* the node port it was mapped on */
	__u8 proto;             /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];            /* always 0: part of the hashed key */
};

/* `sock_end_targets6`: the same for replaced IPv6 backends, whose sockets
 * the iterators find by their `sock_xlat6` translations. A map of its own
 * (new in map ABI 4, created by the next load): the IPv4 key keeps its
 * layout. */
struct np_sock_end_target6 {
	__be32 backend_addr_be[4];
	__be16 backend_port_be;
	__be16 node_port_be;
	__u8 proto;
	__u8 pad[3]; /* always 0: part of the hashed key */
};


/* `replaced_backends` LRU hash (bpf/sock_end.bpf.c): backends a write
 * replaced or removed, and whose they were, so that `del --owner ID --drain`
 * run after a redeploy's `set` has already given the port to the new sandbox
 * still knows which backends of ID to wait for. Key: the backend and the node
 * port it was mapped on (the np_sock_end_target layout); written under the
 * pin directory lock by set, del and sync, forgotten by `del --owner` of that
 * owner, or when the port leads to the backend again. An LRU: a controller
 * that never deletes by owner only makes the oldest records go. IPv6 backends
 * go to `replaced_backends6`, keyed by np_sock_end_target6: a map of its own,
 * as `sock_end_targets6` (created by the next load; with older pins they are
 * not recorded). */
#define NP_MAX_REPLACED_BACKENDS 65536

struct np_replaced_backend {
	__u64 owner_id;    /* FNV-1a 64 of the owner that held the port then, 0 for none */
	__u64 replaced_ns; /* CLOCK_MONOTONIC of the write */
};

/* One socket the `np_count_tcp`/`np_count_udp` iterators found connected to
 * a backend through a translation of the socket hooks (bpf/sock_end.bpf.c);
 * their output is a sequence of these. Not a map: no ABI version. */
struct np_local_conn {
	__be32 backend_addr_be;
	__be16 backend_port_be;
	__be16 node_port_be; /* the node port the translation was for */
	__u8 proto;          /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 state;          /* the kernel's TCP_* socket state (1 established; also connected UDP) */
	__u8 pad[2];
};

/* The same for an AF_INET6 socket connected to a plain IPv6 peer that a
 * `sock_xlat6` translation gave it, from the `np_count6_tcp`/`np_count6_udp`
 * iterators: programs and a record of their own, so that a CLI of this
 * version reading the pins of an older load, or an older one reading these,
 * still finds np_local_conn records where it looks. */
struct np_local_conn6 {
	__be32 backend_addr_be[4];
	__be16 backend_port_be;
	__be16 node_port_be;
	__u8 proto;
	__u8 state;
	__u8 pad[2];
};

/* ---- Counters (bpf/counters.bpf.h; read by `nodeport stats`) ----
 *
 * Per-CPU maps, so a CPU never waits for another to count; a reader sums the
 * CPUs' values. Both are pinned and kept by a reload. */

/* `port_counters`, per-CPU hash keyed by struct np_port_key: what nodeport
 * translated for one node port. The programs create a port's entry on its
 * first translation; `set` deletes it when the port goes to another owner and
 * `del` when the port is unmapped, so a port's counters start from zero with
 * each owner. The local path counts translations only: its packets never
 * pass a nodeport program. */
/* The counters, in their order in the value, each a __u64: the one list the
 * struct and every reader (include/nodeport/stats.hpp: the sum, `stats`' table,
 * JSON and rates, Prometheus) are generated from. A name is the field, the key
 * in `stats --json` and in `bpftool map dump`. */
#define NP_PORT_COUNTERS(X)                                                                              \
	X(local_connects)       /* connect4/6: TCP connections and connected UDP sockets */             \
	X(local_sends)          /* sendmsg4: datagrams of unconnected UDP sockets */                    \
	X(external_flows)       /* new external flows (a TCP SYN, a UDP flow's first datagram) */       \
	X(to_backend_packets)   /* external path, client -> backend, after translation; packets on the  \
				   wire (a GRO/GSO skb counts its segments) */                                \
	X(to_backend_bytes)     /* their length from the IP header on */                                \
	X(from_backend_packets) /* external path, backend -> client replies translated */               \
	X(from_backend_bytes)

#define NP_PORT_COUNTER_FIELD(name) __u64 name;
struct np_port_counters {
	NP_PORT_COUNTERS(NP_PORT_COUNTER_FIELD)
	__u64 reserved; /* 0; keeps the value 64 bytes */
};
#undef NP_PORT_COUNTER_FIELD

/* `reason_counters`, per-CPU array indexed by enum np_reason: why a packet or
 * a call was left untouched, or failed open. Never reset: the totals survive
 * a reload. The names people see, and each reason's path, are in one table in
 * user space (loader/base/reasons.cpp). New reasons are added at the end; the
 * array has room for NP_REASON_SLOTS so that adding one changes no map shape. */
enum np_reason {
	/* external path, np_tc_ingress (client -> node) */
	NP_REASON_NOT_IPV4_TCP_UDP = 0, /* ARP, IPv6, ICMP other than errors, ...: not ours */
	NP_REASON_IP_OPTIONS = 1,       /* IPv4 with options: the L4 header is not where we rewrite */
	NP_REASON_FRAGMENT = 2,         /* a later IP fragment whose first was not translated (or not seen yet) */
	NP_REASON_TRUNCATED = 3,        /* shorter than its headers */
	NP_REASON_NOT_NODE_ADDR = 4,    /* a flow start to an address that is not the node's */
	NP_REASON_PORT_NOT_MAPPED = 5,  /* a flow start to a node address, port not mapped */
	NP_REASON_NOT_FLOW_START = 6,   /* TCP without a flow, not a SYN and not picked up: the node's own */
	NP_REASON_FLOW_EXPIRED = 7,     /* matched a closed TCP flow past its lifetime */
	NP_REASON_UDP_ANSWERS_NODE = 8,  /* UDP answering the node: it sent to the sender from that port
					   (`node_udp`), or a socket of it is connected to the sender */
	NP_REASON_FLOW_TABLE_FULL = 9,  /* the flow table refused the new flow */
	NP_REASON_FLOW_CONFLICT = 10,   /* the reply tuple belongs to another live flow */
	NP_REASON_REWRITE_FAILED = 11,  /* a checksum or store helper failed */
	/* external path, np_tc_egress (replies) */
	NP_REASON_REPLY_NO_FLOW = 12,   /* not a reply of a nodeport flow: the node's own traffic */
	NP_REASON_REPLY_EXPIRED = 13,   /* reply of a flow past its lifetime */
	NP_REASON_REPLY_NOT_OURS = 14,  /* SYN-ACK on the tuple of an established flow, or not a SYN-ACK on a handshake's */
	NP_REASON_REPLY_REWRITE_FAILED = 15,
	/* local path, np_connect4/6 / np_sendmsg4 */
	NP_REASON_LOCAL_PORT_NOT_MAPPED = 16, /* port not mapped: most of the node's connections */
	NP_REASON_LOCAL_NOT_NODE_DEST = 17,   /* mapped port, but the address is not the node */
	NP_REASON_LOCAL_NO_STORAGE = 18,      /* translated, but no socket storage: getpeername and
						 recvmsg show the backend, `set` cannot end the socket */
	/* external path, np_tc_ingress */
	NP_REASON_ICMP_NO_FLOW = 19,          /* an ICMP error about a packet of no flow: the node's own */
	/* external path, both programs */
	NP_REASON_TCP_OUT_OF_WINDOW = 20,     /* an RST or SYN outside its flow's window (conntrack: INVALID):
						 passed untranslated, the flow unchanged */
	NP_REASON_COUNT = 21
};
#define NP_REASON_SLOTS 64

#ifdef __cplusplus
static_assert(sizeof(struct np_tc_attachment) == 32, "np_tc_attachment ABI");
static_assert(sizeof(struct np_iface_choice) == 8 + 16 * NP_MAX_IFACE_NAMES, "np_iface_choice ABI");
static_assert(sizeof(struct np_port_key) == 4, "np_port_key ABI");
static_assert(sizeof(struct np_backend) == 288, "np_backend ABI");
static_assert(sizeof(struct np_node_addr) == 20, "np_node_addr ABI");
static_assert(sizeof(struct np_config) == 16, "np_config ABI");
static_assert(sizeof(struct np_sock_xlat) == 12 * NP_SOCK_XLAT_SLOTS + 8, "np_sock_xlat ABI");
static_assert(sizeof(struct np_sock_xlat6) == 36 * NP_SOCK_XLAT_SLOTS + 8, "np_sock_xlat6 ABI");
static_assert(sizeof(struct np_flow_key) == 40, "np_flow_key ABI");
static_assert(sizeof(struct np_tcp_side) == 16, "np_tcp_side ABI");
static_assert(sizeof(struct np_flow) == 48, "np_flow ABI");
static_assert(sizeof(struct np_half_open) == 64, "np_half_open ABI");
static_assert(sizeof(struct np_frag_key) == 40, "np_frag_key ABI");
static_assert(sizeof(struct np_frag) == 32, "np_frag ABI");
static_assert(sizeof(struct np_sock_end_target) == 12, "np_sock_end_target ABI");
static_assert(sizeof(struct np_sock_end_target6) == 24, "np_sock_end_target6 ABI");
static_assert(sizeof(struct np_flow_timeouts) == 32, "np_flow_timeouts ABI");
static_assert(sizeof(struct np_replaced_backend) == 16, "np_replaced_backend ABI");
static_assert(sizeof(struct np_local_conn) == 12, "np_local_conn layout");
static_assert(sizeof(struct np_local_conn6) == 24, "np_local_conn6 layout");
static_assert(sizeof(struct np_port_counters) == 64, "np_port_counters ABI");
static_assert(NP_REASON_COUNT <= NP_REASON_SLOTS, "np_reason slots");
#else
_Static_assert(sizeof(struct np_tc_attachment) == 32, "np_tc_attachment ABI");
_Static_assert(sizeof(struct np_iface_choice) == 8 + 16 * NP_MAX_IFACE_NAMES, "np_iface_choice ABI");
_Static_assert(sizeof(struct np_port_key) == 4, "np_port_key ABI");
_Static_assert(sizeof(struct np_backend) == 288, "np_backend ABI");
_Static_assert(sizeof(struct np_node_addr) == 20, "np_node_addr ABI");
_Static_assert(sizeof(struct np_config) == 16, "np_config ABI");
_Static_assert(sizeof(struct np_sock_xlat) == 12 * NP_SOCK_XLAT_SLOTS + 8, "np_sock_xlat ABI");
_Static_assert(sizeof(struct np_sock_xlat6) == 36 * NP_SOCK_XLAT_SLOTS + 8, "np_sock_xlat6 ABI");
_Static_assert(sizeof(struct np_flow_key) == 40, "np_flow_key ABI");
_Static_assert(sizeof(struct np_tcp_side) == 16, "np_tcp_side ABI");
_Static_assert(sizeof(struct np_flow) == 48, "np_flow ABI");
_Static_assert(sizeof(struct np_half_open) == 64, "np_half_open ABI");
_Static_assert(sizeof(struct np_frag_key) == 40, "np_frag_key ABI");
_Static_assert(sizeof(struct np_frag) == 32, "np_frag ABI");
_Static_assert(sizeof(struct np_sock_end_target) == 12, "np_sock_end_target ABI");
_Static_assert(sizeof(struct np_sock_end_target6) == 24, "np_sock_end_target6 ABI");
_Static_assert(sizeof(struct np_flow_timeouts) == 32, "np_flow_timeouts ABI");
_Static_assert(sizeof(struct np_replaced_backend) == 16, "np_replaced_backend ABI");
_Static_assert(sizeof(struct np_local_conn) == 12, "np_local_conn layout");
_Static_assert(sizeof(struct np_local_conn6) == 24, "np_local_conn6 layout");
_Static_assert(sizeof(struct np_port_counters) == 64, "np_port_counters ABI");
_Static_assert(NP_REASON_COUNT <= NP_REASON_SLOTS, "np_reason slots");
#endif

#endif /* NODEPORT_ABI_H */
