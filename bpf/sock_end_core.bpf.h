/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The kernel-internal structs the socket iterators (sock_end.bpf.c) read.
 * Unlike everything else nodeport's programs touch, these are not UAPI: their
 * layout changes between kernels and configs. So, as bcc's libbpf-tools does
 * for the fields it needs, they are declared here with only the fields we read
 * and `preserve_access_index`: every access becomes a CO-RE relocation that
 * libbpf resolves by field name against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) when `load` loads the object. The offsets below
 * are never used as such. Fields the kernel keeps in anonymous unions or
 * structs (skc_daddr, skc_dport, the iterator's __bpf_md_ptr unions) are
 * declared flat: libbpf matches a field by name through anonymous members.
 * Add a field here only with its kernel name and type. */
#ifndef NODEPORT_SOCK_END_CORE_BPF_H
#define NODEPORT_SOCK_END_CORE_BPF_H

#include <linux/types.h>

#define NP_CORE __attribute__((preserve_access_index))

struct seq_file; /* opaque: only passed back to bpf_seq_write() */

struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__be32 skc_daddr;
	__be16 skc_dport;
	struct in6_addr skc_v6_daddr; /* the IPv6 peer of an AF_INET6 socket (kernel built with IPv6) */
} NP_CORE;

struct sock {
	struct sock_common __sk_common;
} NP_CORE;

struct udp_sock; /* only cast to struct sock: its first member is one */
struct tcp_sock; /* likewise; bpf_skc_to_tcp_sock() returns it */

struct bpf_iter_meta {
	struct seq_file *seq;
} NP_CORE;

/* The contexts of SEC("iter/udp") and SEC("iter/tcp"). */
struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} NP_CORE;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} NP_CORE;

#endif /* NODEPORT_SOCK_END_CORE_BPF_H */
