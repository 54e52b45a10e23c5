#!/usr/bin/env python3
"""An IoT device simulator for mytracks' device platform, built on paho-mqtt 2.x.

Run by the Rust integration tests (crates/mytracks/tests/it/iot_paho.rs) against a freshly
started `mytracks serve`, and usable by hand against any server (register a device first with
`mytracks device add ID --owner USER` or `POST /api/iot/devices/`, which print its password):

    python3 tests/python/iot_device.py --port 1883 --device sensor-1 --password PW \\
        --will --online --listen --telemetry 10

The device logs in with its id as username (client id: the device id unless --client-id) and
lives under `<base>/devices/<id>/` (see README.md, "IoT devices"). It runs these steps, in
this order, each one only when asked for:

1. connect, with `--will`: a will on `status/offline` (QoS 1) that the broker publishes
   when the connection dies without DISCONNECT (the server marks the device offline from it);
2. `--online`: publish `status/online` (QoS 1, or 0 with `--status-qos 0`). The server takes presence from the topic
   alone; neither is retained, because online and offline are two topics: retaining both
   would show late subscribers two contradicting retained states;
3. `--listen`: subscribe at QoS 2 to its own `commands/#` and, with `--group G`, to
   `<base>/fleet/G/commands`; every command received is printed and, with `--ack auto` (the
   default), answered on `commands/ack` with `{"command_id", "status": "ok", "result"}`
   (the server keeps the whole answer as the command's response and matches `command_id`);
   `--ack manual` answers only when told so on stdin, `--ack never` not at all;
4. `--telemetry N`: publish N JSON messages `{"temperature": 15.0 + 0.25 * seq, "seq": seq}`
   on `telemetry/<--suffix>` at QoS 1, one at a time, each after the previous one's PUBACK
   (the server acknowledges after the database commit); "failed" lists the readings whose
   PUBACK carried an error (0x80 and above: MQTT 5's 0x10 No matching subscribers is a success);
5. `--probe-publish TOPIC` (repeatable): publish `{"probe": true}` at QoS 1 on a topic,
   typically outside the device's lane, and report the PUBACK's reason code (MQTT 5 carries
   0x87 Not authorized; 3.1.1 cannot say no, so the broker acknowledges and drops);
6. `--probe-subscribe FILTER` (repeatable): subscribe at QoS 1 and report the SUBACK codes;
7. `--then`: `serve` (the default) reads control lines on stdin until `disconnect` or EOF;
   `exit` disconnects cleanly at once; `crash` drops the connection without DISCONNECT.

Control lines on stdin (`serve`), one per line:

    ack COMMAND_ID        answer a command (any id, known or not: forged answers are tests too)
    telemetry N           publish N more telemetry messages (numbered after the previous ones)
    online | heartbeat | offline     publish that status
    probe-publish TOPIC   as --probe-publish
    probe-subscribe FILTER           as --probe-subscribe
    crash                 close the TCP connection without DISCONNECT and exit 0
    disconnect            send DISCONNECT (the will is discarded) and exit 0

Everything the device sees or does is printed on stdout as one JSON object per line, flushed
at once, with an "event" field: connected, connect_failed, status, subscribed, telemetry,
telemetry_done, command, message (anything received that is not one of its commands: it
should never happen), ack_sent, probe_publish, probe_subscribe, ready (setup done), crashed,
disconnected (the broker or the network closed the connection), error, bye. Reason codes are
integers (0x87 = 135). Exit status 0 on success, 1 on an error (an "error" event says which),
2 when paho-mqtt 2.x is missing, 3 when the server refuses the login.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import sys
import threading
import time

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(
        json.dumps(
            {
                "event": "error",
                "message": f"paho-mqtt 2.x is not importable by {sys.executable} ({err}); "
                "install it with: python3 -m pip install paho-mqtt==2.1.0",
            }
        ),
        flush=True,
    )
    sys.exit(2)

if not paho.mqtt.__version__.startswith("2."):
    print(
        json.dumps(
            {
                "event": "error",
                "message": f"paho-mqtt {paho.mqtt.__version__} found, 2.x needed; "
                "install it with: python3 -m pip install paho-mqtt==2.1.0",
            }
        ),
        flush=True,
    )
    sys.exit(2)

PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}
# How long to wait for any one answer of the broker (CONNACK, PUBACK, SUBACK).
ANSWER_TIMEOUT = 10.0

_print_lock = threading.Lock()


def emit(event: str, **fields) -> None:
    """One JSON line on stdout, flushed at once (the test reads it while we run)."""
    line = json.dumps({"event": event, **fields}, sort_keys=True, separators=(",", ":"))
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def code_of(reason) -> int:
    """A paho reason code (a ReasonCode, or an int for some 3.1.1 paths) as an integer."""
    return reason.value if hasattr(reason, "value") else int(reason)


def decode(payload: bytes):
    """The payload as JSON if it is JSON, else as text."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


class Failure(Exception):
    pass


class Device:
    """One simulated device: a paho client driven by our own network-loop thread (no automatic
    reconnection: a dropped connection must stay visible to the test)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.id = args.device
        self.prefix = f"{args.base}/devices/{self.id}"
        self.fleet = f"{args.base}/fleet/{args.group}/commands" if args.group else None
        kwargs = {"clean_session": True} if args.protocol == "v311" else {}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=args.client_id or self.id,
            protocol=PROTOCOLS[args.protocol],
            **kwargs,
        )
        self.client.username_pw_set(self.id, args.password)
        if args.will:
            self.client.will_set(
                f"{self.prefix}/status/offline",
                json.dumps({"state": "offline", "reason": "will"}),
                qos=1,
                retain=False,
            )
        self.cond = threading.Condition()
        self.connack = None
        self.puback: dict[int, int] = {}
        self.suback: dict[int, list[int]] = {}
        self.commands: dict[str, dict] = {}
        self.closed = False
        self.next_seq = 0
        self.actions: queue.Queue = queue.Queue()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- callbacks (network-loop thread: they never wait for the broker) ---

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.connack = (bool(flags.session_present), code_of(reason_code))
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        emit("disconnected", reason_code=code_of(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.cond:
            self.puback[mid] = code_of(reason_code)
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.suback[mid] = [code_of(code) for code in reason_codes]
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        payload = decode(msg.payload)
        fields = {
            "topic": msg.topic,
            "qos": msg.qos,
            "retain": bool(msg.retain),
            "dup": bool(msg.dup),
            "payload": payload,
        }
        if not self._is_command(msg.topic):
            emit("message", **fields)
            return
        emit("command", **fields)
        command_id = payload.get("command_id") if isinstance(payload, dict) else None
        if isinstance(command_id, str):
            with self.cond:
                self.commands[command_id] = payload
            if self.args.ack == "auto":
                # Answered by the main thread: waiting for the PUBACK here would block the loop.
                self.actions.put(f"ack {command_id}")

    def _is_command(self, topic: str) -> bool:
        own = topic.startswith(f"{self.prefix}/commands/") and topic != f"{self.prefix}/commands/ack"
        return own or (self.fleet is not None and topic == self.fleet)

    # --- waiting for the broker ---

    def _wait(self, predicate, what: str):
        deadline = time.monotonic() + ANSWER_TIMEOUT
        with self.cond:
            while True:
                result = predicate()
                if result is not None:
                    return result
                if self.closed:
                    raise Failure(f"connection closed while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Failure(f"no {what} within {ANSWER_TIMEOUT} s")
                self.cond.wait(remaining)

    def _loop(self):
        while not self._stop:
            if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                break

    # --- steps ---

    def connect(self) -> bool:
        kwargs = {"clean_start": True} if self.args.protocol == "v5" else {}
        try:
            self.client.connect(self.args.host, self.args.port, keepalive=self.args.keepalive, **kwargs)
        except OSError as err:
            raise Failure(f"cannot connect to {self.args.host}:{self.args.port}: {err}")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        session_present, code = self._wait(lambda: self.connack, "CONNACK")
        if code != 0:
            emit("connect_failed", reason_code=code)
            return False
        emit("connected", protocol=self.args.protocol, session_present=session_present,
             client_id=self.args.client_id or self.id, will=self.args.will)
        return True

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> int:
        """Publishes and waits for the acknowledgement; returns its reason code."""
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        info = self.client.publish(topic, text, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Failure(f"publish to {topic} failed locally: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return 0
        mid = info.mid
        return self._wait(lambda: self.puback.pop(mid, None), f"PUBACK for {topic}")

    def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """Subscribes and waits for the SUBACK; returns its reason codes."""
        rc, mid = self.client.subscribe(filters)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise Failure(f"subscribe {filters} failed locally: {mqtt.error_string(rc)}")
        return self._wait(lambda: self.suback.pop(mid, None), f"SUBACK for {filters}")

    def status(self, state: str):
        qos = self.args.status_qos
        code = self.publish(f"{self.prefix}/status/{state}",
                            {"state": state, "time": int(time.time())}, qos=qos)
        emit("status", state=state, qos=qos, reason_code=code)

    def listen(self):
        filters = [(f"{self.prefix}/commands/#", 2)]
        if self.fleet is not None:
            filters.append((self.fleet, 2))
        codes = self.subscribe(filters)
        emit("subscribed", filters=[f for f, _ in filters], reason_codes=codes)

    def telemetry(self, count: int):
        topic = f"{self.prefix}/telemetry/{self.args.suffix}"
        started = time.monotonic()
        failed = []
        for _ in range(count):
            seq = self.next_seq
            self.next_seq += 1
            code = self.publish(topic, {"temperature": 15.0 + 0.25 * seq, "seq": seq}, qos=1)
            emit("telemetry", topic=topic, seq=seq, reason_code=code)
            if code >= 0x80:  # below 0x80 is a success (MQTT 5 adds 0x10 No matching subscribers)
                failed.append(seq)
        emit("telemetry_done", topic=topic, count=count, failed=failed,
             seconds=round(time.monotonic() - started, 3))

    def ack(self, command_id: str):
        with self.cond:
            command = self.commands.get(command_id)
        if command is None:
            result = {"device": self.id, "known": False}
        else:
            result = {"device": self.id, "command": command.get("command"),
                      "parameters": command.get("parameters")}
        answer = {"command_id": command_id, "status": "ok", "result": result}
        code = self.publish(f"{self.prefix}/commands/ack", answer, qos=1)
        emit("ack_sent", command_id=command_id, payload=answer, reason_code=code)

    def probe_publish(self, topic: str):
        code = self.publish(topic, {"probe": True}, qos=1)
        emit("probe_publish", topic=topic, reason_code=code)

    def probe_subscribe(self, topic_filter: str):
        codes = self.subscribe([(topic_filter, 1)])
        emit("probe_subscribe", filter=topic_filter, reason_codes=codes)

    def crash(self):
        """Vanish without DISCONNECT: the broker must publish the will. The socket is shut
        down first, at once (what was published just before stays just before)."""
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        emit("crashed")
        os._exit(0)

    def disconnect(self):
        self.client.disconnect()
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        emit("bye")

    # --- stdin control ---

    def serve(self):
        threading.Thread(target=self._read_stdin, daemon=True).start()
        while True:
            line = self.actions.get()
            if line is None or line == "disconnect":
                self.disconnect()
                return
            self.do(line)

    def _read_stdin(self):
        for line in sys.stdin:
            line = line.strip()
            if line:
                self.actions.put(line)
        self.actions.put(None)

    def do(self, line: str):
        verb, _, rest = line.partition(" ")
        rest = rest.strip()
        if verb == "ack" and rest:
            self.ack(rest)
        elif verb == "telemetry" and rest.isdigit():
            self.telemetry(int(rest))
        elif verb in ("online", "heartbeat", "offline"):
            self.status(verb)
        elif verb == "probe-publish" and rest:
            self.probe_publish(rest)
        elif verb == "probe-subscribe" and rest:
            self.probe_subscribe(rest)
        elif verb == "crash":
            self.crash()
        else:
            emit("error", message=f"unknown control line {line!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--device", required=True, help="the device id (its MQTT username)")
    p.add_argument("--password", required=True)
    p.add_argument("--client-id", default=None, help="default: the device id")
    p.add_argument("--base", default="iot", help="the server's [iot] base_topic")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="v5")
    p.add_argument("--group", default=None, help="its fleet (for --listen)")
    p.add_argument("--keepalive", type=int, default=30)
    p.add_argument("--will", action="store_true", help="will on status/offline")
    p.add_argument("--online", action="store_true", help="publish status/online")
    p.add_argument("--status-qos", type=int, choices=[0, 1], default=1,
                   help="QoS of status messages (0: no PUBACK to wait for)")
    p.add_argument("--listen", action="store_true", help="subscribe to its commands (QoS 2)")
    p.add_argument("--ack", choices=["auto", "manual", "never"], default="auto")
    p.add_argument("--telemetry", type=int, default=0, metavar="N")
    p.add_argument("--suffix", default="temperature", help="telemetry topic suffix")
    p.add_argument("--probe-publish", action="append", default=[], metavar="TOPIC")
    p.add_argument("--probe-subscribe", action="append", default=[], metavar="FILTER")
    p.add_argument("--then", choices=["serve", "exit", "crash"], default="serve")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    device = Device(args)
    try:
        if not device.connect():
            return 3
        if args.online:
            device.status("online")
        if args.listen:
            device.listen()
        if args.telemetry:
            device.telemetry(args.telemetry)
        for topic in args.probe_publish:
            device.probe_publish(topic)
        for topic_filter in args.probe_subscribe:
            device.probe_subscribe(topic_filter)
        emit("ready", device=device.id)
        if args.then == "crash":
            device.crash()
        elif args.then == "exit":
            device.disconnect()
        else:
            device.serve()
        return 0
    except Failure as failure:
        emit("error", message=str(failure))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
