#!/usr/bin/env python3
"""docs/map-abi.md's table of pinned maps against the code it restates
(issue 19): each map the BPF programs declare pinned by name is a row, with
the type, entry count and preallocation of its declaration, and every struct
the table spells out ("np_flow_key {be32 client_addr_be[4]; ...}") lists the
fields of include/nodeport/abi.h's struct, in order. Prints "ok"/"not ok"
lines for tests/docs_test.sh, then "end"; exits 1 when one fails.

    docs_abi_check.py ROOT
"""
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1])
ABI = (ROOT / "include/nodeport/abi.h").read_text()
DOC = (ROOT / "docs/map-abi.md").read_text()

TYPE_WORDS = {
    "BPF_MAP_TYPE_HASH": "hash",
    "BPF_MAP_TYPE_LRU_HASH": "LRU hash",
    "BPF_MAP_TYPE_PERCPU_HASH": "per-CPU hash",
    "BPF_MAP_TYPE_ARRAY": "array",
    "BPF_MAP_TYPE_PERCPU_ARRAY": "per-CPU array",
    "BPF_MAP_TYPE_SK_STORAGE": "socket storage",
}

failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok   " if ok else "not ok ") + what + ("" if ok else f": {detail}"))
    failures += not ok


def without_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def field_names(body):
    """The member names of a C declaration list or of the table's shorthand
    ("u8 proto (6 tcp, 17 udp); u8 pad = 0; np_tcp_side client, backend")."""
    while re.search(r"\([^()]*\)", body):  # the table's notes, innermost first
        body = re.sub(r"\([^()]*\)", "", body)
    names = []
    for decl in body.split(";"):
        decl = re.sub(r"\[[^\]]*\]|=\s*\w+", "", decl).strip()
        if not decl:
            continue
        first, *more = decl.split(",")
        names += [first.split()[-1]] + [m.strip() for m in more]
    return names


defines = dict(re.findall(r"^#define\s+(NP_\w+)[ \t]+(\w+)[ \t]*(?:/\*.*)?$", ABI, re.M))


def value_of(word):
    """A number, or an abi.h define resolved to one (NP_MAX_SOCK_END_TARGETS -> NP_MAX_PORTS -> 131072)."""
    while word in defines:
        word = defines[word]
    return word



abi_src = without_comments(ABI)
structs = {m[1]: field_names(m[2]) for m in re.finditer(r"struct (np_\w+) \{(.*?)\};", abi_src, re.S)}
# np_port_counters is generated from its X-macro list (docs_test checks those names).
structs["np_port_counters"] = re.findall(r"^\s*X\((\w+)\)", ABI, re.M) + ["reserved"]

# Every map declared pinned by name, from the BPF sources.
declared = {}
for path in sorted((ROOT / "bpf").glob("*.bpf.[ch]")):
    src = without_comments(path.read_text())
    for m in re.finditer(r"struct \{(.*?)\} (\w+) SEC\(\"\.maps\"\);", src, re.S):
        body, name = m[1], m[2]
        if "LIBBPF_PIN_BY_NAME" not in body:
            continue
        kind = re.search(r"__uint\(type, (\w+)\)", body)[1]
        entries = re.search(r"__uint\(max_entries, (\w+)\)", body)
        count = entries and value_of(entries[1])
        declared[name] = (TYPE_WORDS.get(kind, kind), count, "BPF_F_NO_PREALLOC" in body)

# The first table naming a map is the pin table (a later one counts memory).
rows = {}
for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", DOC, re.M):
    rows.setdefault(m[1], m[2])
for name, (kind, count, no_prealloc) in sorted(declared.items()):
    cell = rows.get(name)
    if cell is None:
        check(f"docs/map-abi.md has a row for the pinned map {name}", False, "no row")
        continue
    want = kind + (f", {count}" if count and kind != "socket storage" else "")
    got = cell.split(" (")[0].replace(", not preallocated", "")
    check(f"{name}: the table says {want}", got == want, f"the table says '{cell}'")
    if kind != "socket storage":  # never preallocated
        check(f"{name}: the table says whether it is preallocated", no_prealloc == ("not preallocated" in cell),
              cell)

for m in re.finditer(r"(np_\w+) \{([^}]*)\}", DOC):
    name, spelled = m[1], field_names(m[2])
    if name not in structs:
        check(f"{name} (docs/map-abi.md) is a struct of abi.h", False, "not found")
        continue
    check(f"{name}: the table lists abi.h's fields in order", spelled == structs[name],
          f"table {spelled}, abi.h {structs[name]}")

print("end")  # a crash before it is a failure too (docs_test.sh)
sys.exit(1 if failures else 0)
