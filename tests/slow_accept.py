#!/usr/bin/env python3
"""An accept queue that overflows: SYN-ACKs retransmitted after the client's
ACK was dropped, as a busy server makes them.
    slow_accept.py serve PORT          listen(1), accept only after 3 s, answer each connection "ok"
    slow_accept.py connect IP PORT N   N connections at once; prints how many got "ok"."""
import socket
import sys
import threading
import time

if sys.argv[1] == "serve":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[2])))
    srv.listen(1)
    print("listening", flush=True)
    while True:
        time.sleep(3)
        srv.setblocking(False)
        while True:
            try:
                conn, _ = srv.accept()
            except BlockingIOError:
                break
            conn.setblocking(True)
            try:
                conn.recv(16)
                conn.sendall(b"ok")
            except OSError:
                pass
            conn.close()
        srv.setblocking(True)
else:
    ip, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ok = []

    def one():
        try:
            s = socket.create_connection((ip, port), timeout=30)
            s.sendall(b"hi")
            if s.recv(16) == b"ok":
                ok.append(1)
            s.close()
        except OSError:
            pass

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(len(ok))
