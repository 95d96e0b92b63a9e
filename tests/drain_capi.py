#!/usr/bin/env python3
"""drain_test.sh's redeploy through the C ABI: libnodeport_c.so from Python
ctypes deletes the old owner's ports (nodeport_del_owner), then waits for the
old backend (nodeport_drain).
    drain_capi.py LIBNODEPORT_C_SO PIN_DIR OWNER BACKEND_IP BACKEND_PORT TIMEOUT_MS
Prints "drain RC external N local N" (RC: 0 drained, -8 the timeout passed)."""
import ctypes
import sys


class Connections(ctypes.Structure):
    _fields_ = [("external", ctypes.c_uint32), ("local", ctypes.c_uint32)]  # nodeport_connections


def main():
    so, pin, owner, ip, port, timeout_ms = sys.argv[1:7]
    lib = ctypes.CDLL(so)
    handle = ctypes.c_void_p()
    lib.nodeport_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.nodeport_del_owner.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nodeport_drain.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32,
                                   ctypes.POINTER(Connections)]
    lib.nodeport_close.argtypes = [ctypes.c_void_p]
    if lib.nodeport_open(pin.encode(), ctypes.byref(handle)) != 0:
        sys.exit("nodeport_open failed")
    lib.nodeport_del_owner(handle, owner.encode())  # nothing left to delete after the redeploy: not an error here
    left = Connections()
    rc = lib.nodeport_drain(handle, ip.encode(), int(port), int(timeout_ms), ctypes.byref(left))
    print(f"drain {rc} external {left.external} local {left.local}", flush=True)
    lib.nodeport_close(handle)


main()
