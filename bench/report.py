#!/usr/bin/env python3
"""The Markdown report and the JSON result of one bench.sh run.

    report.py RAW META [--json OUT]   what bench.sh runs at the end
    report.py --from RESULT           the report again from a result bench.sh wrote

RAW holds the run's samples, one JSON object a line, each with a "kind"
(conn, iperf, ctl, populate, progcost, progcost_bulk, pathcost, mem, or
skip: a contender not measured and why); META (a JSON file) the run's settings and notes. The report goes to
stdout; --json OUT writes the summary with every sample (under "raw") and the
settings (under "meta"), which is what --from reads back.

Every number printed comes from a sample of this run; what was not measured
is printed as n/a with the reason.
"""
import argparse
import json
import statistics
import sys


def med(v):
    return statistics.median(v) if v else None


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_f(x, d=2):
    return "n/a" if x is None else f"{x:.{d}f}"


def fmt_ms(us):
    if us is None:
        return "n/a"
    ms = us / 1000
    return f"{ms:.4f}" if ms < 0.01 else f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def one_line(text, limit):
    return " ".join(str(text).split())[:limit]


# (contender, row label, the floor it is compared with). An IPv6 row is
# compared with the IPv6 floor of its side, measured in the same rep.
CONN = [
    ("floor", "floor: client -> sandbox IP, no NAT", "floor"),
    ("iptables-0", "iptables DNAT, matching rule first (N=0)", "floor"),
    ("iptables-1000", "iptables DNAT behind 1,000 stale sandboxes (3,000 rules)", "floor"),
    ("iptables-10000", "iptables DNAT behind 10,000 stale sandboxes (30,000 rules)", "floor"),
    ("iptables-10000-nomatch", "iptables, 10,000 stale sandboxes loaded, client -> sandbox IP (no rule matches)", "floor"),
    ("nft-map-10000", "nft `dnat ... map` with 10,000 entries", "floor"),
    ("nodeport-ext", "nodeport external (TC), 1 port mapped", "floor"),
    ("nodeport-ext-65535", "nodeport external (TC), 65,535 ports mapped", "floor"),
    ("nodeport-ext-fib", "nodeport external (TC, --forward fib), 1 port mapped", "floor"),
    ("floor6", "IPv6 floor: client -> sandbox IPv6, no NAT", "floor6"),
    ("ip6tables-0", "ip6tables DNAT, matching rule first (N=0), IPv6", "floor6"),
    ("nodeport-ext6", "nodeport external (TC), IPv6, 1 port mapped", "floor6"),
    ("floor-node", "node floor: node ns -> sandbox IP, no NAT", "floor-node"),
    ("iptables-local-0", "iptables OUTPUT DNAT of 127.0.0.1, N=0 (node ns)", "floor-node"),
    ("nodeport-local", "nodeport local (cgroup connect4), 127.0.0.1, 1 port mapped", "floor-node"),
    ("nodeport-local-65535", "nodeport local (cgroup connect4), 127.0.0.1, 65,535 ports mapped", "floor-node"),
    ("floor-node6", "IPv6 node floor: node ns -> sandbox IPv6, no NAT", "floor-node6"),
    ("nodeport-local6", "nodeport local (cgroup connect6), [::1], 1 port mapped", "floor-node6"),
]

THR = [
    ("floor", "floor: client -> sandbox IP"),
    ("iptables-0", "iptables DNAT, N=0"),
    ("nodeport-ext", "nodeport external (TC)"),
    ("nodeport-ext-fib", "nodeport external (TC, --forward fib)"),
]

CTL = [
    ("nodeport-api", "add", "nodeport C++ API `PortTable::set` (table open once)"),
    ("nodeport-api", "del", "nodeport C++ API `PortTable::remove`"),
    ("nodeport-cli", "add", "`nodeport set` (CLI)"),
    ("nodeport-cli", "del", "`nodeport del` (CLI)"),
    ("iptables", "add", "`iptables -A` x3 (one port as the runtime mapped it)"),
    ("iptables", "del", "`iptables -D` x3 (by rule spec)"),
    ("nft", "add", "`nft add element` (named map)"),
    ("nft", "del", "`nft delete element`"),
    ("true", "add", "reference: process start (`/bin/true`)"),
]

# The programs whose cost every run reports (issue 11's per-packet budget is
# stated for them), by the path whose workload runs them. A program that no
# path ran is named under the table, not given a row.
PROG_EXPECTED = [
    ("nodeport-local", "np_connect4"),
    ("nodeport-ext", "np_tc_ingress"),
    ("nodeport-ext", "np_tc_egress"),
    ("nodeport-local6", "np_connect6"),
    ("nodeport-ext6", "np_tc_ingress"),
    ("nodeport-ext6", "np_tc_egress"),
]


class Report:
    def __init__(self, recs, meta):
        self.recs = recs
        self.meta = meta
        self.skips = {r["contender"]: r["reason"] for r in recs if r["kind"] == "skip"}
        self.lines = []
        self.out = {"meta": meta, "connections": {}, "throughput": {}, "control_plane": {}, "populate": {},
                    "memory": {}}

    def p(self, line=""):
        self.lines.append(line)

    def of_kind(self, kind):
        return [r for r in self.recs if r["kind"] == kind]

    def header(self):
        m = self.meta
        self.p(f"## nodeport benchmarks ({m['mode']}), {m['date']}")
        self.p()
        self.p(f"Kernel {m['kernel']}, {m['cpus']} CPUs, {m['iptables']}; client ns -> node ns -> sandbox ns on a bridge; "
               f"{m['reps']} reps x {m['duration']} s, 1 client thread. Ratios: each rep's rate over the floor measured "
               f"in the same rep (the client floor for traffic from the client ns, the node floor for traffic from the node ns; "
               f"for an IPv6 row, the IPv6 floor of its side), median over reps.")
        self.p()

    def connections(self):
        by = {}
        for r in self.of_kind("conn"):
            by.setdefault(r["contender"], []).append(r)
        self.p("### New connections: connect + 1-byte request/reply + close")
        self.p()
        self.p("| path | conn/s median | min | max | x floor | connect p50 / p99 µs | transaction p50 / p99 µs | failed conns |")
        self.p("|---|---|---|---|---|---|---|---|")
        for key, label, floor in CONN:
            rs = [r for r in by.get(key, []) if r.get("connections", 0) > 0]
            bad = [r for r in by.get(key, []) if r.get("connections", 0) == 0]
            if not rs:
                why = self.skips.get(key) or (
                    bad[0].get("failure") or json.dumps(bad[0].get("error_kinds")) if bad else "not run")
                why = one_line(why, 160)
                self.p(f"| {label} | n/a ({why}) | | | | | | |")
                self.out["connections"][key] = {"label": label, "measured": False, "reason": why}
                continue
            rates = [r["conn_per_s"] for r in rs]
            floors = {r["rep"]: r["conn_per_s"] for r in by.get(floor, []) if r.get("connections", 0) > 0}
            ratios = [r["conn_per_s"] / floors[r["rep"]] for r in rs if r["rep"] in floors]
            c50 = med([r["connect_us"]["p50"] for r in rs])
            c99 = med([r["connect_us"]["p99"] for r in rs])
            t50 = med([r["txn_us"]["p50"] for r in rs])
            t99 = med([r["txn_us"]["p99"] for r in rs])
            failed = sum(r["errors"] for r in by.get(key, []) if "errors" in r)
            kinds = {}
            for r in by.get(key, []):
                for k, v in r.get("error_kinds", {}).items():
                    kinds[k] = kinds.get(k, 0) + v
            failed_txt = f"{failed}" + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if kinds else "")
            if bad:
                failed_txt += f"; {len(bad)} rep(s) with no connection"
            if key == floor:
                ratio_txt = "1.00"
            elif ratios:
                ratio_txt = fmt_f(med(ratios), 3 if med(ratios) < 0.1 else 2)
            else:
                ratio_txt = "n/a (no floor in those reps)"
            self.p(f"| {label} | {fmt_int(med(rates))} | {fmt_int(min(rates))} | {fmt_int(max(rates))} | {ratio_txt} | "
                   f"{fmt_f(c50, 0)} / {fmt_f(c99, 0)} | {fmt_f(t50, 0)} / {fmt_f(t99, 0)} | {failed_txt} |")
            self.out["connections"][key] = {
                "label": label, "measured": True, "reps": len(rs), "floor": floor,
                "conn_per_s": {"median": med(rates), "min": min(rates), "max": max(rates)},
                "ratio_to_floor": {"median": med(ratios), "min": min(ratios), "max": max(ratios)} if ratios else None,
                "connect_us": {"p50": c50, "p99": c99}, "txn_us": {"p50": t50, "p99": t99},
                "failed_connections": failed, "error_kinds": kinds}
        self.p()

    def throughput(self):
        ip = self.of_kind("iperf")
        self.p(f"### Bulk throughput: iperf3, one stream, {self.meta['iperf_seconds']} s x {self.meta['iperf_reps']} rep(s)")
        self.p()
        self.p("| path | Gbit/s median | min | max | x floor | retransmits (sum) |")
        self.p("|---|---|---|---|---|---|")
        floor_bps = {r["rep"]: r["bits_per_second"] for r in ip if r["contender"] == "floor" and "bits_per_second" in r}
        for key, label in THR:
            rs = [r for r in ip if r["contender"] == key and "bits_per_second" in r]
            if not rs:
                bad = [r for r in ip if r["contender"] == key]
                why = self.skips.get("iperf-" + key) or (bad[0].get("failure") if bad else "not run")
                why = one_line(why, 160)
                self.p(f"| {label} | n/a ({why}) | | | | |")
                self.out["throughput"][key] = {"measured": False, "reason": why}
                continue
            g = [r["bits_per_second"] / 1e9 for r in rs]
            ratios = [r["bits_per_second"] / floor_bps[r["rep"]] for r in rs if r["rep"] in floor_bps]
            self.p(f"| {label} | {fmt_f(med(g))} | {fmt_f(min(g))} | {fmt_f(max(g))} | "
                   f"{fmt_f(med(ratios)) if ratios else 'n/a'} | {sum(r.get('retransmits') or 0 for r in rs)} |")
            self.out["throughput"][key] = {"measured": True, "gbit_per_s": {"median": med(g), "min": min(g), "max": max(g)},
                                           "ratio_to_floor": med(ratios)}
        self.p()

    def control_plane(self):
        ctl = self.of_kind("ctl")
        ns = self.meta["ctl_sizes"]
        self.p("### Control plane: median ms to map one more port / remove it, N ports already mapped")
        self.p()
        self.p("| operation | " + " | ".join(f"N={n:,}" for n in ns) + " | rounds |")
        self.p("|---|" + "---|" * len(ns) + "---|")
        for tool, op, label in CTL:
            cells, rounds = [], set()
            for n in ns:
                rs = [r for r in ctl if r["tool"] == tool and r["n"] == n]
                if not rs:
                    cells.append("n/a (not run)")
                    continue
                r = rs[0]
                if "failure" in r:
                    cells.append("n/a (failed: " + one_line(r["failure"], 80) + ")")
                    continue
                v = r[f"{op}_us"]
                cells.append(fmt_ms(med(v)))
                rounds.add(len(v))
                self.out["control_plane"].setdefault(f"{tool}-{op}", {})[str(n)] = {
                    "median_us": med(v), "min_us": min(v), "max_us": max(v), "rounds": len(v)}
            self.p(f"| {label} | " + " | ".join(cells) + f" | {'/'.join(str(x) for x in sorted(rounds)) or 'n/a'} |")
        self.p()

    def populate(self):
        self.p("### Populating nodeport's table")
        self.p()
        self.p("| method | ports | wall time | per port | rate |")
        self.p("|---|---|---|---|---|")
        for r in self.of_kind("populate"):
            if "failure" in r:
                self.p(f"| {r['label']} | n/a | n/a (failed: {one_line(r['failure'], 100)}) | | |")
                continue
            self.p(f"| {r['label']} | {r['count']:,} | {r['seconds']:.3f} s | {r['seconds'] / r['count'] * 1e6:.1f} µs | "
                   f"{r['count'] / r['seconds']:,.0f}/s |")
            self.out["populate"][r["label"]] = r
        self.p()

    def program_cost(self):
        cost = {r["contender"]: r for r in self.of_kind("progcost")}
        self.p("### What each program costs (BPF run-time statistics)")
        self.p()
        self.p("One run of each path with `BPF_ENABLE_STATS` on (`run_time_ns / run_cnt` of the programs behind nodeport's "
               "pinned links), apart from the rates above: the statistics add two clock reads to every run.")
        self.p()
        self.out["program_cost"] = {}
        self.p("| path | program | runs per connection | ns per run | µs per connection |")
        self.p("|---|---|---|---|---|")
        shown, seen = set(), set()
        for path, r in cost.items():
            for prog, s in sorted(r["programs"].items()):
                seen.add(prog)
                if not s["run_cnt"]:
                    continue
                shown.add((path, prog))
                self.p(f"| {path} | `{prog}` | {s['run_cnt'] / r['connections']:.1f} | {s['ns_per_run']:.0f} | "
                       f"{s['run_time_ns'] / r['connections'] / 1000:.2f} |")
            self.out["program_cost"][path] = r
        # The programs every run must report, when their path was not measured
        # or they did not run in it: a row that says so, never a number.
        for path, prog in PROG_EXPECTED:
            if (path, prog) in shown:
                continue
            if path in cost:
                why = "0 runs over the workload"
            else:
                why = one_line(self.skips.get(f"progcost-{path}") or self.skips.get("progcost") or "not run", 160)
            self.p(f"| {path} | `{prog}` | n/a ({why}) | | |")
        # Each path runs only its own programs (the local path never crosses
        # ext0, the client is outside the cgroup); a program no path ran has
        # no cost to show, and is named so its absence is not a mystery.
        idle = sorted(seen - {prog for _, prog in shown} - {prog for _, prog in PROG_EXPECTED})
        if idle:
            self.p()
            self.p("Run 0 times by this workload (TCP connections, no mapping changed), so no cost to show: "
                   + ", ".join(f"`{prog}`" for prog in idle) + ".")
        self.p()
        self.bulk_program_cost()
        self.path_cost()

    def bulk_program_cost(self):
        """The TC programs over one iperf3 stream: packets of an established flow only."""
        self.p("The same statistics over one iperf3 stream through the external path (one flow made and closed for "
               "the whole stream: the cost of an established connection's traffic). A run is one skb, which GRO or "
               "GSO may have made of several packets:")
        self.p()
        self.p("| path | program | runs | ns per run |")
        self.p("|---|---|---|---|")
        self.out["program_cost_bulk"] = {}
        runs = self.of_kind("progcost_bulk")
        for r in runs:
            for prog, s in sorted(r["programs"].items()):
                if s["run_cnt"]:
                    self.p(f"| {r['contender']} | `{prog}` | {s['run_cnt']:,} | {s['ns_per_run']:.0f} |")
            self.out["program_cost_bulk"][r["contender"]] = r
        if not runs:
            why = one_line(self.skips.get("progcost_bulk-nodeport-ext-bulk") or self.skips.get("progcost") or "not run", 160)
            self.p(f"| nodeport-ext-bulk | | n/a ({why}) | |")
        self.p()

    def path_cost(self):
        """np-progbench: each path through the TC programs on its own."""
        runs = self.of_kind("pathcost")
        self.p("### Each path through the TC programs on its own (`BPF_PROG_TEST_RUN`)")
        self.p()
        if not runs:
            self.p(f"n/a ({one_line(self.skips.get('pathcost', 'not run'), 160)})")
            self.p()
            return
        r = runs[-1]
        self.p(f"`np-progbench`: one crafted packet per test run, {r['runs']:,} runs each, the kernel's time per run "
               "(which includes the test run's own clock reads: the ARP row is close to that floor). No real skb, no "
               "other CPU, no full table: what the program itself costs on each path.")
        self.p()
        self.p("| program | path | ns per packet |")
        self.p("|---|---|---|")
        for path in r["paths"]:
            self.p(f"| `{path['program']}` | {path['name']} | {path['ns']:.0f} |")
        self.out["path_cost"] = r
        self.p()

    def memory(self):
        mem = self.of_kind("mem")
        self.p("### Memory of nodeport's pinned maps (bpftool `bytes_memlock`)")
        self.p()
        labels = []
        for r in mem:
            if r["label"] not in labels:
                labels.append(r["label"])
        if not mem:
            self.p("n/a (" + self.skips.get("memory", "not run") + ")")
            self.p()
            return
        self.p("| map | type | max entries | key + value bytes | " + " | ".join(labels) + " |")
        self.p("|---|---|---|---|" + "---|" * len(labels))
        maps = []
        for r in mem:
            if r["map"] not in maps:
                maps.append(r["map"])
        totals = {label: 0 for label in labels}
        for m in maps:
            rs = {r["label"]: r for r in mem if r["map"] == m}
            any_r = next(iter(rs.values()))
            cells = []
            for label in labels:
                if label in rs and rs[label].get("memlock") is not None:
                    cells.append(f"{rs[label]['memlock']:,} B")
                    totals[label] += rs[label]["memlock"]
                else:
                    cells.append("n/a")
            self.p(f"| {m} | {any_r.get('type')} | {any_r.get('max_entries'):,} | {any_r.get('key')} + {any_r.get('value')} | "
                   + " | ".join(cells) + " |")
            self.out["memory"][m] = {label: rs[label] for label in rs}
        self.p("| **total** | | | | " + " | ".join(f"**{totals[label] / 2**20:.1f} MiB**" for label in labels) + " |")
        self.p()

    def notes(self):
        if self.meta.get("notes"):
            self.p("Notes:")
            for n in self.meta["notes"]:
                self.p(f"- {n}")
            self.p()

    def build(self):
        self.header()
        self.connections()
        self.throughput()
        self.control_plane()
        self.populate()
        self.program_cost()
        self.memory()
        self.notes()
        self.out["raw"] = self.recs
        return "\n".join(self.lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("raw", nargs="?", help="the run's samples, one JSON object a line")
    ap.add_argument("meta", nargs="?", help="the run's settings, a JSON file")
    ap.add_argument("--json", metavar="OUT", help="write the JSON result here")
    ap.add_argument("--from", dest="result", metavar="RESULT", help="a JSON result bench.sh wrote: print its report again")
    args = ap.parse_args()
    if args.result:
        if args.raw or args.meta:
            ap.error("--from takes no RAW or META")
        with open(args.result) as f:
            saved = json.load(f)
        recs, meta = saved["raw"], saved["meta"]
    elif args.raw and args.meta:
        with open(args.raw) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        with open(args.meta) as f:
            meta = json.load(f)
    else:
        ap.error("give RAW and META, or --from RESULT")
    report = Report(recs, meta)
    text = report.build()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.out, f, indent=1)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
