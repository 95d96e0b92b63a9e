# Helpers for the tests that replace a loaded nodeport under traffic
# (reload_test.sh, abi_migration_test.sh). Source after tests/lib.sh and
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
    rm -f "$TRAFFIC_STOP"
    topo_in client python3 "$clients" tcp-until "$TOPO_NODE_EXT_IP" "$port" "$TRAFFIC_STOP" \
        >"$WORK/external.out" 2>"$WORK/external.err" &
    TRAFFIC_PIDS+=($!)
    topo_in_cgroup node python3 "$clients" tcp-until 127.0.0.1 "$port" "$TRAFFIC_STOP" \
        >"$WORK/local.out" 2>"$WORK/local.err" &
    TRAFFIC_PIDS+=($!)
    topo_in client python3 "$clients" tcp-hold "$TOPO_NODE_EXT_IP" "$port" "$TRAFFIC_STOP" \
        >"$WORK/long.out" 2>"$WORK/long.err" &
    TRAFFIC_PIDS+=($!)
    sleep 1  # all three are under way before the first reload
}

# stop_traffic: ends the clients and checks each saw traffic and no failure.
# Prints "FAILED-TOTAL" on the last line of its checks for the closing note.
stop_traffic() {
    local what ok failed
    touch "$TRAFFIC_STOP"
    wait "${TRAFFIC_PIDS[@]}" 2>/dev/null
    TRAFFIC_PIDS=()
    for what in external local long; do
        read -r ok failed <"$WORK/$what.out" || { ok=0 failed="no result: $(head -c 300 "$WORK/$what.err")"; }
        expect_eq "$what traffic: no failed connection or exchange ($ok succeeded)" 0 "$failed"
        [ "${ok:-0}" -ge 20 ] && pass "$what traffic ran throughout ($ok)" || fail "$what traffic ran throughout: only $ok"
        [ "$failed" = 0 ] || head -n 5 "$WORK/$what.err"
    done
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
