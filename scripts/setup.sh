#!/usr/bin/env bash
# Installs everything nodeport needs to build, test, demo and benchmark on Debian 12.
# libbpf >= 1.4, bpftool >= 7.5 and Go 1.22 (the Go package's go_test) come
# from bookworm-backports, added with the mirror the machine's apt sources
# already use (never a hard-coded host).
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "setup.sh: run as root" >&2; exit 1; }

# Prints the URI of the Debian main archive from the existing apt sources,
# in either the deb822 (.sources) or the one-line (.list) format.
debian_mirror_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            /^[[:space:]]*$/ { if (uri != "" && suites ~ /(^|[[:space:]])bookworm([[:space:]]|$)/) { print uri; exit }
                               uri = ""; suites = ""; next }
            tolower($1) == "uris:"   { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { if (uri != "" && suites ~ /(^|[[:space:]])bookworm([[:space:]]|$)/) print uri }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                           if ($(i + 1) == "bookworm") print $i }' "$f"
    done
}

PACKAGES=(
    build-essential cmake clang clang-16 llvm libelf-dev zlib1g-dev libzstd-dev linux-libc-dev pkg-config
    libboost-program-options-dev libgtest-dev nlohmann-json3-dev libfmt-dev libnl-route-3-dev
    iproute2 netcat-openbsd curl python3 openjdk-17-jdk-headless iptables nftables iperf3 jq procps util-linux systemd
    dpkg-dev file man-db containernetworking-plugins python3-prometheus-client
    golang-github-cilium-ebpf-dev golang-golang-x-sys-dev
    debhelper lintian prometheus
    strace
)

# cni_podman_test: podman driving the CNI chain. Without recommends (buildah,
# fuse-overlayfs, slirp4netns, ... are not needed for a rootful --rootfs
# container); runc because crun refuses a hybrid cgroup layout.
PODMAN_PACKAGES=(podman runc)

# From bookworm-backports: Go at /usr/lib/go-1.22/bin/go (not on PATH).
BACKPORT_PACKAGES=(libbpf-dev bpftool golang-1.22-go)

# True when libbpf-dev >= 1.4, bpftool >= 7.5, Go 1.22 and every other package are installed.
have_everything() {
    local v
    v=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null) && dpkg --compare-versions "$v" ge 1:1.4 || return 1
    v=$(dpkg-query -W -f='${Version}' bpftool 2>/dev/null) && dpkg --compare-versions "$v" ge 7.5 || return 1
    dpkg-query -W -f='${Status}' golang-1.22-go 2>/dev/null | grep -q 'install ok installed' || return 1
    local all=("${PACKAGES[@]}" "${PODMAN_PACKAGES[@]}")
    dpkg-query -W -f='${Status}\n' "${all[@]}" 2>/dev/null | grep -vq 'install ok installed' && return 1
    [ "$(dpkg-query -W -f='${Status}\n' "${all[@]}" 2>/dev/null | wc -l)" -eq "${#all[@]}" ]
}

if ! have_everything; then
    BACKPORTS=/etc/apt/sources.list.d/nodeport-bookworm-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uri=$(debian_mirror_uri | head -n 1)
        [ -n "$uri" ] || { echo "setup.sh: no bookworm entry in the apt sources to take the mirror from" >&2; exit 1; }
        cat > "$BACKPORTS" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        echo "setup.sh: added bookworm-backports from $uri"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports "${BACKPORT_PACKAGES[@]}" >/dev/null
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
    apt-get install -y -qq --no-install-recommends "${PODMAN_PACKAGES[@]}" >/dev/null
fi

# bpffs: the pin directory lives there. Mount it if the machine booted without it.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
    mount -t bpf bpf /sys/fs/bpf
fi
echo "setup.sh: libbpf $(pkg-config --modversion libbpf), $(bpftool version | head -n 1), $(/usr/lib/go-1.22/bin/go version)"
