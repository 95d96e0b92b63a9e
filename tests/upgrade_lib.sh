# Helpers for the tests that replace a loaded nodeport under traffic
# (reload_test.sh, abi_migration_test.sh, abi2_migration_test.sh, deb_test.sh). Source after tests/lib.sh and
# test_begin.

# build_cli NAME SRC [CMAKE-ARGS...]: builds the nodeport CLI of the tree SRC
# into $WORK/NAME (a Release build with default options, as a packager's);
# prints the binary's path, or fails with the build log's first errors.
build_cli() {
    local name=$1 src=$2 dir="$WORK/$1"
    shift 2
    if cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.log" 2>&1 &&
        cmake --build "$dir" --target nodeport_cli -j "$(nproc)" >>"$dir.log" 2>&1; then
        echo "$dir/nodeport"
    else
        echo "build of $name failed: $(grep -m 3 -E 'error|Error' "$dir.log")" >&2
        return 1
    fi
}

# abi_introduced N: the commit of this checkout's history that introduced
# map ABI N: the oldest to add "#define NODEPORT_ABI_VERSION N" (the commit
# of ABI N+1 removes that line, and a plain -S finds it first). Empty
# without the history (a shallow clone).
abi_introduced() {
    git -C "$(dirname "$TESTS_DIR")" log --reverse --format=%H -S"#define NODEPORT_ABI_VERSION $1" \
        -- include/nodeport/abi.h 2>/dev/null | head -n 1
}

# require_abi_history N: skips the test unless this checkout's history holds
# the commit that introduced ABI N and its parent (a shallow clone does not).
require_abi_history() {
    local commit
    commit=$(abi_introduced "$1")
    [ -n "$commit" ] && git -C "$(dirname "$TESTS_DIR")" cat-file -e "$commit^" 2>/dev/null ||
        skip "the ABI $(($1 - 1)) build comes from the git history, and this checkout has none (a shallow clone?)"
}

# cli_before_abi N: builds the nodeport CLI of the commit before ABI N came
# (the last build of ABI N-1, from the git history) into $WORK; prints its
# path, or fails as build_cli does.
cli_before_abi() {
    local name="abi$(($1 - 1))" commit
    commit=$(abi_introduced "$1")
    mkdir "$WORK/$name-src"
    git -C "$(dirname "$TESTS_DIR")" archive "$commit^" | tar -x -C "$WORK/$name-src"
    build_cli "$name" "$WORK/$name-src"
}

# upgrade_node: the node, the client, the hooked cgroup and one sandbox
# serving tcp/7000 (--hold) at $SB1, for a test that loads $OLD's nodeport
# and then this build's over it; old and new run each CLI in the node
# namespace on $PIN.
upgrade_node() {
    topo_node
    topo_client
    topo_cgroup
    topo_sandbox 1
    topo_serve sb1 sb1 7000 --hold
    SB1=$(topo_sandbox_ip 1)
}
old() { topo_in node "$OLD" "$1" --pin-dir "$PIN" "${@:2}"; }
new() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }

# The traffic that must not notice a reload, from start_traffic to
# stop_traffic: new connections in a loop through the external path (client
# -> node address, TC programs) and the local path (a node process in the
# hooked cgroup -> 127.0.0.1, connect4), and one long-lived external
# connection exchanging a line every 50 ms.
TRAFFIC_STOP=""
TRAFFIC_PIDS=()
start_traffic() { # start_traffic PORT (a --hold server behind it)
    local port=$1 clients="$TESTS_DIR/clients.py"
    TRAFFIC_STOP="$WORK/stop-traffic"
    rm -f "$TRAFFIC_STOP" "$TRAFFIC_STOP".ready.*
    topo_in client python3 "$clients" tcp-until "$TOPO_NODE_EXT_IP" "$port" "$TRAFFIC_STOP" \
        >"$WORK/external.out" 2>"$WORK/external.err" &
    TRAFFIC_PIDS+=($!)
    topo_in_cgroup node python3 "$clients" tcp-until 127.0.0.1 "$port" "$TRAFFIC_STOP" \
        >"$WORK/local.out" 2>"$WORK/local.err" &
    TRAFFIC_PIDS+=($!)
    topo_in client python3 "$clients" tcp-hold "$TOPO_NODE_EXT_IP" "$port" "$TRAFFIC_STOP" \
        >"$WORK/long.out" 2>"$WORK/long.err" &
    TRAFFIC_PIDS+=($!)
    # All three under way before the first reload (stop_traffic checks it):
    # each client marks its first success; a loaded machine may take seconds.
    local i
    for i in $(seq 1 300); do
        [ "$(compgen -G "$TRAFFIC_STOP.ready.*" | wc -l)" -ge 3 ] && return 0
        sleep 0.1
    done
    echo "start_traffic: the clients had no first success within 30 s" >&2
}

# mark_traffic_window: call right before the first and right after the last
# reload; stop_traffic checks that each client succeeded before and after it,
# so the traffic ran across every reload however slow the machine is.
WINDOW=()
mark_traffic_window() { WINDOW+=("$(date +%s.%N)"); }

# stop_traffic: ends the clients and checks each saw no failure and traffic
# on both sides of the window.
stop_traffic() {
    local what ok failed first last
    touch "$TRAFFIC_STOP"
    wait "${TRAFFIC_PIDS[@]}" 2>/dev/null
    TRAFFIC_PIDS=()
    for what in external local long; do
        read -r ok failed first last <"$WORK/$what.out" ||
            { ok=0 failed="no result: $(head -c 300 "$WORK/$what.err")" first=0 last=0; }
        expect_eq "$what traffic: no failed connection or exchange ($ok succeeded)" 0 "$failed"
        if awk -v f="$first" -v l="$last" -v a="${WINDOW[0]:-0}" -v b="${WINDOW[1]:-0}" \
            'BEGIN { exit !(f > 0 && f < a && l > b) }'; then
            pass "$what traffic succeeded before the first reload and after the last ($ok)"
        else
            fail "$what traffic ran across the reloads: first success $first, last $last, reloads ${WINDOW[*]}"
        fi
        [ "$failed" = 0 ] || head -n 5 "$WORK/$what.err"
    done
    WINDOW=()
}

stop_traffic_on_cleanup() {
    [ -n "$TRAFFIC_STOP" ] && touch "$TRAFFIC_STOP"
    [ "${#TRAFFIC_PIDS[@]}" -gt 0 ] && kill "${TRAFFIC_PIDS[@]}" 2>/dev/null
}

# prog_tag PROGRAM-PIN: the tag of the program behind a pinned link
# (bpftool exits 255 after printing a pinned link; the JSON is what counts).
prog_tag() {
    local id
    id=$(bpftool -j link show pinned "$1" 2>/dev/null | jq -r '.prog_id')
    bpftool -j prog show id "$id" | jq -r '.tag'
}
