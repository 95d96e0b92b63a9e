#!/usr/bin/python3
"""Checks `nodeport stats` output for tests/stats_test.sh.

  stats_check.py schema JSON-FILE
      The JSON has exactly the keys and types docs/running.md documents.
  stats_check.py prometheus PROM-FILE JSON-FILE
      The --prometheus text, read by prometheus_client's own parser (Debian's
      python3-prometheus-client), holds exactly the samples the JSON says.

Prints "ok", or one line per problem (and exits 1)."""
import json
import sys

PORT_KEYS = {"proto": str, "port": int, "family": str, "backend_ip": str, "backend_port": int, "owner": str,
             "local_connects": int, "local_sends": int, "external_flows": int,
             "to_backend_packets": int, "to_backend_bytes": int,
             "from_backend_packets": int, "from_backend_bytes": int}
PASSED_KEYS = {"reason": str, "path": str, "count": int}


def typed(obj, keys, where, problems):
    if not isinstance(obj, dict) or set(obj) != set(keys):
        problems.append(f"{where}: keys {sorted(obj) if isinstance(obj, dict) else type(obj).__name__}, "
                        f"want {sorted(keys)}")
        return
    for key, kind in keys.items():
        # bool is an int to Python; JSON true is not a number.
        if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
            problems.append(f"{where}.{key}: {obj[key]!r} is not {kind.__name__}")
        elif kind is int and obj[key] < 0:
            problems.append(f"{where}.{key}: negative")


def schema(doc):
    problems = []
    if not isinstance(doc, dict) or set(doc) != {"ports", "passed"}:
        return [f"top level: {doc if not isinstance(doc, dict) else sorted(doc)}, want ports and passed"]
    for i, port in enumerate(doc["ports"]):
        typed(port, PORT_KEYS, f"ports[{i}]", problems)
        if isinstance(port, dict) and port.get("proto") not in ("tcp", "udp"):
            problems.append(f"ports[{i}].proto: {port.get('proto')!r}")
    names = []
    for i, entry in enumerate(doc["passed"]):
        typed(entry, PASSED_KEYS, f"passed[{i}]", problems)
        if isinstance(entry, dict):
            names.append(entry.get("reason"))
            if entry.get("path") not in ("external", "reply", "local"):
                problems.append(f"passed[{i}].path: {entry.get('path')!r}")
    if len(names) != len(set(names)):
        problems.append("passed: a reason listed twice")
    return problems


def expected_samples(doc):
    want = set()
    for p in doc["ports"]:
        base = (("proto", p["proto"]), ("port", str(p["port"])))
        want.add(("nodeport_port_info", base + (("owner", p["owner"]),
                                                ("backend", f"{p['backend_ip']}:{p['backend_port']}")), 1))
        for kind, key in (("connect", "local_connects"), ("send", "local_sends")):
            want.add(("nodeport_port_socket_calls_total", base + (("kind", kind),), p[key]))
        want.add(("nodeport_port_flows_total", base, p["external_flows"]))
        for direction in ("to_backend", "from_backend"):
            want.add(("nodeport_port_packets_total", base + (("direction", direction),), p[f"{direction}_packets"]))
            want.add(("nodeport_port_bytes_total", base + (("direction", direction),), p[f"{direction}_bytes"]))
    for r in doc["passed"]:
        if r["path"] == "local":
            want.add(("nodeport_passed_socket_calls_total", (("reason", r["reason"]),), r["count"]))
        else:
            want.add(("nodeport_passed_packets_total", (("path", r["path"]), ("reason", r["reason"])), r["count"]))
    return {(name, frozenset(labels), value) for name, labels, value in want}


def prometheus(text, doc):
    from prometheus_client.parser import text_string_to_metric_families
    problems = []
    got = set()
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        if not family.documentation:
            problems.append(f"{family.name}: no HELP")
        for s in family.samples:
            got.add((s.name, frozenset(s.labels.items()), int(s.value)))
    # The parser names a counter family without its _total suffix. The node's
    # families (stats --prometheus without a port) come from status, not from
    # the JSON: present, gauges, and left out of the comparison.
    counters = {"nodeport_port_socket_calls", "nodeport_port_flows", "nodeport_port_packets", "nodeport_port_bytes",
                "nodeport_passed_packets", "nodeport_passed_socket_calls"}
    node = {"nodeport_build_info", "nodeport_healthy", "nodeport_problems", "nodeport_mapped_ports",
            "nodeport_flows", "nodeport_flow_table_capacity"}
    want_families = {**{name: "counter" for name in counters}, "nodeport_port_info": "gauge",
                     **{name: "gauge" for name in node}}
    if families != want_families:
        problems.append(f"families {families}, want {want_families}")
    got = {s for s in got if s[0] not in node}
    want = expected_samples(doc)
    for s in sorted(want - got, key=str):
        problems.append(f"missing or different: {s}")
    for s in sorted(got - want, key=str):
        problems.append(f"not in the JSON: {s}")
    return problems


def main():
    mode = sys.argv[1]
    if mode == "schema":
        problems = schema(json.load(open(sys.argv[2])))
    else:
        problems = prometheus(open(sys.argv[2]).read(), json.load(open(sys.argv[3])))
    print("\n".join(problems) if problems else "ok")
    sys.exit(1 if problems else 0)


main()
