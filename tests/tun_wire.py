#!/usr/bin/env python3
"""Interfaces without a link-layer header for the tests: tun devices, the
kind WireGuard and ipip are (this kernel may have no wireguard or ipip
module, tun is built in).
    tun_wire.py wire NETNS-A DEV-A NETNS-B DEV-B
        a tun device in each of two network namespaces (paths such as
        /run/netns/x) and this process carrying every packet from one to the
        other: a point-to-point IP link
    tun_wire.py hold NETNS DEV ARPHRD
        one tun device whose link type is set to ARPHRD (TUNSETLINK), for an
        interface of a type nothing reads
Prints "ready" once the devices exist; they go when the process ends."""
import ctypes
import os
import select
import struct
import sys

TUNSETIFF = 0x400454CA
TUNSETLINK = 0x400454CD
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


def tun_in(netns, name, link_type=None):
    """A tun device in `netns`: the device lives in the namespace this
    process is in when it opens /dev/net/tun."""
    ns = os.open(netns, os.O_RDONLY)
    if libc.setns(ns, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {netns}")
    os.close(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    import fcntl

    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    if link_type is not None:
        fcntl.ioctl(fd, TUNSETLINK, link_type)
    return fd


def main():
    if sys.argv[1] == "hold":
        tun_in(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        print("ready", flush=True)
        select.select([], [], [])
        return
    a = tun_in(sys.argv[2], sys.argv[3])
    b = tun_in(sys.argv[4], sys.argv[5])
    print("ready", flush=True)
    other = {a: b, b: a}
    while True:
        readable, _, _ = select.select([a, b], [], [])
        for fd in readable:
            try:
                os.write(other[fd], os.read(fd, 65536))
            except OSError:
                pass  # the other side is down yet: a lost packet, as on a wire


main()
