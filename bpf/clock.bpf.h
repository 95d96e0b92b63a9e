/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The clock of every time the programs store or compare (last_seen_ns,
 * first_ns): CLOCK_MONOTONIC at a tick's resolution. bpf_ktime_get_ns()
 * reads the clock source, which on a VM costs about 5% of np_tc_ingress
 * (docs/BENCHMARKS.md); the coarse clock reads the time of the last tick.
 * Every lifetime here is a second or more, so a tick (at most 10 ms) is
 * nothing. User space reads the same clock (loader/base/bpf_clock.hpp). */
#ifndef NODEPORT_CLOCK_BPF_H
#define NODEPORT_CLOCK_BPF_H

static __always_inline __u64 np_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

#endif /* NODEPORT_CLOCK_BPF_H */
