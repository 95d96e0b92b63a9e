#!/usr/bin/env python3
"""Clients for drain_test.sh, against scripts/identity_server.py --hold.
    drain_clients.py hold IP PORT COUNT SECONDS [STOP_FILE]
        COUNT connections; prints "ready NAME" once all are open (NAME: the
        sandbox that answered the first), then each sends a line every 0.2 s
        for SECONDS (0: until STOP_FILE exists) and closes. Then prints one line:
        "closed EPOCH_OF_LAST_CLOSE sent N failed M broken B" (B: connections
        with at least one failed request).
    drain_clients.py fresh IP PORT STOP_FILE
        a new connection every 50 ms until STOP_FILE exists, one line each:
        "EPOCH NAME" (the sandbox that answered) or "EPOCH error"."""
import os
import socket
import sys
import threading
import time


def connect(ip, port):
    s = socket.create_connection((ip, port), timeout=2)
    reader = s.makefile("r")
    name = reader.readline().split(" ")[0]
    return s, reader, name


def hold(ip, port, count, seconds, stop_file):
    conns = [connect(ip, port) for _ in range(count)]
    print("ready", conns[0][2], flush=True)
    lock = threading.Lock()
    totals = {"sent": 0, "failed": 0, "broken": 0, "last_close": 0.0}

    def run(s, reader, name):
        end = time.time() + seconds if seconds > 0 else float("inf")
        sent = failed = 0
        while time.time() < end and not (stop_file and os.path.exists(stop_file)):
            try:
                s.sendall(b"ping\n")
                if not reader.readline().startswith(name + " ping"):
                    failed += 1
            except OSError:
                failed += 1
            sent += 1
            time.sleep(0.2)
        s.close()
        with lock:
            totals["sent"] += sent
            totals["failed"] += failed
            totals["broken"] += failed > 0
            totals["last_close"] = max(totals["last_close"], time.time())

    threads = [threading.Thread(target=run, args=c) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"closed {totals['last_close']:.3f} sent {totals['sent']} failed {totals['failed']} broken {totals['broken']}", flush=True)


def fresh(ip, port, stop_file):
    while not os.path.exists(stop_file):
        try:
            s, _, name = connect(ip, port)
            s.close()
            print(f"{time.time():.3f} {name or 'error'}", flush=True)
        except OSError:
            print(f"{time.time():.3f} error", flush=True)
        time.sleep(0.05)


mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "hold":
    hold(ip, port, int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] if len(sys.argv) > 6 else None)
elif mode == "fresh":
    fresh(ip, port, sys.argv[4])
else:
    sys.exit(f"unknown mode {mode}")
