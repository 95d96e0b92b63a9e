#!/usr/bin/env bash
# Issue 9, "symlinks in a pin dir owned by someone else": the bpffs root is
# world-writable (1777), so any user can make /sys/fs/bpf/x with `links` a
# symbolic link to a directory of theirs. Root's commands must refuse such a
# pin directory (exit 1, "is not safe") and never follow a symbolic link
# inside one: the canary file the links point at must survive every command.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin trust
topo_cgroup
EVIL=/sys/fs/bpf/np-evil-$$
CANARY=/tmp/np-canary-$$
OTHER=/sys/fs/bpf/np-other-$$
WIDE=/sys/fs/bpf/np-wide-$$
LINKED=/sys/fs/bpf/np-linked-$$
STRANGER=/sys/fs/bpf/np-stranger-$$
EMPTY=/sys/fs/bpf/np-empty-$$
MNT=/sys/fs/bpf/np-mnt-$$
on_cleanup() {
    for dir in "$EMPTY" "$PIN"; do "$NODEPORT" unload --pin-dir "$dir" >/dev/null 2>&1; done
    rm -rf "$EVIL" "$OTHER" "$WIDE" "$LINKED" "$STRANGER" "$EMPTY" "$CANARY"
    rmdir "$MNT" 2>/dev/null
}

mkdir -p "$CANARY"
echo alive >"$CANARY/canary"
canary_ok() { expect_eq "$1: the canary survives" alive "$(cat "$CANARY/canary" 2>/dev/null)"; }

# refused DESCRIPTION REASON-REGEX DIR COMMAND ARGS...: exits 1, "not safe".
refused() {
    local what=$1 reason=$2 dir=$3 out rc
    shift 3
    out=$(timeout 20 "$NODEPORT" "$1" --pin-dir "$dir" "${@:2}" 2>&1 <<<'[]'); rc=$?
    expect_eq "$what: $1 exits 1" 1 "$rc"
    expect_match "$what: $1 says why" "pin directory $dir is not safe: $reason" "$out"
}

every_command_refuses() {
    local what=$1 reason=$2 dir=$3
    refused "$what" "$reason" "$dir" unload
    refused "$what" "$reason" "$dir" load --local-only --cgroup "$TOPO_CGROUP"
    refused "$what" "$reason" "$dir" list
    refused "$what" "$reason" "$dir" set tcp/1 10.8.0.2:80
    refused "$what" "$reason" "$dir" del tcp/1
    refused "$what" "$reason" "$dir" sync --file -
    refused "$what" "$reason" "$dir" status
    refused "$what" "$reason" "$dir" flows
}

# A real nodeport, loaded into the test cgroup, for the symbolic links below.
out=$(np load --local-only --cgroup "$TOPO_CGROUP" 2>&1)
expect_eq "load into a new pin directory" 0 "$?"
expect_eq "the new pin directory has mode 0700" 700 "$(stat -c %a "$PIN")"
np set tcp/7000 10.8.0.2:80 >/dev/null

# 1. A user's pin directory whose node_config is a symbolic link to the real
#    one (so that it passes for nodeport's) and whose links point at the
#    canary: an unload that followed them deleted the canary.
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    sh -c "mkdir '$EVIL' && ln -s '$CANARY' '$EVIL/links' && ln -s '$PIN/node_config' '$EVIL/node_config' &&
           ln -s '$CANARY' '$EVIL/progs'"
before=$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2)
expect_eq "nobody made the evil pin directory" "$(id -u nobody)" "$(stat -c %u "$EVIL")"
every_command_refuses "a directory owned by nobody" "it is owned by uid $(id -u nobody), not root" "$EVIL"
canary_ok "owned by nobody"
expect_eq "only the real nodeport is attached to the test cgroup" "$(sort <<<"$before")" \
    "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2 | sort)"

# 2. Root's, but writable by everyone.
mkdir -m 0777 "$WIDE"
chmod 0777 "$WIDE"
every_command_refuses "mode 0777" "it is writable by group or others \(mode 0777\)" "$WIDE"

# 3. The bpffs mount root (1777: anyone could add pins), read-only commands
#    only, so that a regression cannot touch /sys/fs/bpf; and the root of a
#    private bpffs mount, in a mount namespace of its own.
refused "the bpffs root" "it is the root of a bpf filesystem mount" /sys/fs/bpf list
refused "the bpffs root" "it is the root of a bpf filesystem mount" /sys/fs/bpf status
mkdir -m 0700 "$MNT"
out=$(unshare -m sh -c 'mount -t bpf bpf "$1" && chmod 0700 "$1" && "$2" list --pin-dir "$1"' sh "$MNT" "$NODEPORT" 2>&1)
expect_eq "a bpffs mount root: list exits 1" 1 "$?"
expect_match "a bpffs mount root: list says why" "is not safe: it is the root of a bpf filesystem mount" "$out"

# 4. The real pin directory of the loaded nodeport...
# ... reached through a symbolic link to it.
ln -s "$PIN" "$LINKED"
every_command_refuses "a symbolic link to a pin directory" "it is a symbolic link" "$LINKED"
expect_match "the real pin directory keeps its mapping" "tcp/7000" "$(np list 2>&1)"

# ... with `ports` replaced by a symbolic link to someone else's map of the
# same shape: set and list refuse it, and that map stays empty.
mkdir -m 0700 "$OTHER"
read -r type key value < <(bpftool -j map show pinned "$PIN/ports" | jq -r '"\(.type) \(.bytes_key) \(.bytes_value)"')
bpftool map create "$OTHER/ports" type "$type" key "$key" value "$value" entries 16 name other
mv "$PIN/ports" "$PIN/ports_real"
ln -s "$OTHER/ports" "$PIN/ports"
for cmd in "list" "set tcp/7001 10.8.0.2:80" "get tcp/7000"; do
    out=$(np $cmd 2>&1); rc=$?
    expect_eq "ports a symbolic link: $cmd exits 1" 1 "$rc"
    expect_match "ports a symbolic link: $cmd names it" "$PIN/ports: Too many levels of symbolic links" "$out"
done
out=$(np load --local-only --cgroup "$TOPO_CGROUP" 2>&1)
expect_eq "ports a symbolic link: load exits 1" 1 "$?"
expect_eq "the other map stays empty" 0 "$(bpftool -j map dump pinned "$OTHER/ports" | jq length)"
rm "$PIN/ports"
mv "$PIN/ports_real" "$PIN/ports"

# ... with a symbolic link among its links: status refuses it, unload
# removes the link itself and nothing it points to.
ln -s "$CANARY" "$PIN/links/np_evil"
ln -s "$CANARY/canary" "$PIN/links/np_evil_file"
out=$(np status 2>&1)
expect_eq "a link pin that is a symbolic link: status exits 1" 1 "$?"
expect_match "status names it" "$PIN/links/np_evil.*symbolic links" "$out"
out=$(np unload 2>&1)
expect_eq "unload with symbolic links among the links exits 0" 0 "$?"
expect_eq "unload removed the pin directory" no "$([ -e "$PIN" ] && echo yes || echo no)"
canary_ok "unload with symbolic links among the links"
expect_eq "nothing is attached to the test cgroup after unload" "" "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2)"

# 5. Adopting: a root-owned directory holding something nodeport did not pin
#    is refused and keeps it; an empty one (a load killed after mkdir) is
#    adopted.
mkdir -m 0700 "$STRANGER"
bpftool map create "$STRANGER/something" type array key 4 value 4 entries 1 name something
out=$("$NODEPORT" load --pin-dir "$STRANGER" --local-only --cgroup "$TOPO_CGROUP" 2>&1)
expect_eq "load into a directory nodeport did not create exits 1" 1 "$?"
expect_match "load says it refuses to adopt it" "is not safe: not created by nodeport .*refusing to adopt" "$out"
expect_eq "that directory is unchanged" something "$(ls "$STRANGER")"
mkdir -m 0700 "$EMPTY"
out=$("$NODEPORT" load --pin-dir "$EMPTY" --local-only --cgroup "$TOPO_CGROUP" 2>&1)
expect_eq "load adopts an empty directory" 0 "$?"
out=$("$NODEPORT" unload --pin-dir "$EMPTY" 2>&1)
expect_eq "and unloads it" 0 "$?"

# 6. Checked once, then used: each command opens the pin directory by its
#    path once, checks it, and reaches every pin relative to that open
#    directory (PinDir), so nothing checked is looked up by path again
#    (issue 19: PortTable::open walked it about 9 times, status 63).
# walks ARGS...: the opens of $PIN by path (O_NOFOLLOW: the checked open) that
# `nodeport ARGS --pin-dir $PIN` makes.
walks() {
    strace -f -e trace=open,openat -o /dev/stdout "$NODEPORT" "$@" --pin-dir "$PIN" 2>/dev/null |
        grep -c "\"$PIN\", [^)]*O_NOFOLLOW"
}
if ! command -v strace >/dev/null; then
    fail "strace is installed (scripts/setup.sh installs it)"
else
    expect_eq "load opens the pin directory once" 1 "$(walks load --local-only --cgroup "$TOPO_CGROUP")"
    np set tcp/7000 10.8.0.2:80 >/dev/null
    for cmd in "set tcp/7001 10.8.0.3:80" "get tcp/7000" "list" "list --json --unmapped" "flows" "stats" \
        "stats --prometheus" "status" "explain tcp/7000 --to 127.0.0.1" "del tcp/7001" "refresh" "unload"; do
        # shellcheck disable=SC2086 # the words of the command
        expect_eq "$cmd opens the pin directory once" 1 "$(walks $cmd)"
    done
fi

canary_ok "at the end"
finish
