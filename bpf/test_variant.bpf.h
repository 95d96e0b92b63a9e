/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The test-only variant of the programs (cmake -DNODEPORT_BPF_TEST_VARIANT=ON):
 * each program makes one more helper call whose result it ignores, so it
 * behaves the same with other instructions (another program tag).
 * tests/reload_test.sh alternates the two builds under traffic. */
#ifndef NODEPORT_TEST_VARIANT_BPF_H
#define NODEPORT_TEST_VARIANT_BPF_H

#ifdef NP_TEST_VARIANT
#define NP_TEST_VARIANT_MARK() ((void)bpf_ktime_get_ns())
#else
#define NP_TEST_VARIANT_MARK() ((void)0)
#endif

#endif /* NODEPORT_TEST_VARIANT_BPF_H */
