#!/usr/bin/env python3
"""The abuse bench of issue 16: the memory, fd and starvation attacks of the security review
(../shared/reference/security-review.md) and a reconnect storm, each against a fresh server
(release binary, fresh data dir, default configuration) while a canary phone publishes 10 QoS 1
OwnTracks locations/s (MQTT 3.1.1, as the Android app) and a friend it shares with reads them.

For every attack it prints: server still up, peak RSS above the idle baseline (VmRSS/VmHWM
sampled every 100 ms), canary locations acknowledged and stored (REST history), canary p99
publish-to-delivery latency, and what the attack itself saw. A server growing past
--rss-cap-mib above its baseline is killed by the bench (so the old code cannot take the
machine down): that is reported as "killed at cap".

Usage: bench/abuse.py BINARY [ATTACK ...] [--json FILE]    (bench/abuse.sh builds and calls it)
Attacks: deep, subscriptions, wrong-password, telemetry, idle-http, stalled, storm.
"""
import argparse
import asyncio
import http.client
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

PASSWORD = "abuse bench: correct horse battery staple"  # every account's (>= 10 chars, not 24)
ACCOUNTS = ["canary", "friend", "bob"]
STORM_ACCOUNTS = 20


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


# ---- raw MQTT 3.1.1 packets ------------------------------------------------------------------


def remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id, username=None, password=None, keepalive=60, clean=True):
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + utf8(client_id)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return bytes([0x10]) + remaining_length(len(body)) + body


def subscribe_packet(pid, filters, qos=1):
    body = struct.pack("!H", pid) + b"".join(utf8(f) + bytes([qos]) for f in filters)
    return bytes([0x82]) + remaining_length(len(body)) + body


def publish_packet(topic, payload, qos=0, pid=1, retain=False):
    body = utf8(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    head = 0x30 | (qos << 1) | (1 if retain else 0)
    return bytes([head]) + remaining_length(len(body)) + body


def read_packet(sock):
    """(type, flags, body) of the next packet, or None when the socket closed."""
    head = recv_exactly(sock, 1)
    if head is None:
        return None
    length, shift = 0, 0
    while True:
        b = recv_exactly(sock, 1)
        if b is None:
            return None
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = recv_exactly(sock, length) if length else b""
    if body is None:
        return None
    return head[0] >> 4, head[0] & 0x0F, body


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except (ConnectionError, socket.timeout, OSError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


def raw_connect(port, client_id, username, password, keepalive=60, clean=True, timeout=10,
                source=None, rcvbuf=None):
    """A connected socket and the CONNACK return code (None: no CONNACK, socket closed)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.sendall(connect_packet(client_id, username, password, keepalive, clean))
    packet = read_packet(sock)
    if packet is None or packet[0] != 2:
        sock.close()
        return None, None
    return sock, packet[2][1]


async def async_read_packet(reader):
    head = await reader.readexactly(1)
    length, shift = 0, 0
    while True:
        b = await reader.readexactly(1)
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = await reader.readexactly(length) if length else b""
    return head[0] >> 4, body


# ---- the server under test ---------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One mytracks process on a fresh data dir, default configuration, fixed ports (so a
    restart keeps them)."""

    def __init__(self, binary, workdir, nofile=None):
        self.binary = binary
        self.dir = workdir
        self.data = os.path.join(workdir, "data")
        self.nofile = nofile
        self.http_port, self.mqtt_port = free_port(), free_port()
        self.proc = None
        self.exits = []  # exit codes of processes that ended on their own
        self.log = open(os.path.join(workdir, "server.log"), "ab")

    def cli(self, *args, stdin=None):
        out = subprocess.run([self.binary, *args, "--data-dir", self.data], input=stdin,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{args}: {out.stderr.strip()}")
        return out.stdout.strip()

    def add_user(self, name):
        self.cli("user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")

    def start(self):
        cmd = [self.binary, "serve", "--data-dir", self.data, "--bind", "127.0.0.1",
               "--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port)]
        if self.nofile:
            cmd = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] + cmd
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=lambda: os.nice(10))
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start: {self.proc.returncode}")
            try:
                status, _ = self.api("GET", "/healthz", timeout=2)
                if status == 200 and port_open(self.mqtt_port):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start within 60 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def status_kib(self):
        """(VmRSS, VmHWM) in KiB, or None when the process is gone."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
        except (OSError, KeyError, ValueError):
            return None

    def reset_hwm(self):
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def api(self, method, path, token=None, body=None, timeout=15, source=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data[:200]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class MemWatch(threading.Thread):
    """Samples VmRSS every 100 ms; kills the server past baseline + cap."""

    def __init__(self, server, baseline_kib, cap_kib):
        super().__init__(daemon=True)
        self.server, self.baseline, self.cap = server, baseline_kib, cap_kib
        self.peak = baseline_kib
        self.peak_fds = 0
        self.killed_at_cap = False
        self.running = True

    def run(self):
        while self.running:
            sample = self.server.status_kib() if self.server.proc else None
            if sample:
                self.peak = max(self.peak, sample[0], sample[1])
                try:
                    fds = len(os.listdir(f"/proc/{self.server.proc.pid}/fd"))
                    self.peak_fds = max(self.peak_fds, fds)
                except OSError:
                    pass
                if sample[0] > self.baseline + self.cap and self.server.alive():
                    self.killed_at_cap = True
                    self.peak = max(self.peak, sample[0])
                    log(f"RSS {sample[0] // 1024} MiB: over the cap, killing the server")
                    self.server.kill()
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.join()


# ---- the canary -------------------------------------------------------------------------------


class Canary:
    """A phone (account canary, MQTT 3.1.1, persistent session) publishing 10 QoS 1 locations
    per second on owntracks/canary/phone, and its friend reading them on another connection."""

    RATE = 10

    def __init__(self, server, device="phone"):
        self.server, self.device = server, device
        self.topic = f"owntracks/canary/{device}"
        self.sent = {}  # seq -> time published
        self.mids = {}  # mid -> seq
        self.acked_mids = set()
        self.delivered = {}  # seq -> latency (s)
        self.lock = threading.Lock()
        self.publishing = threading.Event()
        self.stopping = False
        self.pub = self._client(f"canary-{device}", "canary", clean=False)
        self.sub = self._client(f"friend-reads-{device}", "friend", clean=False)
        self.sub.on_message = self._on_message
        self.sub.on_connect = lambda c, *a: c.subscribe(self.topic, qos=1)
        self.pub.on_publish = self._on_publish
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _client(self, client_id, user, clean):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=clean)
        c.username_pw_set(user, PASSWORD)
        c.reconnect_delay_set(0.2, 2)
        c.max_queued_messages_set(0)
        return c

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        # No lock: paho calls this holding its own message lock, which publish() takes too.
        self.acked_mids.add(mid)

    def _on_message(self, client, userdata, msg):
        now = time.time()
        try:
            p = json.loads(msg.payload)
            seq, t = p["seq"], p["sent"]
        except (ValueError, KeyError):
            return
        with self.lock:
            self.delivered.setdefault(seq, now - t)

    def start(self):
        for c in (self.sub, self.pub):
            c.connect("127.0.0.1", self.server.mqtt_port, keepalive=60)
            c.loop_start()
        self.wait_connected(15)
        time.sleep(0.5)  # the SUBACK
        self.publishing.set()
        self.thread.start()

    def wait_connected(self, secs):
        deadline = time.time() + secs
        while time.time() < deadline:
            if self.pub.is_connected() and self.sub.is_connected():
                return True
            time.sleep(0.05)
        return False

    def _run(self):
        seq = 0
        next_at = time.time()
        while not self.stopping:
            if not self.publishing.is_set():
                self.publishing.wait(0.2)
                next_at = time.time()
                continue
            now = time.time()
            if now < next_at:
                time.sleep(next_at - now)
                continue
            next_at += 1 / self.RATE
            seq += 1
            payload = json.dumps({"_type": "location", "lat": 52.52 + seq * 1e-5, "lon": 13.40,
                                  "tst": int(now), "acc": 5, "tid": "cn", "batt": 80,
                                  "seq": seq, "sent": now})
            self.sent[seq] = now
            info = self.pub.publish(self.topic, payload, qos=1)
            self.mids[info.mid] = seq

    def settle(self, secs=10):
        """Waits until every publish is acknowledged and delivered (or `secs` pass)."""
        deadline = time.time() + secs
        while time.time() < deadline:
            acked = len(set(self.acked_mids) & set(self.mids))
            if acked == len(self.sent) and len(self.delivered) == len(self.sent):
                return
            time.sleep(0.1)

    def pause(self):
        self.publishing.clear()
        time.sleep(0.15)
        self.settle()

    def resume(self):
        self.wait_connected(20)
        time.sleep(0.5)
        self.publishing.set()

    def stop(self):
        self.publishing.clear()
        time.sleep(0.15)
        self.settle()
        self.stopping = True
        self.thread.join()
        for c in (self.pub, self.sub):
            c.disconnect()
            c.loop_stop()

    def results(self):
        n = len(self.sent)
        acked = len(set(self.acked_mids) & set(self.mids))
        with self.lock:
            lat = sorted(self.delivered.values())
        missing = n - len(lat)
        k = max(0, int(round(0.99 * n + 0.5)) - 1)  # index of the p99 sample among n
        p99 = lat[k] * 1000 if k < len(lat) else float("inf")
        return {"sent": n, "acked": acked, "delivered": len(lat), "undelivered": missing,
                "p99_ms": p99, "max_ms": (lat[-1] * 1000 if lat else None)}


# ---- one attack --------------------------------------------------------------------------------


class Bench:
    def __init__(self, binary, cap_mib, workroot, keep=False):
        self.binary, self.cap_kib, self.root = binary, cap_mib * 1024, workroot
        self.keep = keep

    def run(self, name, attack, nofile=None, storm_accounts=0):
        work = tempfile.mkdtemp(prefix=f"{name}-", dir=self.root)
        srv = Server(self.binary, work, nofile)
        ctx = Ctx(srv)
        log(f"== {name}: setting up in {work}")
        for user in ACCOUNTS:
            srv.add_user(user)
        for i in range(storm_accounts):
            srv.add_user(f"storm{i:02}")
        for user in ACCOUNTS:
            ctx.tokens[user] = srv.cli("token", "create", user)
        srv.start()
        for viewer in ("friend", "bob"):
            status, body = srv.api("POST", "/api/account/shares/", ctx.tokens["canary"],
                                   {"username": viewer, "history": True})
            assert status in (200, 201), (status, body)
        canary = Canary(srv)
        ctx.canary = canary
        canary.start()
        time.sleep(3)
        baseline = srv.status_kib()[0]
        srv.reset_hwm()
        watch = MemWatch(srv, baseline, self.cap_kib)
        watch.start()
        ctx.watch = watch
        log(f"baseline RSS {baseline / 1024:.0f} MiB; attack starts")
        started = time.time()
        try:
            notes = attack(ctx)
        except Exception as e:  # an attack tool failing is a result too, not a bench crash
            notes = {"error": repr(e)}
        if srv.alive():
            sample = srv.status_kib()
            if sample:
                watch.peak = max(watch.peak, sample[1])
        log(f"attack done in {time.time() - started:.0f} s; stopping the canary")
        up_during = srv.alive() and not ctx.crashes and not watch.killed_at_cap
        canary.stop()
        watch.stop()
        up_end = srv.alive()
        exit_code = None if up_end else srv.proc.returncode
        if not up_end:
            srv.start()  # only to count what was stored
        stored = self.stored(srv, ctx.tokens["canary"], canary.device)
        srv.stop()
        with open(os.path.join(work, "server.log"), errors="replace") as f:
            text = f.read()
        signs = {k: text.count(k) for k in ("Too many open files", "overflowed its stack",
                                            "panicked", "stopped reading")}
        result = {
            "attack": name,
            "server_log": {k: v for k, v in signs.items() if v},
            "up": up_during and up_end,
            "killed_at_cap": watch.killed_at_cap,
            "crashes": ctx.crashes + ([f"exit {exit_code}"] if exit_code is not None
                                      and not watch.killed_at_cap else []),
            "baseline_mib": round(baseline / 1024),
            "peak_fds": watch.peak_fds,
            "peak_over_baseline_mib": round((watch.peak - baseline) / 1024),
            "canary": canary.results(),
            "stored": stored,
            "notes": notes,
        }
        log(json.dumps(result))
        if not self.keep:
            shutil.rmtree(work, ignore_errors=True)
        return result

    @staticmethod
    def stored(srv, token, device):
        for _ in range(20):
            try:
                status, rows = srv.api("GET", f"/api/locations/?user=canary&device={device}"
                                       "&limit=1000000", token)
                if status == 200:
                    return len(rows)
            except OSError:
                pass
            time.sleep(0.5)
        return None


class Ctx:
    def __init__(self, srv):
        self.srv = srv
        self.tokens = {}
        self.crashes = []
        self.canary = None
        self.watch = None

    def check_alive(self, step):
        """After a step: if the server died, record it and start it again on the same data."""
        time.sleep(1)
        if self.srv.alive():
            return True
        if self.watch.killed_at_cap:
            return False
        code = self.srv.proc.returncode
        log(f"server died at step {step!r}: exit {code}; restarting it")
        self.crashes.append(f"{step} (exit {code})")
        self.srv.start()
        self.canary.resume()
        return False

    def restart(self):
        self.canary.pause()
        self.srv.stop()
        self.srv.start()
        self.canary.resume()


# ---- the attacks ---------------------------------------------------------------------------------


def attack_deep(ctx):
    """C1: 30,000-level topics, live and retained (MQTT and REST), the topic tree, then a
    restart and a subscription to #."""
    srv, notes = ctx.srv, {}
    deep = "x" + "/" * 30000

    def mqtt_step(step, filters, topic, retain):
        try:
            sock, rc = raw_connect(srv.mqtt_port, f"deep-{step}", "bob", PASSWORD)
            if sock is None:
                return f"no CONNACK (rc {rc})"
            answers = []
            if filters:
                sock.sendall(subscribe_packet(1, filters))
                p = read_packet(sock)
                answers.append("closed" if p is None else f"SUBACK {p[2][2:].hex()}"
                               if p[0] == 9 else f"type {p[0]}")
            if topic and (not answers or answers[-1] != "closed"):
                sock.sendall(publish_packet(topic, b"p", qos=1, pid=2, retain=retain))
                p = read_packet(sock)
                answers.append("closed" if p is None else "PUBACK" if p[0] == 4
                               else f"PUBLISH" if p[0] == 3 else f"type {p[0]}")
            sock.close()
            return ", ".join(answers)
        except OSError as e:
            return f"error {e}"

    notes["retained deep publish (MQTT)"] = mqtt_step("retain", None, deep, True)
    ctx.check_alive("retained deep publish (MQTT)")
    try:
        status, _ = srv.api("POST", "/api/mqtt/publish/", ctx.tokens["bob"],
                            {"topic": "y" + "/" * 40000, "payload": "p", "retain": True})
        notes["retained deep publish (REST)"] = status
    except OSError as e:
        notes["retained deep publish (REST)"] = f"error {e}"
    ctx.check_alive("retained deep publish (REST)")
    notes["deep subscribe + publish"] = mqtt_step("live", [deep], deep, False)
    ctx.check_alive("deep subscribe + publish")
    try:
        status, _ = srv.api("GET", "/api/mqtt/topics/structure/", ctx.tokens["bob"])
        notes["topic structure"] = status
    except OSError as e:
        notes["topic structure"] = f"error {e}"
    ctx.check_alive("topic structure")
    ctx.restart()
    notes["subscribe # after restart"] = mqtt_step("hash", ["#"], None, False)
    ctx.check_alive("subscribe # after restart")
    time.sleep(5)
    return notes


def attack_subscriptions(ctx):
    """H3: 20 SUBSCRIBEs of ~1 MiB (1,000 filters of 1,000 levels), then the strongest that
    fits the limits: many persistent sessions, each filled with 128-level filters."""
    srv, notes = ctx.srv, {}
    sent = 0
    answer = "all SUBACKed"
    try:
        sock, rc = raw_connect(srv.mqtt_port, "amp-review", "bob", PASSWORD)
        for p in range(20):
            filters = [f"{p:02}{i:03}" + "/" * 995 for i in range(1000)]
            packet = subscribe_packet(p + 1, filters, qos=0)
            sock.sendall(packet)
            sent += len(packet)
            reply = read_packet(sock)
            if reply is None:
                answer = f"closed after packet {p + 1}"
                break
        sock.close()
    except OSError as e:
        answer = f"{e.__class__.__name__} after {sent / 2**20:.1f} MiB"
    notes["review: 20 x 1 MiB SUBSCRIBE"] = f"{sent / 2**20:.1f} MiB sent, {answer}"
    if not ctx.check_alive("20 x 1 MiB SUBSCRIBE"):
        return notes
    # Within the limits: 128 levels (the default max_topic_levels) of empty names, 480
    # distinct filters per session (~64 KiB, max_filter_bytes_per_session), persistent.
    accepted = refused = clients = 0
    deadline = time.time() + 40
    socks = []
    while time.time() < deadline and clients < 400 and srv.alive():
        try:
            sock, rc = raw_connect(srv.mqtt_port, f"amp-{clients}", "bob", PASSWORD,
                                   clean=False)
            if sock is None:
                break
            clients += 1
            for p in range(6):
                filters = [f"{clients:03}{p}{i:02}" + "/" * 127 for i in range(80)]
                sock.sendall(subscribe_packet(p + 1, filters, qos=0))
                reply = read_packet(sock)
                if reply is None:
                    break
                codes = reply[2][2:]
                accepted += sum(1 for c in codes if c < 0x80)
                refused += sum(1 for c in codes if c >= 0x80)
            socks.append(sock)
        except OSError:
            break
    for s in socks:
        s.close()
    notes["within limits: clients x 480 filters of 128 levels"] = (
        f"{clients} sessions, {accepted} filters accepted, {refused} refused")
    ctx.check_alive("filters within limits")
    return notes


def attack_wrong_password(ctx):
    """H5: 512 concurrent CONNECTs as admin with wrong passwords, renewed for 30 s; a probe
    logs in as friend (right password) every 2 s meanwhile."""
    srv = ctx.srv
    stats = {"answered": 0, "refused_rc": {}, "closed": 0}
    probe = Prober(srv, every=2.0)
    probe.start()

    async def one(i, deadline):
        while time.time() < deadline:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", srv.mqtt_port), 5)
                writer.write(connect_packet(f"guess-{i}-{random.random()}", "admin",
                                            f"wrong-{i}-{random.random()}"))
                kind, body = await asyncio.wait_for(async_read_packet(reader),
                                                    max(0.1, deadline - time.time()))
                stats["answered"] += 1
                rc = body[1] if kind == 2 and len(body) > 1 else None
                stats["refused_rc"][rc] = stats["refused_rc"].get(rc, 0) + 1
                writer.close()
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError):
                stats["closed"] += 1
                await asyncio.sleep(0.2)

    async def storm():
        deadline = time.time() + 30
        await asyncio.gather(*(one(i, deadline) for i in range(512)))

    asyncio.run(storm())
    probe.stop()
    ctx.check_alive("wrong-password storm")
    return {"wrong-password CONNECTs answered in 30 s": stats["answered"],
            "answers (rc: count)": stats["refused_rc"],
            "timed out or closed": stats["closed"], "probe logins (friend)": probe.summary()}


class Prober(threading.Thread):
    """Every `every` s from another address: a new MQTT login (friend, password) and
    GET /healthz; each must answer within 5 s."""

    def __init__(self, srv, every=1.0, source="127.0.0.100"):
        super().__init__(daemon=True)
        self.srv, self.every, self.source = srv, every, source
        self.mqtt, self.http = [], []  # (phase, seconds or None)
        self.phase = ""
        self.running = True

    def run(self):
        n = 0
        while self.running:
            n += 1
            t = time.time()
            try:
                sock, rc = raw_connect(self.srv.mqtt_port, f"probe-{n}", "friend", PASSWORD,
                                       timeout=5, source=self.source)
                self.mqtt.append((self.phase, time.time() - t if rc == 0 else None))
                if sock:
                    sock.close()
            except OSError:
                self.mqtt.append((self.phase, None))
            t = time.time()
            try:
                status, _ = self.srv.api("GET", "/healthz", timeout=5, source=self.source)
                self.http.append((self.phase, time.time() - t if status == 200 else None))
            except OSError:
                self.http.append((self.phase, None))
            time.sleep(max(0, self.every - (time.time() - t)))

    def stop(self):
        self.running = False
        self.join()

    def summary(self):
        def one(samples, phase):
            xs = [x for p, x in samples if p == phase]
            ok = [x for x in xs if x is not None]
            worst = f", slowest {max(ok) * 1000:.0f} ms" if ok else ""
            return f"{len(ok)}/{len(xs)} ok{worst}"
        phases = list(dict.fromkeys(p for p, _ in self.mqtt + self.http))
        return {f"{kind}{' (' + p + ')' if p else ''}": one(samples, p)
                for p in phases
                for kind, samples in (("mqtt login", self.mqtt), ("healthz", self.http))}


def attack_telemetry(ctx):
    """H6: one IoT device sends QoS 0 telemetry of 1 MB as fast as it can (15 s), then the
    strongest that fits: 60,000-byte payloads (under max_telemetry_bytes), 15 s."""
    srv, notes = ctx.srv, {}
    status, dev = srv.api("POST", "/api/iot/devices/", ctx.tokens["bob"],
                          {"device_id": "flood-1"})
    assert status in (200, 201), (status, dev)
    for label, size, secs in (("1 MB", 1_000_000, 15), ("60 kB", 60_000, 15)):
        payload = (b'{"v":"' + b"x" * (size - 8) + b'"}')
        packet = publish_packet("iot/devices/flood-1/telemetry/t", payload)
        sent = reconnects = 0
        deadline = time.time() + secs
        while time.time() < deadline and srv.alive():
            try:
                sock, rc = raw_connect(srv.mqtt_port, "flood-1", dev["username"],
                                       dev["password"], keepalive=0)
                if sock is None or rc != 0:
                    reconnects += 1
                    time.sleep(0.2)
                    continue
                sock.settimeout(max(0.1, deadline - time.time()))
                while time.time() < deadline:
                    sock.sendall(packet)
                    sent += 1
                sock.close()
            except socket.timeout:  # the server stopped reading until the deadline
                break
            except OSError:
                reconnects += 1
        notes[f"{label} QoS 0 telemetry for {secs} s"] = (
            f"{sent} sent ({sent * size / 1e6:.0f} MB), {reconnects} reconnects")
        if not ctx.check_alive(f"{label} telemetry"):
            break
    return notes


def attack_idle_http(ctx):
    """H4 (server started with RLIMIT_NOFILE 1024): 1,100 idle HTTP sockets from one address
    for 20 s, then from 20 addresses for 20 s (under the per-address limit, so the global one
    and the fd reserve must hold); closed sockets are reopened at once. Probes from another
    address: new MQTT login and /healthz every second."""
    srv, notes = ctx.srv, {}
    probe = Prober(srv, every=1.0)
    probe.start()
    for label, sources in (("one address", ["127.0.0.1"]),
                           ("20 addresses", [f"127.0.0.{i}" for i in range(2, 22)])):
        socks, opened, failed = [], 0, 0
        probe.phase = label
        deadline = time.time() + 20
        while time.time() < deadline and srv.alive():
            while len(socks) < 1100 and time.time() < deadline:
                # One at a time, as a client would (a burst of non-blocking connects only
                # overflows the listen queue, and those half-open sockets cost no fd).
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.bind((sources[opened % len(sources)], 0))
                    s.connect(("127.0.0.1", srv.http_port))
                    socks.append(s)
                    opened += 1
                except OSError:
                    s.close()
                    failed += 1
                    break
            poller = select.poll()
            by_fd = {s.fileno(): s for s in socks}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(500):  # closed (or answered 503) by the server: reopen
                socks.remove(by_fd[fd])
                by_fd[fd].close()
        connected = 0
        for s in socks:
            try:
                s.getpeername()
                connected += 1
            except OSError:
                pass
            s.close()
        probe.phase = "between"
        notes[f"1,100 idle sockets from {label}, 20 s"] = (
            f"{opened} opened ({opened - 1100 if opened > 1100 else 0} reopened after the "
            f"server closed them), {failed} connects timed out, {connected} open at the end")
        time.sleep(2)
    probe.stop()
    ctx.check_alive("idle HTTP sockets")
    notes["probes from 127.0.0.100"] = probe.summary()
    return notes


def attack_stalled(ctx):
    """M7: bob (the canary shares with him) subscribes to owntracks/canary/+ at QoS 1,
    keepalive 0, and never reads; the canary's second phone uploads a backlog of 3,000
    locations (as after a day offline). Then, for 30 s, bob takes his persistent session over
    again every 6 s (a new connection that never reads either), so its full queue is back
    in the way each time."""
    srv, notes = ctx.srv, {}

    def stalled():
        sock, rc = raw_connect(srv.mqtt_port, "bob-stalled", "bob", PASSWORD, keepalive=0,
                               clean=False, rcvbuf=4096)
        sock.sendall(subscribe_packet(1, ["owntracks/canary/+"], qos=1))
        return sock  # the SUBACK stays unread, as everything else

    sock = stalled()
    time.sleep(0.5)
    backlog = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="canary-backlog",
                          protocol=mqtt.MQTTv311, clean_session=False)
    backlog.username_pw_set("canary", PASSWORD)
    backlog.max_queued_messages_set(0)
    acked = []
    backlog.on_publish = lambda *a: acked.append(1)
    backlog.connect("127.0.0.1", srv.mqtt_port)
    backlog.loop_start()
    t0 = time.time()
    for i in range(3000):
        backlog.publish("owntracks/canary/backlog", json.dumps(
            {"_type": "location", "lat": 48.1, "lon": 11.5, "tst": int(t0) - 3000 + i,
             "tid": "bl"}), qos=1)
    deadline = t0 + 25
    while time.time() < deadline and len(acked) < 3000:
        time.sleep(0.1)
    notes["backlog of 3,000 acknowledged"] = f"{len(acked)} in {time.time() - t0:.1f} s"
    socks = [sock]
    deadline = time.time() + 30
    while time.time() < deadline and srv.alive():
        time.sleep(6)
        try:
            socks.append(stalled())
        except (OSError, AttributeError):
            pass
    notes["backlog acknowledged at the end"] = len(acked)
    for s in socks:
        s.close()
    backlog.disconnect()
    backlog.loop_stop()
    ctx.check_alive("stalled subscriber")
    return notes


def attack_storm(ctx):
    """Item 10: 2,000 simultaneous logins with the account password (100 clients each of 20
    accounts, from 100 addresses, phones retrying 1-2 s after a refusal), until all are
    connected (at most 150 s);
    meanwhile 25 clients with generated credentials and 25 IoT devices connect, one every
    0.5 s, and each is timed."""
    srv = ctx.srv
    fast = []
    for i in range(5):
        status, c = srv.api("POST", "/api/account/credentials/", ctx.tokens["canary"],
                            {"device": f"cred{i}", "label": "storm"})
        assert status == 201, (status, c)
        fast += [("canary", c["password"])] * 5
    for i in range(25):
        status, d = srv.api("POST", "/api/iot/devices/", ctx.tokens["bob"],
                            {"device_id": f"storm-dev-{i}"})
        assert status in (200, 201), (status, d)
        fast.append((d["username"], d["password"]))
    n = 2000
    connected_at = [None] * n
    refusals = {}
    socks = []
    t0 = time.time()
    fast_times = []

    def fast_clients():
        for i, (user, pw) in enumerate(fast):
            time.sleep(max(0, t0 + 0.5 + i * 0.5 - time.time()))
            if not srv.alive():
                break
            t = time.time()
            try:
                sock, rc = raw_connect(srv.mqtt_port, f"fast-{i}", user, pw, timeout=5)
                fast_times.append(time.time() - t if rc == 0 else None)
                if sock:
                    sock.close()
            except OSError:
                fast_times.append(None)

    fast_thread = threading.Thread(target=fast_clients, daemon=True)
    fast_thread.start()

    async def phone(i, deadline):
        while time.time() < deadline and srv.alive():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", srv.mqtt_port, local_addr=(f"127.0.1.{i % 100 + 1}", 0)), 10)
                writer.write(connect_packet(f"storm-phone-{i}", f"storm{i % STORM_ACCOUNTS:02}",
                                            PASSWORD, keepalive=600))
                kind, body = await asyncio.wait_for(async_read_packet(reader),
                                                    max(0.1, deadline - time.time()))
                rc = body[1] if kind == 2 and len(body) > 1 else f"type {kind}"
                if rc == 0:
                    connected_at[i] = time.time() - t0
                    socks.append(writer)
                    return
                refusals[rc] = refusals.get(rc, 0) + 1
                writer.close()
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                key = e.__class__.__name__
                refusals[key] = refusals.get(key, 0) + 1
            await asyncio.sleep(1 + random.random())

    async def storm():
        deadline = t0 + 150
        await asyncio.gather(*(phone(i, deadline) for i in range(n)))
        if srv.alive():
            await asyncio.sleep(3)  # all 2,000 held: the RSS of the connected storm
        for w in socks:
            w.close()

    asyncio.run(storm())
    fast_thread.join()
    done = [t for t in connected_at if t is not None]
    ok = [t for t in fast_times if t is not None]
    ctx.check_alive("reconnect storm")
    return {
        "password logins connected": f"{len(done)}/{n}",
        "time until all connected (s)": round(max(done), 1) if len(done) == n else None,
        "median / p90 connect time (s)": (
            f"{sorted(done)[len(done) // 2]:.1f} / {sorted(done)[int(len(done) * 0.9)]:.1f}"
            if done else None),
        "refusals / errors before connecting": refusals,
        "credential/device clients < 1 s (5 s timeout)":
            f"{sum(1 for t in ok if t < 1)}/{len(fast)}",
        "credential/device slowest (ms)": round(max(ok) * 1000) if ok else None,
    }


ATTACKS = {
    "deep": (attack_deep, {}),
    "subscriptions": (attack_subscriptions, {}),
    "wrong-password": (attack_wrong_password, {}),
    "telemetry": (attack_telemetry, {}),
    "idle-http": (attack_idle_http, {"nofile": 1024}),
    "stalled": (attack_stalled, {}),
    "storm": (attack_storm, {"storm_accounts": STORM_ACCOUNTS}),
}


def main():
    if sys.argv[1:2] == ["table"]:  # bench/abuse.py table LABEL=results.json ...
        runs = [(arg.split("=", 1)[0], json.load(open(arg.split("=", 1)[1])))
                for arg in sys.argv[2:]]
        print_table([dict(r, build=label) for label, results in runs for r in results],
                    by_attack=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("attacks", nargs="*", default=list(ATTACKS))
    ap.add_argument("--rss-cap-mib", type=int, default=3072,
                    help="kill the server when its RSS grows this far above the baseline")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the data dirs and server logs (printed at each attack)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = tempfile.mkdtemp(prefix="mytracks-abuse-")
    bench = Bench(os.path.abspath(args.binary), args.rss_cap_mib, root, args.keep)
    results = []
    for name in args.attacks:
        fn, opts = ATTACKS[name]
        results.append(bench.run(name, fn, **opts))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print_table(results)


def print_table(results, by_attack=False):
    """One row per attack (with `by_attack`: per attack and build, attacks together)."""
    if by_attack:
        order = list(dict.fromkeys(r["attack"] for r in results))
        results = sorted(results, key=lambda r: order.index(r["attack"]))
    build = "| build " if by_attack else ""
    print(f"| attack {build}| server up | peak RSS over baseline | canary acked / stored / sent "
          "| canary p99 | what the attack saw |")
    print("|---|---|---|---|---|---|" + ("---|" if by_attack else ""))
    for r in results:
        c = r["canary"]
        up = "yes" if r["up"] else ("killed at cap" if r["killed_at_cap"]
                                    else "crashed: " + "; ".join(r["crashes"]))
        p99 = "n/a" if c["sent"] == 0 else (
            f"{c['p99_ms']:.0f} ms" if c["p99_ms"] != float("inf")
            else f"∞ ({c['undelivered']} undelivered)")
        notes = "; ".join(
            f"{k}: " + (", ".join(f"{kk} {vv}" for kk, vv in v.items()) if isinstance(v, dict)
                        else str(v))
            for k, v in r["notes"].items())
        if r.get("server_log"):
            notes += "; server log: " + ", ".join(f"{v}x '{k}'" for k, v in r["server_log"].items())
        build = f" {r['build']} |" if by_attack else ""
        print(f"| {r['attack']} |{build} {up} | {'≥ ' if r['killed_at_cap'] else ''}"
              f"+{r['peak_over_baseline_mib']} MiB (base {r['baseline_mib']}) | "
              f"{c['acked']} / {r['stored'] if r['stored'] is not None else 'no answer'} / "
              f"{c['sent']} | {p99} | {notes} |")


if __name__ == "__main__":
    main()
