#!/usr/bin/env python3
"""A client that prints what an application sees: the peer address the socket
reports (getpeername for connected sockets, the recvfrom source for unconnected
UDP) and the server's one-line answer.
    probe.py tcp|udp|udp-connected IP PORT [LOCAL-PORT]  ->  "PEER-IP:PEER-PORT ANSWER"
With LOCAL-PORT the socket is bound to that local port first. An IPv6 IP
(::ffff:127.0.0.1, as Java and .NET dual-stack sockets use for an IPv4 peer)
makes an AF_INET6 socket, and the peer prints as "[PEER-IP]:PEER-PORT"."""
import socket
import sys

mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if mode == "tcp" else socket.SOCK_DGRAM
family = socket.AF_INET6 if ":" in ip else socket.AF_INET
s = socket.socket(family, kind)
s.settimeout(3)
if len(sys.argv) > 4:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sys.argv[4])))
try:
    if mode == "udp":
        s.sendto(b"hello", (ip, port))
        data, peer = s.recvfrom(2048)
    else:
        s.connect((ip, port))
        if mode == "udp-connected":
            s.send(b"hello")
        data = s.recv(2048)
        peer = s.getpeername()
except OSError as e:
    print(f"error {e.__class__.__name__}")
    sys.exit(1)
host = f"[{peer[0]}]" if family == socket.AF_INET6 else peer[0]
print(f"{host}:{peer[1]} {data.decode().strip()}")
