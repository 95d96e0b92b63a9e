#!/usr/bin/env bash
# A map named `ports` in the pin directory that is not nodeport's (another
# layout, another type, or right sizes but the wrong type): every command
# refuses it within a time limit, exit 1 with a message naming it, and the
# foreign map keeps its entry untouched. Before the check, `list` looped
# forever on such a map and `set` wrote 60 bytes of the CLI's stack into it.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin foreign
topo_cgroup
DIRS=()
on_cleanup() { rm -rf "${DIRS[@]}"; }

# layout NAME TYPE KEY VALUE: a pin directory holding a foreign `ports` map
# of that layout with one entry; prints the directory.
layout() {
    local dir="$PIN-$1"
    mkdir -p "$dir"
    bpftool map create "$dir/ports" type "$2" key "$3" value "$4" entries 16 name foreign >/dev/null || return 1
    bpftool map update pinned "$dir/ports" key $(printf '0 %.0s' $(seq "$3")) value $(printf '7 %.0s' $(seq "$4"))
    echo "$dir"
}

dump() { bpftool -j map dump pinned "$1/ports" | jq -c '[.[] | .value]'; }

for spec in "hash_64_8 hash 64 8" "array_4_96 array 4 96" "lru_4_96 lru_hash 4 96"; do
    read -r name type key value <<<"$spec"
    dir=$(layout "$name" "$type" "$key" "$value") || { fail "$name: bpftool map create"; continue; }
    DIRS+=("$dir")
    before=$(dump "$dir")
    for cmd in "list" "get tcp/1" "set tcp/1 10.8.0.2:80 --owner x" "del tcp/1" "flush" "sync --file -"; do
        out=$(timeout 10 "$NODEPORT" $cmd --pin-dir "$dir" 2>&1 <<<'[]'); rc=$?
        expect_eq "$name: $cmd exits 1 at once (not a hang: 124)" 1 "$rc"
        expect_match "$name: $cmd says the map is not nodeport's" "not a nodeport map: $dir/ports" "$out"
    done
    out=$(timeout 20 "$NODEPORT" load --pin-dir "$dir" --cgroup "$TOPO_CGROUP" --local-only 2>&1); rc=$?
    expect_eq "$name: load exits 1" 1 "$rc"
    expect_match "$name: load says the map is not nodeport's" "not a nodeport map: $dir/ports" "$out"
    expect_eq "$name: the foreign map keeps its entry, unchanged" "$before" "$(dump "$dir")"
    expect_eq "$name: nothing was attached to the test cgroup" "" "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2)"
done
# Maps of the right shapes, but node_config records another map ABI (a newer
# or older nodeport's pins): refused the same way, nothing written.
dir="$PIN-abi99"
DIRS+=("$dir")
mkdir -p "$dir"
bpftool map create "$dir/node_config" type array key 4 value 16 entries 1 name node_config
bpftool map update pinned "$dir/node_config" key 0 0 0 0 value 99 0 0 0 $(printf '0 %.0s' $(seq 12))
bpftool map create "$dir/ports" type hash key 4 value 96 entries 16 name ports
for cmd in "list" "get tcp/1" "set tcp/1 10.8.0.2:80" "del tcp/1" "flush" "sync --file -"; do
    out=$(timeout 10 "$NODEPORT" $cmd --pin-dir "$dir" 2>&1 <<<'[]'); rc=$?
    expect_eq "ABI v99 pins: $cmd exits 1" 1 "$rc"
    expect_match "ABI v99 pins: $cmd names the ABI" "not a nodeport map: $dir/node_config .*map ABI v99" "$out"
done
expect_eq "ABI v99 pins: ports stays empty" 0 "$(bpftool -j map dump pinned "$dir/ports" | jq length)"
finish
