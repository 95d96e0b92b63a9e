package nodeport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockWait is how long a writer waits for the pin directory's lock
// when the caller sets no wait: far above any writer's normal hold, short
// enough that a stuck holder is reported, naming its pid.
const DefaultLockWait = 5 * time.Second

// waitDeadline is when a wait of `wait` from now ends, or ctx's deadline if
// that is sooner.
func waitDeadline(ctx context.Context, wait time.Duration) time.Time {
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// waitEnded: why a wait that reached `deadline` ended: the context's error
// when the deadline was the context's (its timer may not have fired yet),
// else nil (the caller's lock wait).
func waitEnded(ctx context.Context, deadline time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !d.After(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// busy is the error of a wait ended by its context.
func busy(op, format string, cause error, args ...any) *Error {
	e := newError(ErrBusy, op, format+": %v", append(args, cause)...)
	e.cause = cause
	return e
}

// flockDir takes the exclusive flock of the pin directory that every nodeport
// writer (the CLI, the C++ library, a controller) takes, polling with
// LOCK_NB until the deadline or until ctx ends (pin_dir::Lock::take).
func flockDir(ctx context.Context, op string, dirFD int, dir string, wait time.Duration, deadline time.Time) error {
	pause := 100 * time.Microsecond
	for {
		err := unix.Flock(dirFD, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return sysError(op, fmt.Errorf("lock pin directory: %w", err))
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return busy(op, "pin directory %s is locked by %s", ctx.Err(), dir, flockHolder(dirFD))
		case <-t.C:
		}
		pause = min(pause*2, 2*time.Millisecond)
	}
	if cause := waitEnded(ctx, deadline); cause != nil {
		return busy(op, "pin directory %s is locked by %s", cause, dir, flockHolder(dirFD))
	}
	msg := fmt.Sprintf("pin directory %s is locked by %s", dir, flockHolder(dirFD))
	if wait > 0 {
		msg += fmt.Sprintf(" for more than %g s", wait.Seconds())
	}
	return &Error{Op: op, Message: msg, kind: ErrBusy}
}

func unlockDir(dirFD int) { unix.Flock(dirFD, unix.LOCK_UN) }

// flockHolder is "pid 1234 (comm)" for the holder of the flock on dirFD's
// inode as /proc/locks lists it, or "another process" (lock_holder.cpp).
func flockHolder(dirFD int) string {
	var st unix.Stat_t
	if unix.Fstat(dirFD, &st) != nil {
		return "another process"
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "another process"
	}
	defer f.Close()
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; a waiter's line has "->" second.
		fields := strings.Fields(lines.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != file {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil || pid <= 0 {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || len(strings.TrimSpace(string(comm))) == 0 {
			return fmt.Sprintf("pid %d", pid)
		}
		return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
	}
	return "another process"
}
