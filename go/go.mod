// The Go module of nodeport, tagged as a sub-directory module: a release
// vX.Y.Z of this directory is the git tag go/vX.Y.Z (docs/api.md, "C and Go").
module github.com/nodeport/nodeport/go

go 1.22

require (
	github.com/cilium/ebpf v0.9.1
	golang.org/x/sys v0.3.0
)

// Debian's golang-github-cilium-ebpf-dev and golang-golang-x-sys-dev: the
// builds in this repository use their installed source (no module proxy
// here). A replace applies to this module's own builds only; a module that
// requires this one gets the two versions above through its own proxy, or
// repeats these lines.
replace (
	github.com/cilium/ebpf => /usr/share/gocode/src/github.com/cilium/ebpf
	golang.org/x/sys => /usr/share/gocode/src/golang.org/x/sys
)
