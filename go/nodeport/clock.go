package nodeport

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// bpfClockNow reads the clock the BPF programs stamp their entries with
// (bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC at a tick's resolution), as
// the C++ library does (loader/base/bpf_clock.hpp), so that times read from the
// maps and times written beside them compare.
func bpfClockNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC_COARSE: %w", err)
	}
	return uint64(ts.Nano()), nil
}
