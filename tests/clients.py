#!/usr/bin/env python3
"""Clients that behave like real ones across a redeploy, for the tests.

  clients.py udp-steady IP PORT LOCAL-PORT SECONDS
      One UDP socket bound to LOCAL-PORT (a DNS forwarder, a statsd agent),
      a datagram every 0.1 s. Prints "TIME ANSWER" per reply, "TIME timeout"
      per datagram left unanswered for 0.3 s (TIME: CLOCK_REALTIME seconds).
  clients.py udp-connected IP PORT SECONDS
      A connected UDP socket, a datagram every 0.1 s, as above; on an error
      prints "TIME error NAME" and connects a new socket, as applications do.
      With an IPv6 IP (::ffff:a.b.c.d) the UDP clients use AF_INET6 sockets.
  clients.py tcp-churn IP PORT FIRST-PORT COUNT SECONDS rst|fin
      Short connections from source ports FIRST-PORT.. round robin, each
      reading the server's line, then closing (rst: SO_LINGER 0; fin: after
      the server's close). Prints "OK FAILED".
  clients.py udp-flood IP PORT COUNT SOURCE-IP...
      COUNT datagrams, each from a socket of its own (a new source port),
      bound to the source addresses in turn: that many distinct flows.
      Prints the number sent.
  clients.py tcp-each IP PORT FIRST-PORT COUNT
      One connection from each source port. Prints "N ANSWER" per distinct
      answer (or "N error NAME"), sorted.
  clients.py tcp-until IP PORT STOP-FILE
      New connections one after another (ephemeral source ports), each
      reading the server's line, until STOP-FILE exists (300 s at most).
      Prints "OK FAILED FIRST LAST" (FIRST, LAST: CLOCK_REALTIME seconds of
      the first and last success); each failure also goes to stderr.
  clients.py tcp-hold IP PORT STOP-FILE
      One connection to a --hold server, a line every 0.05 s, each answer
      awaited, until STOP-FILE exists (300 s at most). Prints "OK FAILED FIRST
      LAST" as tcp-until does.
Every loop is bounded in time; nothing waits forever."""
import collections
import os
import socket
import struct
import sys
import time


def answer(data):
    return data.decode(errors="replace").strip()


def udp_loop(sock_factory, seconds, connected):
    sock = sock_factory()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent_at = time.monotonic()
        try:
            sock.send(b"hi") if connected else sock.sendto(b"hi", TARGET)
            data = sock.recv(2048)
            print(f"{time.time():.3f} {answer(data)}", flush=True)
        except socket.timeout:
            print(f"{time.time():.3f} timeout", flush=True)
        except OSError as e:
            print(f"{time.time():.3f} error {e.__class__.__name__}", flush=True)
            sock.close()
            sock = sock_factory()
        time.sleep(max(0.0, 0.1 - (time.monotonic() - sent_at)))


def udp_socket(local_port=None, connect=False):
    def make():
        s = socket.socket(FAMILY, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        if local_port is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if FAMILY == socket.AF_INET6 else "0.0.0.0", local_port))
        if connect:
            s.connect(TARGET)
        return s
    return make


def tcp_connect(source_port, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", source_port))
    s.connect(TARGET)
    return s


def read_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(2048)
        if not chunk:
            break
        data += chunk
    return answer(data)


def tcp_churn(first, count, seconds, close):
    ok = failed = 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        port = first + i % count
        i += 1
        try:
            s = tcp_connect(port)
            read_line(s)
            if close == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                s.recv(1)  # the server's FIN: it closes first, so no TIME_WAIT here
            s.close()
            ok += 1
        except OSError:
            failed += 1
            time.sleep(0.01)
    print(ok, failed)


def tcp_each(first, count):
    seen = collections.Counter()
    for port in range(first, first + count):
        try:
            s = tcp_connect(port)
            seen[read_line(s) or "closed"] += 1
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError as e:
            seen[f"error {e.__class__.__name__}"] += 1
    for what, n in sorted(seen.items()):
        print(n, what)


def stopped(stop_file, end):
    return os.path.exists(stop_file) or time.monotonic() > end


class Tally:
    """Successes and failures of a client that runs until told to stop, and
    the times of its first and last success: prints "OK FAILED FIRST LAST".
    The first success creates STOP-FILE.ready.PID, so that a test can wait
    until its traffic is under way, however slow the machine."""

    def __init__(self, stop_file):
        self.ok = self.failed = 0
        self.first = self.last = 0.0
        self.ready_file = f"{stop_file}.ready.{os.getpid()}"

    def success(self):
        self.ok += 1
        self.last = time.time()
        if not self.first:
            self.first = self.last
            open(self.ready_file, "w").close()

    def failure(self, what):
        self.failed += 1
        print(f"{time.time():.3f} {what}", file=sys.stderr, flush=True)

    def report(self):
        print(self.ok, self.failed, f"{self.first:.3f}", f"{self.last:.3f}")


def tcp_until(stop_file):
    tally = Tally(stop_file)
    end = time.monotonic() + 300
    while not stopped(stop_file, end):
        try:
            with socket.create_connection(TARGET, timeout=2.0) as s:
                line = read_line(s)
            if line:
                tally.success()
            else:
                tally.failure("closed without an answer")
        except OSError as e:
            tally.failure(f"error {e.__class__.__name__}")
            time.sleep(0.01)
    tally.report()


def tcp_hold(stop_file):
    tally = Tally(stop_file)
    end = time.monotonic() + 300
    s = socket.create_connection(TARGET, timeout=2.0)
    reader = s.makefile("r")
    reader.readline()  # the greeting
    while not stopped(stop_file, end):
        try:
            s.sendall(b"ping\n")
            if reader.readline().strip().endswith("ping"):
                tally.success()
            else:
                tally.failure("no answer")
        except OSError as e:
            tally.failure(f"error {e.__class__.__name__}")
        time.sleep(0.05)
    tally.report()


def udp_flood(count, sources):
    sent = 0
    for i in range(count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((sources[i % len(sources)], 0))
            try:
                s.sendto(b"flood", TARGET)
                sent += 1
            except OSError:
                pass
    print(sent)


mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
TARGET = (ip, port)
# An IPv6 IP (::ffff:127.0.0.1: a dual-stack socket reaching IPv4, as Java's
# do) makes the UDP clients open AF_INET6 sockets.
FAMILY = socket.AF_INET6 if ":" in ip else socket.AF_INET
args = sys.argv[4:]
if mode == "udp-steady":
    udp_loop(udp_socket(local_port=int(args[0])), float(args[1]), connected=False)
elif mode == "udp-connected":
    udp_loop(udp_socket(connect=True), float(args[0]), connected=True)
elif mode == "tcp-churn":
    tcp_churn(int(args[0]), int(args[1]), float(args[2]), args[3])
elif mode == "udp-flood":
    udp_flood(int(args[0]), args[1:])
elif mode == "tcp-each":
    tcp_each(int(args[0]), int(args[1]))
elif mode == "tcp-until":
    tcp_until(args[0])
elif mode == "tcp-hold":
    tcp_hold(args[0])
else:
    sys.exit(f"clients.py: unknown mode {mode}")
