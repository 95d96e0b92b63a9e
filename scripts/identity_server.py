#!/usr/bin/env python3
"""A sandbox's server: answers every TCP connection and every UDP datagram on
PORT with one line, "NAME CLIENT-IP", so a client can tell which sandbox it
reached and the sandbox's view of who connected.
With --hold, a TCP connection stays open after that line, and every line the
client sends is answered with "NAME LINE" (a long-lived connection)."""
import argparse
import selectors
import socket

parser = argparse.ArgumentParser()
parser.add_argument("--name", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--hold", action="store_true")
args = parser.parse_args()

tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", args.port))
tcp.listen(128)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", args.port))

sel = selectors.DefaultSelector()
sel.register(tcp, selectors.EVENT_READ)
sel.register(udp, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is tcp:
            conn, (peer, _) = tcp.accept()
            try:
                conn.sendall(f"{args.name} {peer}\n".encode())
            except OSError:
                conn.close()
                continue
            if args.hold:
                sel.register(conn, selectors.EVENT_READ)
            else:
                conn.close()
        elif key.fileobj is not udp:  # a held connection
            try:
                data = key.fileobj.recv(2048)
            except OSError:  # reset by its client: that connection ends, the server goes on
                data = b""
            if data:
                key.fileobj.sendall(f"{args.name} {data.decode().strip()}\n".encode())
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
        else:
            _, (peer, peer_port) = udp.recvfrom(2048)
            udp.sendto(f"{args.name} {peer}\n".encode(), (peer, peer_port))
