#!/usr/bin/env python3
"""The loader's layers, checked: its folders are the layers, and a file
includes headers of its own layer or those below, never above, so the
imports run one way (issue 19).

  base      plumbing and the pin directory (result, text, netlink, netns,
            sysctl, pin_dir, map_catalog, map keys)
  datapath  loading, attaching and migrating the programs and maps
  flows     the external path's flows, the node's connections
  table     the port table the controller writes, its counters, sync
  node      diagnosing the node: status, legacy rules, metrics
  explain   why a port does what it does
  capi, cli on top: the C ABI, and the command line, which uses the library
            through include/nodeport/ alone

Each public header (include/nodeport/) has a layer too, and follows the same
rule. A new folder or public header fails the check until it is given its
layer here. Exits 0 only when there is no problem.

Usage: layers_check.py SOURCE_DIR
"""
import pathlib
import re
import sys

LAYERS = ["base", "datapath", "flows", "table", "node", "explain", "capi", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
RANK["cli"] = RANK["capi"]  # both on top, beside each other

PUBLIC = {
    "abi.h": "base", "fd.hpp": "base", "flow_lifetime.h": "base", "lock_wait.hpp": "base",
    "reasons.hpp": "base", "result.hpp": "base", "text.hpp": "base", "types.hpp": "base",
    "pin_dir.hpp": "base",
    "datapath_types.hpp": "datapath", "datapath.hpp": "datapath", "interfaces.hpp": "datapath",
    "sock_end.hpp": "datapath", "watch.hpp": "datapath",
    "connections.hpp": "flows", "flows.hpp": "flows",
    "port_table.hpp": "table", "stats.hpp": "table", "sync.hpp": "table",
    "legacy_iptables.hpp": "node", "metrics.hpp": "node", "status.hpp": "node",
    "explain.hpp": "explain",
    "nodeport.h": "capi",
}
# Generated from the BPF objects, beside them in the build directory: the
# skeletons (bpftool gen skeleton) and the map catalog's table
# (loader/base/map_catalog_gen.cpp); below everything that includes them.
SKELETON = re.compile(r"^([a-z_]+\.skel\.h|pinned_maps\.inc)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(include, problems, where):
    if include.startswith("nodeport/"):
        name = include[len("nodeport/"):]
        if name not in PUBLIC:
            problems.append(f"{where}: include/nodeport/{name} has no layer in tests/layers_check.py")
            return None
        return PUBLIC[name]
    if SKELETON.match(include):
        return "base"
    folder = include.split("/")[0] if "/" in include else None
    if folder not in RANK:
        problems.append(f'{where}: #include "{include}" does not name its layer\'s folder (e.g. "base/pin_dir.hpp")')
        return None
    return folder


def main():
    root = pathlib.Path(sys.argv[1])
    problems = []
    checked = 0

    for header in sorted((root / "include/nodeport").iterdir()):
        if header.name not in PUBLIC:
            problems.append(f"include/nodeport/{header.name} has no layer in tests/layers_check.py")
            continue
        own = PUBLIC[header.name]
        for include in INCLUDE.findall(header.read_text()):
            used = layer_of(include, problems, f"include/nodeport/{header.name}")
            if used and RANK[used] > RANK[own]:
                problems.append(f"include/nodeport/{header.name} ({own}) includes {include} ({used}), a higher layer")
        checked += 1

    loader = root / "loader"
    for path in sorted(loader.rglob("*")):
        if path.suffix not in (".cpp", ".hpp", ".h", ".c"):
            continue
        rel = path.relative_to(loader)
        if rel.parts[0] == "static":
            continue  # a C shim for the static build's libelf, outside the layers
        if len(rel.parts) == 1:
            problems.append(f"loader/{rel}: every source is in its layer's folder")
            continue
        own = rel.parts[0]
        if own not in RANK:
            problems.append(f"loader/{own}/ is no layer of tests/layers_check.py")
            continue
        for include in INCLUDE.findall(path.read_text()):
            used = layer_of(include, problems, f"loader/{rel}")
            if not used:
                continue
            private = not include.startswith("nodeport/") and not SKELETON.match(include)
            if own == "cli" and private and used != "cli":
                problems.append(f"loader/{rel} includes {include}: the CLI uses the library through include/nodeport/")
            elif RANK[used] > RANK[own] or (used in ("capi", "cli") and used != own):
                problems.append(f"loader/{rel} ({own}) includes {include} ({used}), a higher layer")
        checked += 1

    for problem in problems:
        print(problem)
    print(f"{checked} files checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
