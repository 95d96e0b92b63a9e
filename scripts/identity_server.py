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



def listener(kind):
    """A dual-stack socket on PORT (IPv4 clients arrive as ::ffff:a.b.c.d),
    or an IPv4 one where the namespace has no IPv6."""
    try:
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", args.port)
    except OSError:
        s = socket.socket(socket.AF_INET, kind)
        address = ("0.0.0.0", args.port)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    return s


def shown(peer):
    """The client's address as its own family writes it: 10.8.0.1, fd00:8::1."""
    return peer[len("::ffff:"):] if peer.startswith("::ffff:") and "." in peer else peer


tcp = listener(socket.SOCK_STREAM)
tcp.listen(128)
udp = listener(socket.SOCK_DGRAM)

sel = selectors.DefaultSelector()
sel.register(tcp, selectors.EVENT_READ)
sel.register(udp, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is tcp:
            conn, (peer, *_) = tcp.accept()
            try:
                conn.sendall(f"{args.name} {shown(peer)}\n".encode())
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
            _, source = udp.recvfrom(2048)
            udp.sendto(f"{args.name} {shown(source[0])}\n".encode(), source)
