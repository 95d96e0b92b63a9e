package nodeport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The pin directory, trusted as loader/base/pin_dir.cpp trusts it: opened without
// following a symbolic link, a directory on bpffs, not a bpffs mount's root,
// owned by root or this user and writable by no one else, with every
// directory above it a trusted owner's and writable by others only when
// sticky. Only a trusted owner can then change anything inside, so a pin
// checked not to be a symbolic link stays so until it is opened.

const bpfFSMagic = 0xcafe4a11

func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

func notSafe(op, dir, reason string) *Error {
	return newError(ErrInternal, op, "pin directory %s is not safe: %s", dir, reason)
}

func notLoaded(op, dir string) *Error {
	return newError(ErrNotLoaded, op, "nodeport is not loaded at %s (run: nodeport load --pin-dir %s)", dir, dir)
}

// sysError turns a failed system call into the kind callers act on.
func sysError(op string, err error) *Error {
	kind := ErrInternal
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		kind = ErrPermission
	}
	return newError(kind, op, "%v", err)
}

func checkAncestors(op, dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		var link, st unix.Stat_t
		if err := unix.Lstat(p, &link); err != nil {
			return sysError(op, fmt.Errorf("stat %s: %w", p, err))
		}
		if err := unix.Stat(p, &st); err != nil {
			return sysError(op, fmt.Errorf("stat %s: %w", p, err))
		}
		if link.Mode&unix.S_IFMT == unix.S_IFLNK && !trustedOwner(link.Uid) {
			return notSafe(op, dir, fmt.Sprintf("%s is a symbolic link owned by uid %d", p, link.Uid))
		}
		if !trustedOwner(st.Uid) {
			return notSafe(op, dir, fmt.Sprintf("%s is owned by uid %d", p, st.Uid))
		}
		if st.Mode&(unix.S_IWGRP|unix.S_IWOTH) != 0 && st.Mode&unix.S_ISVTX == 0 {
			return notSafe(op, dir, fmt.Sprintf("%s is writable by others (mode %04o) and not sticky", p, st.Mode&07777))
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// openPinDir opens and checks the pin directory; ErrNotLoaded when missing.
func openPinDir(op, dir string) (int, error) {
	if !filepath.IsAbs(dir) || strings.IndexByte(dir, 0) >= 0 {
		return -1, inputError{"pin directory", "must be an absolute path without NUL"}.to(op)
	}
	dir = filepath.Clean(dir)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if unix.Lstat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, notSafe(op, dir, "it is a symbolic link (pass the directory it points to, if you trust it)")
		}
		if errors.Is(err, unix.ENOTDIR) {
			return -1, notSafe(op, dir, "it is not a directory")
		}
		if errors.Is(err, unix.ENOENT) {
			return -1, notLoaded(op, dir)
		}
		return -1, sysError(op, fmt.Errorf("open %s: %w", dir, err))
	}
	if err := checkOpened(op, fd, dir); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func checkOpened(op string, fd int, dir string) error {
	var st, parent unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstat(fd, &st); err != nil {
		return sysError(op, err)
	}
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return sysError(op, err)
	}
	if uint32(fs.Type) != bpfFSMagic {
		return notSafe(op, dir, "it is not on a bpf filesystem (mount -t bpf bpf DIR)")
	}
	if err := unix.Fstatat(fd, "..", &parent, 0); err != nil {
		return sysError(op, err)
	}
	if parent.Dev != st.Dev || parent.Ino == st.Ino {
		return notSafe(op, dir, "it is the root of a bpf filesystem mount: use a directory inside it, e.g. "+
			filepath.Join(dir, "nodeport"))
	}
	if !trustedOwner(st.Uid) {
		return notSafe(op, dir, fmt.Sprintf("it is owned by uid %d, not root: remove it or use another pin directory", st.Uid))
	}
	if st.Mode&(unix.S_IWGRP|unix.S_IWOTH) != 0 {
		return notSafe(op, dir, fmt.Sprintf("it is writable by group or others (mode %04o): chmod 0700 it", st.Mode&07777))
	}
	return checkAncestors(op, dir)
}

// objGet opens the pin `name` inside the checked directory dirFD, never
// through a symbolic link: BPF_OBJ_GET follows one in the last component, so
// it is refused first (ELOOP), and the path goes through the directory's fd.
func objGet(dirFD int, name string) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirFD, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return -1, unix.ELOOP
	default:
		return -1, unix.EINVAL
	}
	path, err := unix.BytePtrFromString("/proc/self/fd/" + strconv.Itoa(dirFD) + "/" + name)
	if err != nil {
		return -1, err
	}
	// union bpf_attr for BPF_OBJ_GET: pathname, bpf_fd, file_flags.
	attr := struct {
		pathname  uint64
		bpfFD     uint32
		fileFlags uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(path)))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// openMap opens the pinned map of `shape` and checks its type and sizes;
// ErrNotLoaded when it is not there.
func openMap(op string, dirFD int, dir string, shape mapShape) (*ebpf.Map, error) {
	fd, err := objGet(dirFD, shape.name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, notLoaded(op, dir)
		}
		return nil, sysError(op, fmt.Errorf("open pinned map %s: %w", filepath.Join(dir, shape.name), err))
	}
	m, err := ebpf.NewMapFromFD(fd)
	path := filepath.Join(dir, shape.name)
	if err != nil {
		return nil, newError(ErrInternal, op, "not a nodeport map: %s (not a BPF map): remove it or use another pin directory", path)
	}
	if m.Type() != shape.typ || m.KeySize() != shape.keySize || m.ValueSize() != shape.valueSize {
		err := newError(ErrInternal, op, "not a nodeport map: %s (a %v with %d-byte keys and %d-byte values; nodeport's "+
			"%s is a %v with %d and %d): remove it or use another pin directory",
			path, m.Type(), m.KeySize(), m.ValueSize(), shape.name, shape.typ, shape.keySize, shape.valueSize)
		m.Close()
		return nil, err
	}
	return m, nil
}

// nodeConfig is struct np_config, read from the pinned node_config.
type nodeConfig struct {
	abiVersion  uint32
	netnsCookie uint64
}

func readNodeConfig(m *ebpf.Map) (nodeConfig, error) {
	v, err := m.LookupBytes(uint32(0))
	if err != nil || len(v) < 16 {
		return nodeConfig{}, fmt.Errorf("read node_config: %v", err)
	}
	return nodeConfig{binary.NativeEndian.Uint32(v[0:]), binary.NativeEndian.Uint64(v[8:])}, nil
}

// checkABI refuses pins of another map ABI; the nodeport that loaded them,
// or this version's `nodeport load`, deals with them. ABI 1 and 2 are laid
// out differently; ABI 3 has ABI 4's layout, but its pins were loaded by a
// nodeport that knows no IPv6 entries, and `load` adopts them by recording
// v4 (pin_dir.cpp check_abi refuses the three alike).
func checkABI(op, dir string, cfg nodeConfig) error {
	switch cfg.abiVersion {
	case 0, abiVersion:
		return nil
	case 1, 2, 3:
		return newError(ErrInternal, op, "the maps pinned at %s use map ABI v%d, this nodeport uses v%d: run this "+
			"nodeport's load to migrate them (mappings and connections are kept)", dir, cfg.abiVersion, abiVersion)
	}
	return newError(ErrInternal, op, "not a nodeport map: %s (the maps pinned at %s use map ABI v%d, this nodeport "+
		"uses v%d): use the nodeport that loaded them, or unload with it first",
		filepath.Join(dir, "node_config"), dir, cfg.abiVersion, abiVersion)
}
