#!/usr/bin/env bash
# Hostile input to the two JSON readers, as a user sees it (issue 22): `sync
# --file` and nodeport-cni's stdin answer at once with exit 2 / a CNI error,
# a short message that names the limit, and bounded memory (max RSS measured
# by the kernel, reported to the parent through getrusage). No root: the
# input is refused before any pin directory is opened, and the one named
# does not exist.
#   input_limits_test.sh CLI CNI_PLUGIN
set -u
NODEPORT=$1
CNI=$2
. "$(dirname "$0")/lib.sh"
WORK=$(mktemp -d /tmp/np-input.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PIN="$WORK/not-loaded"

# measured STDIN_COMMAND CMD...: runs CMD with the output of STDIN_COMMAND (a
# shell command) on its stdin, stdout to $WORK/out, stderr to $WORK/err;
# prints "EXIT MAX_RSS_KB" of CMD alone. A build without the limits would
# read /dev/zero forever: 2 GiB of address space and 120 s stop it (a
# failure either way, not a measurement).
measured() {
    python3 - "$@" <<'EOF'
import os, resource, signal, subprocess, sys
feed = subprocess.Popen(["sh", "-c", sys.argv[1]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
work = sys.argv[2]
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
with open(f"{work}/out", "wb") as out, open(f"{work}/err", "wb") as err:
    cmd = subprocess.Popen(sys.argv[3:], stdin=feed.stdout, stdout=out, stderr=err, preexec_fn=cap)
    feed.stdout.close()
    signal.signal(signal.SIGALRM, lambda *_: cmd.kill())
    signal.alarm(120)
    _, status, usage = os.wait4(cmd.pid, 0)
feed.kill()
feed.wait()
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
EOF
}

# text TEXT: a shell command that prints TEXT as it is (backslashes too).
text() {
    local file
    file=$(mktemp "$WORK/text.XXXXXX")
    printf '%s' "$1" >"$file"
    echo "cat $file"
}

# sync_case NAME STDIN_COMMAND MAX_RSS_KB REGEX: `sync --file -` on what the
# command prints: exit 2, one short stderr line matching REGEX, RSS bounded.
sync_case() {
    read -r rc rss < <(measured "$2" "$WORK" "$NODEPORT" sync --pin-dir "$PIN" --dry-run --file -)
    local err
    err=$(head -c 2000 "$WORK/err")
    expect_eq "sync, $1: exit 2" 2 "$rc"
    expect_match "sync, $1: the message names the limit" "$4" "$err"
    if [ "$(wc -c <"$WORK/err")" -le 400 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ]; then
        pass "sync, $1: one line of $(wc -c <"$WORK/err") bytes on stderr"
    else
        fail "sync, $1: stderr is $(wc -c <"$WORK/err") bytes, $(wc -l <"$WORK/err") lines"
    fi
    if [ "$rss" -le "$3" ]; then pass "sync, $1: max RSS ${rss} kB (bound $3)"; else fail "sync, $1: max RSS ${rss} kB > $3"; fi
}

python3 - "$WORK" <<'EOF'
import sys
work = sys.argv[1]
n = 50000
open(f"{work}/nested.json", "w").write('[{"proto":"tcp","backend":"10.8.0.2:80","port":' + "[" * n + "]" * n + "}]")
with open(f"{work}/million.json", "w") as f:
    f.write("[" + ",".join('{"proto":"tcp","port":%d,"backend":"10.8.0.2:80"}' % (i % 65535 + 1)
                           for i in range(10**6)) + "]")
EOF

# Finding 1: was SIGSEGV (exit 139), nothing on stderr.
sync_case "port nested 50,000 deep" "cat $WORK/nested.json" 65536 \
    'file: \[0\]\.port\[0\].*nested deeper than the limit of 16 arrays and objects'
# Finding 2: /dev/zero grew ~180 MB/s until killed.
sync_case "/dev/zero" "cat /dev/zero" 65536 'file: is not valid JSON: a NUL byte at offset 0'
sync_case "endless blanks" "tr '\\0' ' ' </dev/zero" 131072 'file: larger than the limit of 33554432 bytes'
# Finding 2: 10^6 entries took 721 MB before the duplicate port was found.
sync_case "10^6 entries" "cat $WORK/million.json" 262144 'file: \[163840\]: more than the limit of 655361 values'
# Finding 2: a 50 MB "port" string came back whole, in --json too.
sync_case "a 50 MB port string" \
    "printf '[{\"proto\":\"tcp\",\"backend\":\"10.8.0.2:80\",\"port\":\"'; head -c 50000000 /dev/zero | tr '\\0' x; printf '\"}]'" \
    65536 'file: the string at offset 47 is longer than the limit of 1024 bytes'
sync_case "a key twice" "$(text '[{"proto":"tcp","port":1,"port":2,"backend":"10.8.0.2:80"}]')" 65536 \
    "file: \\[0\\]: 'port' is a key twice"
# Finding 3: passed --dry-run as 10.8.0.9:1; the owner's message ended at the NUL.
sync_case "a NUL in the backend" "$(text '[{"proto":"tcp","port":1,"backend":"10.8.0.9\u0000; rm -rf /:1"}]')" 65536 \
    "entry 0: backend address: '10\\.8\\.0\\.9\\\\x00; rm -rf /' is not an IPv4 address"
NUL_OWNER=$(text '[{"proto":"tcp","port":1,"backend":"10.8.0.9:1","owner":"a\u0000b"}]')
sync_case "a NUL in the owner" "$NUL_OWNER" 65536 \
    "entry 0: owner: 'a\\\\x00b' has a blank"
read -r rc _ < <(measured "$NUL_OWNER" "$WORK" "$NODEPORT" sync --json --pin-dir "$PIN" --dry-run --file -)
expect_eq "sync --json, a NUL in the owner: exit 2 and the message whole" \
    "2 entry 0: owner: 'a\\x00b' has a blank or non-ASCII character" "$rc $(jq -r .error "$WORK/err")"

# nodeport-cni: the reply is a CNI error on stdout, never an empty one.
export CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_IFNAME=eth0 CNI_NETNS=/run/netns/nonexistent
cni_config() {  # MAPPINGS PREV_RESULT
    printf '{"cniVersion":"1.0.0","name":"n","type":"nodeport-cni","pinDir":"%s","runtimeConfig":{"portMappings":%s},"prevResult":%s}' \
        "$PIN" "$1" "$2"
}
PREV='{"cniVersion":"1.0.0","ips":[{"address":"10.8.0.2/16"}]}'
python3 - "$WORK" "$PIN" <<'EOF'
import sys
work, pin = sys.argv[1:3]
n = 500000
def config(mappings, prev):
    return ('{"cniVersion":"1.0.0","name":"n","type":"nodeport-cni","pinDir":"%s",'
            '"runtimeConfig":{"portMappings":%s},"prevResult":%s}' % (pin, mappings, prev))
open(f"{work}/cni_host_port.json", "w").write(
    config('[{"hostPort":' + "[" * n + "]" * n + ',"containerPort":80}]', '{"ips":[{"address":"10.8.0.2/16"}]}'))
open(f"{work}/cni_interface.json", "w").write(
    config('[{"hostPort":8080,"containerPort":80}]',
           '{"ips":[{"address":"10.8.0.2/16","interface":' + '{"a":' * n + "1" + "}" * n + "}]}"))
EOF

# cni_case NAME STDIN_COMMAND MAX_RSS_KB CODE REGEX: exit 1, a CNI error with
# CODE whose msg matches REGEX, under 1 kB, RSS bounded.
cni_case() {
    read -r rc rss < <(measured "$2" "$WORK" "$CNI")
    expect_eq "cni, $1: exit 1 and code $4" "1 $4" "$rc $(jq -r .code "$WORK/out" 2>/dev/null)"
    expect_match "cni, $1: msg" "$5" "$(jq -r .msg "$WORK/out" 2>/dev/null)"
    if [ "$(wc -c <"$WORK/out")" -le 1000 ]; then pass "cni, $1: reply of $(wc -c <"$WORK/out") bytes"
    else fail "cni, $1: reply of $(wc -c <"$WORK/out") bytes"; fi
    if [ "$rss" -le "$3" ]; then pass "cni, $1: max RSS ${rss} kB (bound $3)"; else fail "cni, $1: max RSS ${rss} kB > $3"; fi
}

# Finding 1: SIGSEGV and an empty stdout.
cni_case "hostPort nested 500,000 deep" "cat $WORK/cni_host_port.json" 65536 7 \
    '^the network config on stdin: runtimeConfig\.portMappings\[0\]\.hostPort\[0\].*nested deeper than the limit of 64'
cni_case "prevResult.ips[0].interface nested 500,000 deep" "cat $WORK/cni_interface.json" 65536 7 \
    '^the network config on stdin: prevResult\.ips\[0\]\.interface\.a\.a.*nested deeper than the limit of 64'
# Finding 2: 1.2 GB and 20 s for 300 MB on stdin.
cni_case "300 MB on stdin" \
    "printf '{\"cniVersion\":\"1.0.0\",\"x\":\"'; head -c 300000000 /dev/zero | tr '\\0' x; printf '\"}'" 65536 7 \
    'the string at offset 26 is longer than the limit of 65536 bytes'
cni_case "endless blanks" "tr '\\0' ' ' </dev/zero" 131072 7 'larger than the limit of 16777216 bytes'
cni_case "/dev/zero" "cat /dev/zero" 65536 6 'not JSON: a NUL byte at offset 0'
cni_case "a key twice" "$(text "$(cni_config '[{"hostPort":8080,"hostPort":9090,"containerPort":80}]' "$PREV")")" 65536 7 \
    "runtimeConfig\\.portMappings\\[0\\]: 'hostPort' is a key twice"
# Finding 3: each was taken as 10.8.0.2.
for address in '10.8.0.2\u0000/16' 10.8.0.2/33 10.8.0.2/garbage; do
    cni_case "address $address" \
        "$(text "$(cni_config '[{"hostPort":8080,"containerPort":80}]' "{\"ips\":[{\"address\":\"$address\"}]}")")" \
        65536 7 '^prevResult\.ips\[0\]\.address'
done
# Finding 7: was "cniVersion 'a\\x1b' is not supported".
cni_case "the message escaped once" "$(text "{\"cniVersion\":\"a\\u001b\",\"pinDir\":\"$PIN\"}")" 65536 1 \
    "^cniVersion 'a\\\\x1b' is not supported$"
finish
