#!/usr/bin/env python3
"""Subscribes to OwnTracks data exactly as Home Assistant's MQTT integration does, and reports
every message it receives.

Run by crates/mytracks/tests/it/home_assistant.rs. Home Assistant's MQTT integration is a
paho-mqtt client speaking MQTT 3.1.1 with a clean session and a random 22-character base62
client id (made from a uuid4, as `homeassistant/components/mqtt/client.py` does when no client
id is configured); its OwnTracks integration subscribes `owntracks/#` at QoS 1.

    python3 tests/python/ha_owntracks.py --port PORT --username U --password P [--topic T]

Standard output, one line each:
    SUBSCRIBED session_present=<0|1> granted=<qos>   once the SUBACK arrived
    MESSAGE <json>   {"topic", "qos", "retain", "payload_b64"} for every message, as received
    END              after standard input was closed and the client disconnected
Exit status 1 with a `FAIL: ...` line when the connection or subscription is refused or
nothing happens within 20 s; 2 when paho-mqtt 2.x is missing.
"""

from __future__ import annotations

import argparse
import base64
import json
import string
import sys
import threading
import uuid

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(
        f"FAIL: paho-mqtt 2.x is not importable by {sys.executable} ({err}); "
        "install it with: python3 -m pip install paho-mqtt==2.1.0"
    )
    sys.exit(2)

if not paho.mqtt.__version__.startswith("2."):
    print(f"FAIL: paho-mqtt 2.x needed, found {paho.mqtt.__version__}")
    sys.exit(2)

ALPHABET = string.digits + string.ascii_letters


def base62(num: int, padding: int) -> str:
    """`num` in base 62, left-padded with '0' to `padding` characters (HA's client id)."""
    digits = ""
    while num:
        num, rest = divmod(num, 62)
        digits = ALPHABET[rest] + digits
    return digits.rjust(padding, "0")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--topic", default="owntracks/#")
    args = parser.parse_args()

    out_lock = threading.Lock()

    def emit(line: str) -> None:
        with out_lock:
            print(line, flush=True)

    connected = threading.Event()
    subscribed = threading.Event()
    failure: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            failure.append(f"CONNACK refused: {reason_code}")
            connected.set()
            return
        userdata["session_present"] = int(flags.session_present)
        client.subscribe(args.topic, qos=1)
        connected.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        granted = reason_codes[0]
        if granted.is_failure:
            failure.append(f"SUBACK refused {args.topic}: {granted}")
        else:
            emit(f"SUBSCRIBED session_present={userdata['session_present']} granted={granted.value}")
        subscribed.set()

    def on_message(client, userdata, message):
        record = {
            "topic": message.topic,
            "qos": message.qos,
            "retain": int(message.retain),
            "payload_b64": base64.b64encode(message.payload).decode("ascii"),
        }
        emit("MESSAGE " + json.dumps(record))

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=base62(uuid.uuid4().int, padding=22),
        protocol=mqtt.MQTTv311,
        clean_session=True,
        userdata={},
    )
    client.username_pw_set(args.username, args.password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    if not connected.wait(20) or failure or not subscribed.wait(20) or failure:
        print("FAIL: " + ("; ".join(failure) or "no CONNACK/SUBACK within 20 s"), flush=True)
        client.loop_stop()
        return 1
    # The test closes standard input when it has seen what it waits for.
    sys.stdin.read()
    client.disconnect()
    client.loop_stop()
    emit("END")
    return 0


if __name__ == "__main__":
    sys.exit(main())
