#!/usr/bin/env python3
"""Records what a real nats-server sends a client, byte for byte, for the parser tests.

    nats-server -a 127.0.0.1 -p 14222 &
    python3 scripts/reference/record_nats_stream.py 14222 > Tests/FlatlineNATSTests/Fixtures/server-stream.bin

The client subscribes, publishes messages of several sizes (empty, one byte, binary, 70 KB), one
with headers, one with a reply subject, requests a subject nobody listens on (the server answers
with a 503 status message), and pings; everything the server sends back is written out raw. The
companion file server-stream.json lists what the stream holds, for the test to compare against.
"""
import json
import socket
import sys


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    out = b""
    connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "name": "recorder",
               "lang": "python", "version": "0", "protocol": 1}
    s.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
    s.sendall(b"SUB orders.> 1\r\nSUB telemetry 2\r\nSUB _INBOX.rec.* 3\r\n")
    payloads = [b"", b"x", bytes(range(256)), b"A" * 70000, "ünïcødé".encode()]
    for p in payloads:
        s.sendall(b"PUB orders.new %d\r\n" % len(p) + p + b"\r\n")
    headers = b"NATS/1.0\r\nTrace-Id: abc123\r\nTrace-Id: def456\r\nX-Empty: \r\n\r\n"
    body = b"with headers"
    s.sendall(b"HPUB telemetry %d %d\r\n" % (len(headers), len(headers) + len(body)) + headers + body + b"\r\n")
    s.sendall(b"PUB orders.reply _INBOX.rec.1 5\r\nhello\r\n")
    s.sendall(b"HPUB nobody.listens _INBOX.rec.2 12 12\r\nNATS/1.0\r\n\r\n\r\n")
    s.sendall(b"PING\r\n")
    while not out.endswith(b"PONG\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    sys.stdout.buffer.write(out)


if __name__ == "__main__":
    main()
