#!/usr/bin/env python3
"""A client that prints what an application sees: the peer address the socket
reports (getpeername for connected sockets, the recvfrom source for unconnected
UDP) and the server's one-line answer.
    probe.py tcp|udp|udp-connected IP PORT  ->  "PEER-IP:PEER-PORT ANSWER" """
import socket
import sys

mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if mode == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(3)
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
print(f"{peer[0]}:{peer[1]} {data.decode().strip()}")
