#!/usr/bin/env bash
# The documentation against the code it restates (issue 19), no root:
#   - docs/debugging.md's table of reasons: every reason of loader/base/reasons.cpp
#     (the one table `stats` prints), with its path, in id order, and no other;
#   - the default flow timeouts of include/nodeport/abi.h (NP_DEFAULT_*_S) in
#     `nodeport load --help`, the man page, the example config and docs/cli.md;
#   - the port counters of abi.h (NP_PORT_COUNTERS) in docs/map-abi.md and
#     docs/running.md;
#   - docs/map-abi.md's table of pinned maps: every map the BPF programs pin,
#     with the type, entries and preallocation of its declaration, and every
#     struct it spells out with abi.h's fields in order (docs_abi_check.py);
#   - every relative link in README.md, docs/ and tests/README.md leads to a
#     file (and heading, with #anchor) that exists, and README.md links every
#     page of docs/.
#   docs_test.sh CLI
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$TESTS_DIR/.." && pwd)

# --- Reasons ---
# reasons.cpp's entries start `{NP_REASON_X, "name", path,` on one line; the
# count against abi.h's NP_REASON_COUNT catches an entry this read missed.
code_reasons=$(grep -oE '\{NP_REASON_[A-Z0-9_]+, "[a-z0-9_]+", (external|reply|local)' "$ROOT/loader/base/reasons.cpp" |
    sed -E 's/.*"([a-z0-9_]+)", ([a-z]+)/\1 \2/')
count=$(sed -nE 's/^\s*NP_REASON_COUNT = ([0-9]+).*/\1/p' "$ROOT/include/nodeport/abi.h")
expect_eq "reasons.cpp read whole: NP_REASON_COUNT entries" "$count" "$(grep -c . <<<"$code_reasons")"
doc_reasons=$(sed -nE 's/^\| `([a-z0-9_]+)` \| (external|reply|local) \|.*/\1 \2/p' "$ROOT/docs/debugging.md")
what="docs/debugging.md: every reason with its path, in id order, none other"
if [ "$code_reasons" = "$doc_reasons" ]; then
    pass "$what"
else
    fail "$what (< reasons.cpp, > docs):$(diff <(echo "$code_reasons") <(echo "$doc_reasons") | sed -n 's/^[<>]/ &/p' | tr '\n' ';')"
fi

# --- Default timeouts ---
# The option, and the abi.h define holding its default.
defaults="tcp-timeout TCP_ESTABLISHED
tcp-syn-timeout TCP_SYN
tcp-closing-timeout TCP_CLOSING
udp-timeout UDP_IDLE"
help=$("$NODEPORT" load --help | tr -s ' \n' '  ')
cli_md=$(tr -s ' \n' '  ' <"$ROOT/docs/cli.md")
while read -r opt define; do
    want=$(sed -nE "s/^#define NP_DEFAULT_${define}_S +([0-9]+).*/\1/p" "$ROOT/include/nodeport/abi.h")
    [ -n "$want" ] || fail "abi.h: no NP_DEFAULT_${define}_S"
    # `--OPT arg <description> (N)`, as Boost prints it (wrapped lines joined).
    expect_eq "load --help: --$opt ($want)" "$want" \
        "$(grep -oE -- "--$opt arg [^(]*\([0-9]+\)" <<<"$help" | sed -E 's/.*\(([0-9]+)\)$/\1/')"
    # .BI \-\-OPT " S", then its description ending in (N).
    man_opt=${opt//-/'\\-'}
    expect_eq "nodeport.8: --$opt ($want)" "$want" \
        "$(sed -nE "/^\.BI \\\\-\\\\-$man_opt \" S\"$/{n;s/.*\(([0-9]+)\)\.?$/\1/p}" "$ROOT/packaging/nodeport.8")"
    expect_eq "nodeport.conf.example: #$opt = $want" "$want" \
        "$(sed -nE "s/^#$opt = ([0-9]+)$/\1/p" "$ROOT/packaging/nodeport.conf.example")"
    expect_eq "docs/cli.md: \`--$opt\` ... ($want)" "$want" \
        "$(grep -oE -- "\`--$opt\` [^(\`]*\([0-9]+\)" <<<"$cli_md" | head -1 | sed -E 's/.*\(([0-9]+)\)$/\1/')"
done <<<"$defaults"

# --- Port counters ---
# abi.h's NP_PORT_COUNTERS list, in order: docs/map-abi.md's port_counters
# row, and docs/running.md's table of counters (a row may name two).
code_counters=$(sed -n '/^#define NP_PORT_COUNTERS(X)/,/^$/p' "$ROOT/include/nodeport/abi.h" |
    grep -oE '^\s*X\([a-z_]+\)' | sed -E 's/.*\(([a-z_]+)\)/\1/')
expect_eq "abi.h: NP_PORT_COUNTERS read (7 counters)" 7 "$(grep -c . <<<"$code_counters")"
expect_eq "docs/map-abi.md: np_port_counters' fields in order" "$(echo $code_counters reserved)" \
    "$(sed -nE 's/.*`np_port_counters \{u64 ([a-z_, ]+)\}`.*/\1/p' "$ROOT/docs/map-abi.md" | tr -d ,)"
expect_eq "docs/running.md: the table of counters, in order" "$(echo $code_counters)" \
    "$(sed -nE '/^\| counter \| counted by \| what \|$/,/^$/p' "$ROOT/docs/running.md" |
        sed -nE 's/^\| (`[a-z_]+`(, `[a-z_]+`)?) \|.*/\1/p' | tr -d '`,' | tr '\n' ' ' | sed 's/ $//')"

# --- Links ---
# anchors FILE: the anchor of each heading outside code blocks, as GitHub
# makes it: lower case, punctuation gone, blanks to hyphens.
anchors() {
    awk '/^```/ {code = !code; next} !code && /^#+ / {sub(/^#+ /, ""); print}' "$1" |
        tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}
broken=""
links=0
for page in "$ROOT/README.md" "$ROOT"/docs/*.md "$ROOT/tests/README.md"; do
    # Links outside code blocks and code spans: `](target)`.
    targets=$(awk '/^```/ {code = !code; next} !code {gsub(/`[^`]*`/, ""); print}' "$page" |
        grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\((.*)\)$/\1/' | grep -vE '^[a-z]+:' || true)
    for t in $targets; do
        links=$((links + 1))
        file=${t%%#*}
        anchor=""
        [[ "$t" == *#* ]] && anchor=${t#*#}
        path=$page
        [ -n "$file" ] && path=$(dirname "$page")/$file
        if [ ! -e "$path" ]; then
            broken="$broken ${page#"$ROOT"/}:$t"
        elif [ -n "$anchor" ] && ! anchors "$path" | grep -qxF "$anchor"; then
            broken="$broken ${page#"$ROOT"/}:$t(no such heading)"
        fi
    done
done
expect_eq "every relative link resolves ($links links)" "" "$broken"
unlinked=""
for page in "$ROOT"/docs/*.md; do
    grep -qF "](docs/$(basename "$page"))" "$ROOT/README.md" || unlinked="$unlinked docs/$(basename "$page")"
done
expect_eq "README.md links every page of docs/" "" "$unlinked"

# --- The map table ---
ended=no
while IFS= read -r line; do
    case $line in
        end) ended=yes ;;
        "ok   "*) pass "docs/map-abi.md: ${line#ok   }" ;;
        *) fail "docs/map-abi.md: ${line#not ok }" ;;
    esac
done < <(python3 "$TESTS_DIR/docs_abi_check.py" "$ROOT" 2>&1)
expect_eq "docs_abi_check.py checked the whole table" yes "$ended"

finish
