#!/usr/bin/env python3
"""Bulk transfers for the path MTU and fragment tests: a server in a sandbox,
and clients that print what arrived, so a test compares one line.
    bulk.py serve PORT               TCP: "get N" sends N bytes, "put N" reads N
                                     bytes and answers "got N intact|corrupt";
                                     UDP: a datagram "want M ..." of any size is
                                     answered with M bytes, "SIZE-RECEIVED ..."
    bulk.py get IP PORT N            ->  "N intact"
    bulk.py put IP PORT N            ->  "got N intact"
    bulk.py udp IP PORT SIZE ANSWER  ->  "PEER-IP:PEER-PORT received SIZE, answer ANSWER"
The server takes both families; an IPv6 IP makes an IPv6 client, and its
peer prints as "[PEER-IP]:PEER-PORT".
The bytes are a fixed pattern, checked on arrival. Every client gives up
after TIMEOUT seconds (a path MTU black hole stalls a connection; a lost
fragment loses its datagram) and prints "error ..." instead."""
import selectors
import socket
import sys

TIMEOUT = 10


def pattern(n):
    return bytes(i % 251 for i in range(n))


def recv_exactly(conn, n):
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(min(65536, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def dual_stack(kind, port):
    """A socket on PORT for both families (IPv4 clients as ::ffff:a.b.c.d)."""
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def serve(port):
    tcp = dual_stack(socket.SOCK_STREAM, port)
    tcp.listen(16)
    udp = dual_stack(socket.SOCK_DGRAM, port)
    sel = selectors.DefaultSelector()
    sel.register(tcp, selectors.EVENT_READ)
    sel.register(udp, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is udp:
                data, peer = udp.recvfrom(65535)
                want = int(data.split()[1]) if data.startswith(b"want ") else 0
                head = f"{len(data)} ".encode()
                udp.sendto((head + pattern(want))[:want] if want > len(head) else head, peer)
                continue
            conn, _ = tcp.accept()
            conn.settimeout(TIMEOUT)
            try:
                reader = conn.makefile("rb")  # buffered: the data after the line is read through it too
                verb, n = reader.readline().split()
                n = int(n)
                if verb == b"get":
                    conn.sendall(pattern(n))
                else:
                    data = reader.read(n)
                    conn.sendall(f"got {len(data)} {'intact' if data == pattern(n) else 'corrupt'}\n".encode())
            except (OSError, ValueError):
                pass
            conn.close()


def main():
    mode = sys.argv[1]
    if mode == "serve":
        serve(int(sys.argv[2]))
        return
    ip, port = sys.argv[2], int(sys.argv[3])
    try:
        if mode == "udp":
            size, answer = int(sys.argv[4]), int(sys.argv[5])
            ipv6 = ":" in ip
            s = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(TIMEOUT)
            s.sendto(f"want {answer} ".encode().ljust(size, b"x"), (ip, port))
            data, peer = s.recvfrom(65535)
            host = f"[{peer[0]}]" if ipv6 else peer[0]
            print(f"{host}:{peer[1]} received {data.split()[0].decode()}, answer {len(data)}")
            return
        n = int(sys.argv[4])
        s = socket.create_connection((ip, port), timeout=TIMEOUT)
        if mode == "get":
            s.sendall(f"get {n}\n".encode())
            data = recv_exactly(s, n)
            print(f"{len(data)} {'intact' if data == pattern(n) else 'corrupt'}")
        else:
            s.sendall(f"put {n}\n".encode() + pattern(n))
            print(s.makefile("r").readline().strip() or "closed")
    except OSError as e:
        print(f"error {e.__class__.__name__}")
        sys.exit(1)


main()
