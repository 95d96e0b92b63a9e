/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The kernel types the socket hooks and TC programs use, from the kernel's
 * UAPI headers (linux-libc-dev), as Katran and Cilium build: `__sk_buff`,
 * `bpf_sock_addr`, `bpf_sock_tuple`, `bpf_fib_lookup` and the packet headers
 * are a stable ABI, laid out the same on every kernel, so they need no BTF and
 * no CO-RE. The build therefore never reads the build host's
 * /sys/kernel/btf/vmlinux (a container or chroot has none); the host's BTF is
 * a run-time need only (sock_end_core.bpf.h). */
#ifndef NODEPORT_UAPI_BPF_H
#define NODEPORT_UAPI_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* bool as vmlinux.h defines it: a typedef, not <stdbool.h>'s macro, so the
 * BTF of a global such as tc.bpf.c's `fib_redirect`, and from it the
 * skeleton's rodata struct, says `bool`, which C++ knows (`_Bool` clang++
 * does not). */
typedef _Bool bool;
enum { false = 0, true = 1 };

#endif /* NODEPORT_UAPI_BPF_H */
