#!/usr/bin/env python3
"""Records the events a real nats-server publishes between scrapes, as test fixtures.

Starts nats-server (from PATH) with a system account and an application account, then:
  * cuts a client off as a slow consumer (it subscribes and never reads; write_deadline 1s)
    and keeps the `$SYS.ACCOUNT.APP.DISCONNECT` event;
  * lets a message reach max_deliver on a JetStream consumer (max_deliver 2, ack_wait 1s,
    never acked) and keeps `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.S1.C1`.

Usage: record_nats_events.py OUT_DIR   (writes events-disconnect-slow-consumer.json and
events-max-deliver.json, pretty-printed, plus the server version in events-server.txt)
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

out = sys.argv[1]
work = tempfile.mkdtemp()
port = 14299
conf = os.path.join(work, "s.conf")
with open(conf, "w") as f:
    f.write(f"""port: {port}
jetstream {{ store_dir: {work}/js }}
accounts {{
  SYS {{ users = [{{user: sys, password: sys}}] }}
  APP {{ jetstream: enabled, users = [{{user: app, password: app}}] }}
}}
system_account: SYS
max_pending: 2MB
write_deadline: "1s"
""")
server = subprocess.Popen(["nats-server", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
kept = {}


def connect(user, name):
    for _ in range(50):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.1)
    info = s.recv(4096).decode()
    kept["version"] = json.loads(info[5:])["version"]
    s.sendall(('CONNECT {"user":"%s","pass":"%s","name":"%s","verbose":false,"pedantic":false}\r\nPING\r\n'
               % (user, user, name)).encode())
    return s


def reader(s):
    buf = b""
    while True:
        try:
            data = s.recv(65536)
        except OSError:
            return
        if not data:
            return
        buf += data
        while (i := buf.find(b"\r\n")) >= 0:
            line = buf[:i].decode(errors="replace")
            if line.startswith("MSG"):
                parts = line.split()
                n = int(parts[-1])
                if len(buf) < i + 2 + n + 2:
                    break
                body = buf[i + 2:i + 2 + n]
                buf = buf[i + 2 + n + 2:]
                if parts[1].endswith(".DISCONNECT") and b"Slow Consumer" in body:
                    kept["events-disconnect-slow-consumer"] = json.loads(body)
                if ".MAX_DELIVERIES." in parts[1]:
                    kept["events-max-deliver"] = json.loads(body)
                continue
            buf = buf[i + 2:]


try:
    watch_sys = connect("sys", "watch-sys")
    watch_sys.sendall(b"SUB $SYS.ACCOUNT.*.DISCONNECT 1\r\n")
    threading.Thread(target=reader, args=(watch_sys,), daemon=True).start()
    watch_app = connect("app", "watch-app")
    watch_app.sendall(b"SUB $JS.EVENT.ADVISORY.CONSUMER.> 1\r\n")
    threading.Thread(target=reader, args=(watch_app,), daemon=True).start()
    time.sleep(0.5)
    slow = connect("app", "slowpoke-1")
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"SUB big 1\r\n")
    time.sleep(0.3)
    pub = connect("app", "publisher")
    payload = b"x" * 60000
    deadline = time.time() + 10
    while "events-disconnect-slow-consumer" not in kept and time.time() < deadline:
        pub.sendall(b"PUB big %d\r\n" % len(payload) + payload + b"\r\n")
    # Pull requests need a reply subscriber: the server drops requests nobody listens to.
    pub.sendall(b"SUB _INBOX.r 9\r\n")
    threading.Thread(target=reader, args=(pub,), daemon=True).start()
    requests = [
        ("$JS.API.STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1.>"]}),
        ("$JS.API.CONSUMER.DURABLE.CREATE.S1.C1",
         {"stream_name": "S1", "config": {"durable_name": "C1", "ack_policy": "explicit",
                                          "ack_wait": 1_000_000_000, "max_deliver": 2}}),
    ]
    for subject, body in requests:
        data = json.dumps(body).encode()
        pub.sendall(b"PUB %s _INBOX.r %d\r\n%s\r\n" % (subject.encode(), len(data), data))
        time.sleep(0.5)
    pub.sendall(b"PUB s1.a 2\r\nhi\r\n")
    deadline = time.time() + 10
    while "events-max-deliver" not in kept and time.time() < deadline:
        fetch = b'{"batch":1,"expires":500000000}'
        pub.sendall(b"PUB $JS.API.CONSUMER.MSG.NEXT.S1.C1 _INBOX.r %d\r\n%s\r\n" % (len(fetch), fetch))
        time.sleep(1.2)
finally:
    server.terminate()
    server.wait()

for name in ["events-disconnect-slow-consumer", "events-max-deliver"]:
    if name not in kept:
        sys.exit(f"nats-server {kept.get('version')} sent no {name}")
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(kept[name], f, indent=2)
        f.write("\n")
with open(os.path.join(out, "events-server.txt"), "w") as f:
    f.write(f"recorded from nats-server {kept['version']} by scripts/reference/record_nats_events.py\n")
print("recorded from nats-server", kept["version"])
