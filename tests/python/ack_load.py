#!/usr/bin/env python3
"""Publishes OwnTracks locations at QoS 1 as fast as the broker acknowledges them, and prints
the `tst` of each acknowledged one (one per line, flushed), until COUNT are acknowledged or the
connection drops. Used by the crash test: every printed `tst` must be in the database after
a `kill -9` and a restart.

    python3 ack_load.py PORT USER PASSWORD DEVICE FIRST_TST COUNT
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt

port, user, password, device, first, count = sys.argv[1:7]
port, first, count = int(port), int(first), int(count)
topic = f"owntracks/{user}/{device}"
done = threading.Event()
pending = {}
early = set()
lock = threading.Lock()
acked = 0


def report(tst):
    global acked
    print(tst, flush=True)
    acked += 1
    if acked >= count:
        done.set()


def on_publish(client, userdata, mid, reason_code, properties):
    # Never block on `lock` while paho holds its own locks around callbacks for long: the
    # main thread takes `lock` only for dictionary updates, never around `publish`.
    with lock:
        tst = pending.pop(mid, None)
        if tst is None:
            early.add(mid)  # acknowledged before the main thread recorded it
            return
    report(tst)


def on_disconnect(client, userdata, flags, reason_code, properties):
    done.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"load-{device}", protocol=mqtt.MQTTv311)
client.username_pw_set(user, password)
client.max_inflight_messages_set(50)
client.max_queued_messages_set(0)
client.on_publish = on_publish
client.on_disconnect = on_disconnect
client.connect("127.0.0.1", port, keepalive=60)
client.loop_start()
for i in range(count):
    if done.is_set():
        break
    tst = first + i
    payload = json.dumps({"_type": "location", "lat": 52.0 + i * 1e-5, "lon": 13.0, "tst": tst, "tid": "ld"})
    info = client.publish(topic, payload, qos=1)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        break
    with lock:
        now = info.mid in early
        if now:
            early.discard(info.mid)
        else:
            pending[info.mid] = tst
    if now:
        report(tst)
done.wait(60)
client.loop_stop()
