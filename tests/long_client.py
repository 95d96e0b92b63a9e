#!/usr/bin/env python3
"""One long-lived TCP connection: prints the server's greeting, then sends each
line read from stdin and prints the answer, until stdin closes.
    long_client.py IP PORT"""
import socket
import sys

s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
reader = s.makefile("r")
print(reader.readline().strip(), flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        print(reader.readline().strip() or "closed", flush=True)
    except OSError as e:
        print(f"error {e.__class__.__name__}", flush=True)
