#!/usr/bin/env python3
"""The C ABI from Python ctypes, through libnodeport_c.so, against a loaded
pin directory: open, set/get/del, del_owner, list/free, sync, the error codes
and messages, bad input leaving the table unchanged; IPv6 backends through
set and the calls of both families (get2, list2/free2, sync2) beside the
IPv4 view of get, list and sync.

    ctypes_test.py LIBNODEPORT_C_SO PIN_DIR
"""
import ctypes
import ipaddress
import os
import struct
import subprocess
import sys

OK, EBADINPUT, ENOTLOADED, ENOTFOUND, EOWNED = 0, -1, -2, -3, -4


class Mapping(ctypes.Structure):
    # include/nodeport/nodeport.h, nodeport_mapping
    _fields_ = [("proto", ctypes.c_char * 4), ("port", ctypes.c_uint16), ("backend_port", ctypes.c_uint16),
                ("backend_ip", ctypes.c_char * 16), ("owner", ctypes.c_char * 256)]

    def key(self):
        return (self.proto.decode(), self.port, self.backend_ip.decode(), self.backend_port, self.owner.decode())


class Mapping2(ctypes.Structure):
    # include/nodeport/nodeport.h, nodeport_mapping2: room for IPv6
    _fields_ = [("proto", ctypes.c_char * 4), ("port", ctypes.c_uint16), ("backend_port", ctypes.c_uint16),
                ("backend_ip", ctypes.c_char * 48), ("owner", ctypes.c_char * 256)]

    key = Mapping.key


def bind(lib):
    handle = ctypes.c_void_p
    signatures = {
        "nodeport_open": [ctypes.c_char_p, ctypes.POINTER(handle)],
        "nodeport_set": [handle, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p],
        "nodeport_del": [handle, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p],
        "nodeport_del_owner": [handle, ctypes.c_char_p],
        "nodeport_get": [handle, ctypes.c_char_p, ctypes.c_uint16, ctypes.POINTER(Mapping)],
        "nodeport_list": [handle, ctypes.POINTER(ctypes.POINTER(Mapping)), ctypes.POINTER(ctypes.c_size_t)],
        "nodeport_sync": [handle, ctypes.POINTER(Mapping), ctypes.c_size_t],
        "nodeport_get2": [handle, ctypes.c_char_p, ctypes.c_uint16, ctypes.POINTER(Mapping2),
                          ctypes.POINTER(ctypes.c_size_t)],
        "nodeport_list2": [handle, ctypes.POINTER(ctypes.POINTER(Mapping2)), ctypes.POINTER(ctypes.c_size_t)],
        "nodeport_sync2": [handle, ctypes.POINTER(Mapping2), ctypes.c_size_t],
    }
    for name, args in signatures.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = ctypes.c_int
    lib.nodeport_close.argtypes = [handle]
    lib.nodeport_close.restype = None
    lib.nodeport_free.argtypes = [ctypes.POINTER(Mapping)]
    lib.nodeport_free.restype = None
    lib.nodeport_free2.argtypes = [ctypes.POINTER(Mapping2)]
    lib.nodeport_free2.restype = None
    lib.nodeport_strerror.argtypes = [ctypes.c_int]
    lib.nodeport_strerror.restype = ctypes.c_char_p
    lib.nodeport_last_error.argtypes = []
    lib.nodeport_last_error.restype = ctypes.c_char_p


failed = 0


def expect(what, want, got, lib=None):
    global failed
    if want == got:
        print(f"ok   {what}")
    else:
        failed += 1
        detail = f" ({lib.nodeport_last_error().decode()})" if lib else ""
        print(f"FAIL {what}: expected {want!r}, got {got!r}{detail}")


def listed(lib, np, struct=Mapping, suffix=""):
    """The table as nodeport_list (or, with Mapping2 and "2", nodeport_list2) gives it."""
    array = ctypes.POINTER(struct)()
    n = ctypes.c_size_t()
    assert getattr(lib, "nodeport_list" + suffix)(np, ctypes.byref(array), ctypes.byref(n)) == OK
    out = [array[i].key() for i in range(n.value)]
    getattr(lib, "nodeport_free" + suffix)(array)
    return out


def listed2(lib, np):
    return listed(lib, np, Mapping2, "2")


def got2(lib, np, proto, port):
    out = (Mapping2 * 2)()
    n = ctypes.c_size_t(99)
    rc = lib.nodeport_get2(np, proto, port, out, ctypes.byref(n))
    return rc, [out[i].key() for i in range(n.value)]


def ipv6_key(proto, port):
    """struct np_port_key of an IPv6 entry: proto, family 6, port in host order."""
    return struct.pack("=BBH", proto, 6, port)


def has_ipv6(pin, proto, port):
    r = subprocess.run(["bpftool", "map", "lookup", "pinned", os.path.join(pin, "ports"), "key", "hex",
                        *[f"{b:02x}" for b in ipv6_key(proto, port)]], capture_output=True)
    return r.returncode == 0


def main():
    lib = ctypes.CDLL(sys.argv[1])
    bind(lib)
    np = ctypes.c_void_p()
    expect("open an empty pin dir", ENOTLOADED,
           lib.nodeport_open(b"/sys/fs/bpf/nodeport-ctypes-never-loaded", ctypes.byref(np)), lib)
    expect("strerror", b"nodeport is not loaded", lib.nodeport_strerror(ENOTLOADED))
    expect("open", OK, lib.nodeport_open(sys.argv[2].encode(), ctypes.byref(np)), lib)

    expect("set", OK, lib.nodeport_set(np, b"tcp", 6667, b"10.8.0.2", 6667, b"sb-1"), lib)
    got = Mapping()
    expect("get", OK, lib.nodeport_get(np, b"tcp", 6667, ctypes.byref(got)), lib)
    expect("get's mapping", ("tcp", 6667, "10.8.0.2", 6667, "sb-1"), got.key())
    expect("redeploy", OK, lib.nodeport_set(np, b"tcp", 6667, b"10.8.0.3", 7000, b"sb-2"), lib)
    expect("del by the old owner", EOWNED, lib.nodeport_del(np, b"tcp", 6667, b"sb-1"), lib)
    expect("its message names the holder", True, b"sb-2" in lib.nodeport_last_error())
    for args in [(b"tcp", 0, b"10.8.0.2", 80, None), (b"tcp", 81, b"127.0.0.1", 80, None),
                 (b"tcp", 81, b"10.8.0.2", 0, None), (b"tcp", 81, b"10.8.0.2", 80, b"x" * 256),
                 (b"icmp", 81, b"10.8.0.2", 80, None), (b"tcp", 81, None, 80, None)]:
        expect(f"set{args[:4]} refused", EBADINPUT, lib.nodeport_set(np, *args), lib)
    expect("bad input changed nothing", [("tcp", 6667, "10.8.0.3", 7000, "sb-2")], listed(lib, np))

    # A port's IPv6 backend beside its IPv4 one: set takes either family; get,
    # list and sync are the IPv4 view and leave the IPv6 ones alone; del
    # removes both families. (has_ipv6 reads `ports` itself, with bpftool.)
    pin = sys.argv[2]
    expect("set an IPv6 backend", OK, lib.nodeport_set(np, b"tcp", 6667, b"fd00::2", 8080, None), lib)
    expect("set a port's only backend, IPv6", OK, lib.nodeport_set(np, b"tcp", 7777, b"fd00::2", 7777, None), lib)
    expect("it is in ports under the IPv6 key", (True, True), (has_ipv6(pin, 6, 6667), has_ipv6(pin, 6, 7777)))
    for ip in [b"::1", b"[fd00::2]", b"fe80::1", b"::ffff:10.8.0.2", b"fd00::2%eth0"]:
        expect(f"set with backend {ip} refused", EBADINPUT, lib.nodeport_set(np, b"tcp", 81, ip, 80, None), lib)
    expect("get2 of a port with both: IPv4 first", (OK, [("tcp", 6667, "10.8.0.3", 7000, "sb-2"),
                                                         ("tcp", 6667, "fd00::2", 8080, "")]),
           got2(lib, np, b"tcp", 6667))
    expect("get2 of a port with an IPv6 backend only", (OK, [("tcp", 7777, "fd00::2", 7777, "")]),
           got2(lib, np, b"tcp", 7777))
    expect("get2 of nothing", (ENOTFOUND, []), got2(lib, np, b"udp", 7777))
    expect("list2: both families, sorted by port then family",
           [("tcp", 6667, "10.8.0.3", 7000, "sb-2"), ("tcp", 6667, "fd00::2", 8080, ""),
            ("tcp", 7777, "fd00::2", 7777, "")], listed2(lib, np))
    expect("get gives the IPv4 mapping of a port with both", OK, lib.nodeport_get(np, b"tcp", 6667, ctypes.byref(got)), lib)
    expect("the IPv4 one", ("tcp", 6667, "10.8.0.3", 7000, "sb-2"), got.key())
    expect("get of a port with only an IPv6 backend: not found", ENOTFOUND,
           lib.nodeport_get(np, b"tcp", 7777, ctypes.byref(got)), lib)
    expect("list gives the IPv4 mappings only", [("tcp", 6667, "10.8.0.3", 7000, "sb-2")], listed(lib, np))

    short_v6 = (Mapping * 1)(Mapping(b"tcp", 80, 8080, b"fd00::4", b""))
    expect("sync (the IPv4 view) refuses an IPv6 backend", EBADINPUT, lib.nodeport_sync(np, short_v6, 1), lib)
    want = (Mapping * 2)(Mapping(b"udp", 53, 5353, b"10.8.0.4", b"sb-3"), Mapping(b"tcp", 80, 8080, b"10.8.0.4", b""))
    expect("sync", OK, lib.nodeport_sync(np, want, 2), lib)
    expect("the synced set", [("tcp", 80, "10.8.0.4", 8080, ""), ("udp", 53, "10.8.0.4", 5353, "sb-3")],
           listed(lib, np))
    expect("sync left the IPv6 mappings alone", (True, True), (has_ipv6(pin, 6, 6667), has_ipv6(pin, 6, 7777)))
    expect("del of a port with only an IPv6 backend", OK, lib.nodeport_del(np, b"tcp", 7777, None), lib)
    expect("removes it", False, has_ipv6(pin, 6, 7777))
    expect("set the IPv4 backend again", OK, lib.nodeport_set(np, b"tcp", 6667, b"10.8.0.3", 7000, None), lib)
    expect("del removes both families", (OK, False, []),
           (lib.nodeport_del(np, b"tcp", 6667, None), has_ipv6(pin, 6, 6667),
            [m for m in listed(lib, np) if m[1] == 6667]))
    # sync2: the whole table, both families; each port once per family.
    twice = (Mapping2 * 2)(Mapping2(b"tcp", 80, 80, b"fd00::5", b""), Mapping2(b"tcp", 80, 81, b"fd00::6", b""))
    expect("sync2 refuses a port twice in one family", EBADINPUT, lib.nodeport_sync2(np, twice, 2), lib)
    unterminated = (Mapping2 * 1)(Mapping2(b"tcp", 80, 80, b"f" * 48, b""))
    expect("sync2 refuses an address that fills its array", EBADINPUT, lib.nodeport_sync2(np, unterminated, 1), lib)
    expect("bad input to sync2 changed nothing", [("tcp", 80, "10.8.0.4", 8080, ""), ("udp", 53, "10.8.0.4", 5353, "sb-3")],
           listed2(lib, np))
    want2 = (Mapping2 * 3)(Mapping2(b"tcp", 80, 80, b"10.8.0.5", b"sb-4"), Mapping2(b"tcp", 80, 80, b"fd00::5", b"sb-4"),
                           Mapping2(b"udp", 53, 5353, b"fd00::4", b"sb-3"))
    expect("sync2 of both families", OK, lib.nodeport_sync2(np, want2, 3), lib)
    expect("the synced table", [("tcp", 80, "10.8.0.5", 80, "sb-4"), ("tcp", 80, "fd00::5", 80, "sb-4"),
                                ("udp", 53, "fd00::4", 5353, "sb-3")], listed2(lib, np))
    expect("del_owner removes both families", (OK, [("udp", 53, "fd00::4", 5353, "sb-3")]),
           (lib.nodeport_del_owner(np, b"sb-4"), listed2(lib, np)))
    expect("set udp/53's IPv4 backend again", OK, lib.nodeport_set(np, b"udp", 53, b"10.8.0.4", 5353, b"sb-3"), lib)
    expect("set tcp/80 again", OK, lib.nodeport_set(np, b"tcp", 80, b"10.8.0.4", 8080, None), lib)
    expect("del_owner", OK, lib.nodeport_del_owner(np, b"sb-3"), lib)
    expect("del, any owner", OK, lib.nodeport_del(np, b"tcp", 80, None), lib)
    expect("del of nothing", ENOTFOUND, lib.nodeport_del(np, b"tcp", 80, None), lib)
    expect("empty", [], listed(lib, np))
    lib.nodeport_close(np)
    print("ctypes: failed" if failed else "ctypes: all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
