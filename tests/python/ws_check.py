"""MQTT over WebSocket with paho-mqtt: subscribe and publish through /mqtt, check delivery.

Usage: ws_check.py HOST PORT PATH PROTOCOL [CAFILE]   (PROTOCOL: 311 or 5; CAFILE: use WSS)
Exits 0 on success.
"""
import sys
import threading
import paho.mqtt.client as mqtt

host, port, path, protocol = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cafile = sys.argv[5] if len(sys.argv) > 5 else None
version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
received = threading.Event()
subscribed = threading.Event()
payloads = []


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code != 0:
        print(f"CONNACK refused: {reason_code}")
        sys.exit(1)
    client.subscribe("ws/test", qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


def on_message(client, userdata, message):
    payloads.append(message.payload)
    received.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ws-" + protocol, protocol=version, transport="websockets")
client.ws_set_options(path=path)
if cafile:
    client.tls_set(ca_certs=cafile)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(host, port, keepalive=30)
client.loop_start()
if not subscribed.wait(10):
    print("no SUBACK over WebSocket")
    sys.exit(1)
# A payload larger than one frame's worth of small writes, to cross frame boundaries.
payload = b"x" * 100_000
client.publish("ws/test", payload, qos=1).wait_for_publish(10)
if not received.wait(10):
    print("message not delivered over WebSocket")
    sys.exit(1)
client.disconnect()
client.loop_stop()
if payloads != [payload]:
    print(f"wrong payloads: {[len(p) for p in payloads]}")
    sys.exit(1)
print("ok")
