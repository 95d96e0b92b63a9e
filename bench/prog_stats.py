#!/usr/bin/env python3
"""Runs a command with BPF run-time statistics on and reports what the given
programs cost over it.

    prog_stats.py PIN-DIR -- COMMAND...

The programs are those behind the links pinned under PIN-DIR/links (so only
this nodeport's, not the machine's other programs). Statistics are switched
on with bpf(BPF_ENABLE_STATS): they stay on only while this process holds the
returned fd, so they go off when it exits, however it exits (the sysctl
kernel.bpf_stats_enabled would stay on after a crash).
Prints one JSON object: {"output": COMMAND's stdout (parsed if JSON),
"programs": {NAME: {"run_cnt": N, "run_time_ns": N, "ns_per_run": X}}}."""
import ctypes
import json
import os
import subprocess
import sys

BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]


def enable_stats():
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint8 * 128)()  # union bpf_attr, zeroed; .enable_stats.type = RUN_TIME (0)
    ctypes.c_uint32.from_buffer(attr, 0).value = BPF_STATS_RUN_TIME
    fd = libc.syscall(SYS_BPF, BPF_ENABLE_STATS, attr, ctypes.sizeof(attr))
    if fd < 0:
        sys.exit(f"prog_stats.py: BPF_ENABLE_STATS: {os.strerror(ctypes.get_errno())}")
    return fd


def bpftool(*args):
    r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True)
    # bpftool 7.5's `link show pinned FILE` prints the link, then exits 255:
    # what it printed is what counts.
    try:
        return json.loads(r.stdout)
    except ValueError:
        sys.exit(f"prog_stats.py: bpftool {' '.join(args)} (exit {r.returncode}): {r.stderr.strip()}")


def our_programs(pin_dir):
    ids = set()
    links = os.path.join(pin_dir, "links")
    for name in sorted(os.listdir(links)):
        ids.add(bpftool("link", "show", "pinned", os.path.join(links, name))["prog_id"])
    return ids


def snapshot(ids):
    stats = {}
    for prog_id in ids:
        p = bpftool("prog", "show", "id", str(prog_id))
        s = stats.setdefault(p["name"], {"run_cnt": 0, "run_time_ns": 0})
        s["run_cnt"] += p.get("run_cnt", 0)
        s["run_time_ns"] += p.get("run_time_ns", 0)
    return stats


pin_dir, sep, command = sys.argv[1], sys.argv[2], sys.argv[3:]
if sep != "--" or not command:
    sys.exit(__doc__)
ids = our_programs(pin_dir)
fd = enable_stats()
before = snapshot(ids)
result = subprocess.run(command, capture_output=True, text=True)
after = snapshot(ids)
os.close(fd)
programs = {}
for name, a in after.items():
    runs = a["run_cnt"] - before[name]["run_cnt"]
    ns = a["run_time_ns"] - before[name]["run_time_ns"]
    programs[name] = {"run_cnt": runs, "run_time_ns": ns, "ns_per_run": ns / runs if runs else None}
try:
    output = json.loads(result.stdout)
except ValueError:
    output = result.stdout.strip()
print(json.dumps({"output": output, "programs": programs}))
sys.exit(result.returncode)
