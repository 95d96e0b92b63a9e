#!/usr/bin/env python3
"""One long-lived TCP connection: prints the server's greeting, then sends each
line read from stdin and prints the answer, until stdin closes.
    long_client.py IP PORT [LOCAL-PORT]
An IPv6 IP makes an AF_INET6 socket."""
import socket
import sys

ipv6 = ":" in sys.argv[1]
s = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET)
s.settimeout(5)
if len(sys.argv) > 3:  # SO_REUSEADDR: another socket may connect elsewhere from the same port
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if ipv6 else "", int(sys.argv[3])))
s.connect((sys.argv[1], int(sys.argv[2])))
reader = s.makefile("r")
print(reader.readline().strip(), flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        print(reader.readline().strip() or "closed", flush=True)
    except OSError as e:
        print(f"error {e.__class__.__name__}", flush=True)
