#!/usr/bin/env python3
"""MQTT protocol scenarios checked with a real third-party client (paho-mqtt 2.x).

Run by the Rust integration tests (crates/mytracks/tests/it/paho.rs) against a freshly started
`mytracks serve`, but any MQTT broker allowing anonymous clients works, which is how the
scenarios themselves are validated (e.g. Debian's mosquitto 2.0 with `allow_anonymous true`,
`max_keepalive 60`, persistence on):

    python3 tests/python/mqtt_scenarios.py SCENARIO --port 1883 [--protocol v5] [--phase before]

Exit status 0 and a last line `OK <scenario>` on success; otherwise a `FAIL: ...` line saying
what was expected and what happened, and exit status 1 (2 when paho-mqtt is missing).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import traceback
import uuid

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(
        f"FAIL: paho-mqtt 2.x is not importable by {sys.executable} ({err}); "
        "install it with: python3 -m pip install paho-mqtt==2.1.0"
    )
    sys.exit(2)

if not paho.mqtt.__version__.startswith("2."):
    print(
        f"FAIL: paho-mqtt {paho.mqtt.__version__} found, 2.x needed; "
        "install it with: python3 -m pip install paho-mqtt==2.1.0"
    )
    sys.exit(2)

HOST = "127.0.0.1"
PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}
# How long to keep listening for messages that must NOT arrive.
QUIET = 1.0


class Fail(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Fail(message)


def describe(msg: mqtt.MQTTMessage) -> str:
    props = ""
    if msg.properties is not None and str(msg.properties) != "[]":
        props = f" props={msg.properties}"
    return (
        f"<{msg.topic!r} {msg.payload!r} qos={msg.qos} retain={int(msg.retain)} "
        f"dup={int(msg.dup)}{props}>"
    )


def props(packet_type: int, **values) -> Properties:
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def prop(msg: mqtt.MQTTMessage, name: str, default=None):
    if msg.properties is None:
        return default
    return getattr(msg.properties, name, default)


class Client:
    """A paho client driven by our own loop thread (no automatic reconnection), recording
    everything the broker sends so scenarios can wait for it."""

    def __init__(
        self,
        port: int,
        protocol: str = "v5",
        client_id: str = "",
        clean: bool = True,
        session_expiry: int | None = None,
        will: tuple | None = None,
        will_props: Properties | None = None,
        connect_props: dict | None = None,
        keepalive: int = 30,
        manual_ack: bool = False,
        name: str | None = None,
    ):
        self.port = port
        self.protocol = protocol
        self.name = name or client_id or "client"
        self.v5 = protocol == "v5"
        kwargs = {}
        if not self.v5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=PROTOCOLS[protocol],
            **kwargs,
        )
        self.clean = clean
        self.keepalive = keepalive
        self.connect_props = dict(connect_props or {})
        if session_expiry is not None:
            self.connect_props["SessionExpiryInterval"] = session_expiry
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos, retain, properties=will_props)
        if manual_ack:
            self.c.manual_ack_set(True)
        self.cond = threading.Condition()
        self.messages: list[tuple[float, mqtt.MQTTMessage]] = []
        self.connack = None
        self.disconnects: list[tuple[float, int, object]] = []
        self.subacks: dict[int, list] = {}
        self.unsubacks: set[int] = set()
        self.published: set[int] = set()
        self._stop = False
        self._thread = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        # paho 2.1.0 ignores the reason code of a DISCONNECT shorter than 3 bytes of remaining
        # length (it reports "Normal disconnection"): record the reason byte ourselves.
        self.disconnect_packets: list[int] = []
        original_handle_disconnect = self.c._handle_disconnect

        def handle_disconnect():
            packet = self.c._in_packet
            code = packet["packet"][0] if packet["remaining_length"] >= 1 else 0
            with self.cond:
                self.disconnect_packets.append(code)
                self.cond.notify_all()
            return original_handle_disconnect()

        self.c._handle_disconnect = handle_disconnect

    # --- callbacks (loop thread) ---
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.connack = (flags, reason_code, properties)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((time.monotonic(), msg))
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            value = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
            self.disconnects.append((time.monotonic(), value, reason_code))
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.subacks[mid] = reason_codes
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.unsubacks.add(mid)
            self.cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.cond:
            self.published.add(mid)
            self.cond.notify_all()

    # --- helpers ---
    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Fail(f"{self.name}: timed out after {timeout}s waiting for {what}")
                self.cond.wait(remaining)

    def _loop(self):
        while not self._stop:
            rc = self.c.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break

    def connect(self, expect_success: bool = True, timeout: float = 10.0):
        kwargs = {}
        if self.v5:
            kwargs["clean_start"] = self.clean
            if self.connect_props:
                kwargs["properties"] = props(PacketTypes.CONNECT, **self.connect_props)
        try:
            self.c.connect(HOST, self.port, keepalive=self.keepalive, **kwargs)
        except OSError as err:
            raise Fail(f"{self.name}: cannot connect to {HOST}:{self.port}: {err}")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self.wait(lambda: self.connack is not None or self.disconnects, timeout, "CONNACK")
        if expect_success:
            check(
                self.connack is not None and not self.connack[1].is_failure,
                f"{self.name}: connection refused or dropped: connack={self.connack} "
                f"disconnects={self.disconnects}",
            )
        return self

    @property
    def session_present(self) -> bool:
        return bool(self.connack[0].session_present)

    @property
    def connack_props(self):
        return self.connack[2]

    def stop_loop(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def abrupt_close(self):
        """Close the TCP connection without sending DISCONNECT."""
        self.stop_loop()
        sock = self.c.socket()
        check(sock is not None, f"{self.name}: no socket to close")
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def disconnect(self, reason: int | None = None, session_expiry: int | None = None):
        kwargs = {}
        if self.v5 and reason is not None:
            kwargs["reasoncode"] = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
        if self.v5 and session_expiry is not None:
            kwargs["properties"] = props(PacketTypes.DISCONNECT, SessionExpiryInterval=session_expiry)
        self.c.disconnect(**kwargs)
        try:
            self.wait(lambda: self.disconnects, 5, "disconnect to complete")
        finally:
            self.stop_loop()

    def subscribe(self, topic: str, qos: int = 1, options: SubscribeOptions | None = None,
                  sub_id: int | None = None, expect_granted: int | None = None):
        kwargs = {}
        if sub_id is not None:
            kwargs["properties"] = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id)
        if options is not None:
            result, mid = self.c.subscribe(topic, options=options, **kwargs)
            qos = options.QoS
        else:
            result, mid = self.c.subscribe(topic, qos, **kwargs)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe({topic}) failed: {result}")
        self.wait(lambda: mid in self.subacks, 10, f"SUBACK for {topic!r}")
        codes = self.subacks[mid]
        code = codes[0]
        value = code.value if hasattr(code, "value") else int(code)
        granted = qos if expect_granted is None else expect_granted
        check(
            value == granted,
            f"{self.name}: SUBACK for {topic!r} returned {code!r} ({value}), expected granted QoS {granted}",
        )
        return self

    def unsubscribe(self, topic: str):
        result, mid = self.c.unsubscribe(topic)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: unsubscribe failed: {result}")
        self.wait(lambda: mid in self.unsubacks, 10, f"UNSUBACK for {topic!r}")

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False,
                properties: Properties | None = None, wait: bool = True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish({topic}) failed: {info.rc}")
        if wait and qos > 0:
            self.wait(lambda: info.mid in self.published, 10,
                      f"{'PUBACK' if qos == 1 else 'PUBCOMP'} for publish to {topic!r}")
        return info

    def wait_messages(self, count: int, timeout: float = 10.0, topic: str | None = None):
        def enough():
            return len(self.received(topic)) >= count
        try:
            self.wait(enough, timeout, f"{count} message(s){'' if topic is None else ' on ' + topic}")
        except Fail as err:
            raise Fail(f"{err}; received so far: {self.describe_received()}")
        return self.received(topic)

    def received(self, topic: str | None = None) -> list[mqtt.MQTTMessage]:
        with self.cond:
            return [m for _, m in self.messages if topic is None or m.topic == topic]

    def received_timed(self) -> list[tuple[float, mqtt.MQTTMessage]]:
        with self.cond:
            return list(self.messages)

    def describe_received(self) -> str:
        return "[" + ", ".join(describe(m) for m in self.received()) + "]"

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [m.payload for m in self.received(topic)]

    def clear(self):
        with self.cond:
            self.messages.clear()


def quiet(seconds: float = QUIET):
    time.sleep(seconds)


def expect_exactly(client: Client, expected: list[bytes], what: str, topic: str | None = None,
                   timeout: float = 10.0):
    """Wait until `expected` payloads arrived, then make sure nothing else follows."""
    if expected:
        client.wait_messages(len(expected), timeout, topic)
    quiet()
    got = client.payloads(topic)
    check(got == expected, f"{what}: expected payloads {expected}, got {client.describe_received()}")


# ---------------------------------------------------------------------------------------------
# Scenarios. Each takes the parsed arguments; `a.prefix` is a topic prefix unique to the run.
# ---------------------------------------------------------------------------------------------


def scenario_will(a):
    """A will is published on an abrupt close, never on a clean DISCONNECT (v5: unless the
    reason is 0x04 Disconnect with Will Message)."""
    topic = f"{a.prefix}/will"
    watcher = Client(a.port, a.protocol, name="watcher").connect().subscribe(topic, 1)

    clean = Client(a.port, a.protocol, client_id=f"{a.prefix}-clean",
                   will=(topic, b"must-not-be-sent", 1, False), name="clean").connect()
    clean.disconnect()
    quiet()
    check(watcher.received() == [],
          f"a clean DISCONNECT must discard the will, but the watcher got {watcher.describe_received()}")

    if a.protocol == "v5":
        with_will = Client(a.port, a.protocol, client_id=f"{a.prefix}-0x04",
                           will=(topic, b"disconnect-0x04", 1, False), name="0x04").connect()
        with_will.disconnect(reason=0x04)
        msgs = watcher.wait_messages(1, 5)
        check(msgs[0].payload == b"disconnect-0x04",
              f"DISCONNECT with reason 0x04 must publish the will, got {watcher.describe_received()}")
        watcher.clear()

    dying = Client(a.port, a.protocol, client_id=f"{a.prefix}-dying",
                   will=(topic, b"gone", 1, False), name="dying").connect()
    dying.abrupt_close()
    msgs = watcher.wait_messages(1, 5)
    quiet(0.5)
    msgs = watcher.received()
    check(len(msgs) == 1 and msgs[0].payload == b"gone" and msgs[0].topic == topic,
          f"expected exactly one will 'gone' on {topic}, got {watcher.describe_received()}")
    check(msgs[0].qos == 1, f"will published at QoS 1 to a QoS 1 subscription, got {describe(msgs[0])}")
    check(not msgs[0].retain, f"will was not retained, got {describe(msgs[0])}")
    watcher.disconnect()


def scenario_keepalive_will(a):
    """A client that goes silent is disconnected after 1.5 x keepalive and its will published."""
    topic = f"{a.prefix}/ka"
    watcher = Client(a.port, a.protocol, name="watcher").connect().subscribe(topic, 1)
    silent = Client(a.port, a.protocol, client_id=f"{a.prefix}-silent", keepalive=1,
                    will=(topic, b"timed-out", 1, False), name="silent").connect()
    silent.stop_loop()  # socket stays open, nothing is sent any more (no PINGREQ)
    t0 = time.monotonic()
    msgs = watcher.wait_messages(1, 6)
    elapsed = watcher.received_timed()[0][0] - t0
    check(msgs[0].payload == b"timed-out", f"expected the will, got {watcher.describe_received()}")
    check(1.0 <= elapsed <= 4.0,
          f"keepalive 1 s: will expected after ~1.5 s of silence, it came after {elapsed:.2f} s")
    sock = silent.c.socket()
    if sock is not None:
        sock.close()
    watcher.disconnect()


def scenario_will_delay(a):
    """v5 Will Delay Interval 2: the will arrives no earlier than ~2 s after the abrupt close."""
    topic = f"{a.prefix}/delayed"
    watcher = Client(a.port, "v5", name="watcher").connect().subscribe(topic, 1)
    dying = Client(a.port, "v5", client_id=f"{a.prefix}-delayed", session_expiry=60,
                   will=(topic, b"late", 1, False),
                   will_props=props(PacketTypes.WILLMESSAGE, WillDelayInterval=2),
                   name="dying").connect()
    dying.abrupt_close()
    t0 = time.monotonic()
    watcher.wait_messages(1, 8)
    when, msg = watcher.received_timed()[0]
    elapsed = when - t0
    check(msg.payload == b"late", f"expected the delayed will, got {watcher.describe_received()}")
    check(elapsed >= 1.8, f"Will Delay Interval 2 s but the will arrived after {elapsed:.2f} s")
    check(elapsed <= 5.0, f"Will Delay Interval 2 s but the will arrived only after {elapsed:.2f} s")
    watcher.disconnect()


def scenario_will_delay_cancel(a):
    """Reconnecting (clean start 0) within the Will Delay Interval cancels the will."""
    topic = f"{a.prefix}/cancelled"
    cid = f"{a.prefix}-cancel"
    watcher = Client(a.port, "v5", name="watcher").connect().subscribe(topic, 1)
    dying = Client(a.port, "v5", client_id=cid, session_expiry=60,
                   will=(topic, b"must-not-be-sent", 1, False),
                   will_props=props(PacketTypes.WILLMESSAGE, WillDelayInterval=2),
                   name="first").connect()
    dying.abrupt_close()
    time.sleep(0.3)
    back = Client(a.port, "v5", client_id=cid, clean=False, session_expiry=60,
                  name="reconnected").connect()
    check(back.session_present, "reconnecting within the session expiry must find the session")
    quiet(3.0)
    check(watcher.received() == [],
          f"the will must be cancelled by the reconnection, watcher got {watcher.describe_received()}")
    back.disconnect(session_expiry=0)
    quiet()
    check(watcher.received() == [],
          f"the new connection had no will, watcher got {watcher.describe_received()}")
    watcher.disconnect()


def scenario_will_session_expiry(a):
    """The will is sent when the session ends if that comes before the will delay."""
    topic = f"{a.prefix}/expiring"
    watcher = Client(a.port, "v5", name="watcher").connect().subscribe(topic, 1)
    dying = Client(a.port, "v5", client_id=f"{a.prefix}-short", session_expiry=1,
                   will=(topic, b"session-ended", 1, False),
                   will_props=props(PacketTypes.WILLMESSAGE, WillDelayInterval=30),
                   name="dying").connect()
    dying.abrupt_close()
    t0 = time.monotonic()
    watcher.wait_messages(1, 6)
    when, msg = watcher.received_timed()[0]
    elapsed = when - t0
    check(msg.payload == b"session-ended", f"expected the will, got {watcher.describe_received()}")
    check(0.5 <= elapsed <= 4.0,
          f"session expiry 1 s < will delay 30 s: will expected after ~1 s, came after {elapsed:.2f} s")
    watcher.disconnect()


def scenario_session_resume(a):
    """Phase `before`: a persistent subscriber (QoS 1 and 2) receives one QoS 1 message without
    acknowledging it and goes away; more messages are published while it is offline, plus a
    retained one. The test harness may restart the broker here. Phase `after`: the session is
    present, the unacknowledged message comes again with DUP set, then the queued ones, in
    order; the subscriptions still work; the retained message is still there."""
    cid = f"{a.id}-sub"
    q1, q2, ret = f"{a.prefix}/q1", f"{a.prefix}/q2", f"{a.prefix}/retained"
    v5 = a.protocol == "v5"
    expiry = 3600 if v5 else None
    if a.phase == "before":
        sub = Client(a.port, a.protocol, client_id=cid, clean=v5, session_expiry=expiry,
                     manual_ack=True, name="subscriber").connect()
        sub.subscribe(q1, 1).subscribe(q2, 2)
        pub = Client(a.port, a.protocol, name="publisher").connect()
        pub.publish(q1, b"inflight", qos=1)
        msgs = sub.wait_messages(1, 5)
        check(msgs[0].payload == b"inflight", f"expected 'inflight', got {sub.describe_received()}")
        sub.abrupt_close()  # never acknowledged
        time.sleep(0.3)
        for payload in (b"m1", b"m2", b"m3"):
            pub.publish(q1, payload, qos=1)
        for payload in (b"n1", b"n2"):
            pub.publish(q2, payload, qos=2)
        pub.publish(ret, b"kept", qos=1, retain=True)
        pub.disconnect()
    elif a.phase == "after":
        sub = Client(a.port, a.protocol, client_id=cid, clean=False, session_expiry=expiry,
                     name="subscriber")
        sub.connect()
        check(sub.session_present, "CONNACK session present flag must be 1 for the persistent session")
        sub.wait_messages(6, 10)
        quiet()
        q1_msgs = sub.received(q1)
        q2_msgs = sub.received(q2)
        check([m.payload for m in q1_msgs] == [b"inflight", b"m1", b"m2", b"m3"],
              f"QoS 1 topic: expected inflight, m1, m2, m3 in order, got {sub.describe_received()}")
        check([m.payload for m in q2_msgs] == [b"n1", b"n2"],
              f"QoS 2 topic: expected n1, n2, got {sub.describe_received()}")
        check(q1_msgs[0].dup, f"the redelivered unacknowledged message must have DUP set: {describe(q1_msgs[0])}")
        check(all(m.qos == 1 for m in q1_msgs) and all(m.qos == 2 for m in q2_msgs),
              f"QoS must be kept: {sub.describe_received()}")
        sub.clear()
        pub = Client(a.port, a.protocol, name="publisher").connect()
        pub.publish(q1, b"live", qos=1)
        sub.wait_messages(1, 5)
        check(sub.payloads() == [b"live"], f"subscription must survive: {sub.describe_received()}")
        late = Client(a.port, a.protocol, name="late").connect().subscribe(ret, 1)
        msgs = late.wait_messages(1, 5)
        check(msgs[0].payload == b"kept" and msgs[0].retain,
              f"retained message must survive: {late.describe_received()}")
        pub.publish(ret, b"", qos=1, retain=True)  # clean up
        late.disconnect()
        pub.disconnect()
        sub.disconnect(session_expiry=0)
    else:
        raise Fail(f"unknown phase {a.phase!r} (before|after)")


def scenario_qos2(a):
    """QoS 2 both ways: 20 messages, each delivered exactly once, in order, at QoS 2."""
    topic = f"{a.prefix}/exactly-once"
    sub = Client(a.port, a.protocol, name="subscriber").connect().subscribe(topic, 2)
    pub = Client(a.port, a.protocol, name="publisher").connect()
    expected = [f"msg-{i}".encode() for i in range(20)]
    infos = [pub.publish(topic, p, qos=2, wait=False) for p in expected]
    pub.wait(lambda: all(i.mid in pub.published for i in infos), 10, "all PUBCOMPs")
    expect_exactly(sub, expected, "QoS 2 delivery")
    check(all(m.qos == 2 for m in sub.received()), f"delivered QoS must be 2: {sub.describe_received()}")
    pub.disconnect()
    sub.disconnect()


def scenario_shared(a):
    """$share/g/topic with two members: each message to exactly one member, all delivered;
    another group and a plain subscription each get everything."""
    topic = f"{a.prefix}/shared"
    m1 = Client(a.port, "v5", name="member1").connect().subscribe(f"$share/g/{topic}", 1)
    m2 = Client(a.port, "v5", name="member2").connect().subscribe(f"$share/g/{topic}", 1)
    other = Client(a.port, "v5", name="other-group").connect().subscribe(f"$share/h/{topic}", 1)
    plain = Client(a.port, "v5", name="plain").connect().subscribe(topic, 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    expected = [f"s{i}".encode() for i in range(20)]
    for p in expected:
        pub.publish(topic, p, qos=1, wait=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(m1.received()) + len(m2.received()) < 20:
        time.sleep(0.05)
    plain.wait_messages(20, 10)
    other.wait_messages(20, 10)
    quiet()
    got = m1.payloads() + m2.payloads()
    check(sorted(got) == sorted(expected),
          f"group g: each message exactly once across members; member1 got {m1.payloads()}, "
          f"member2 got {m2.payloads()}")
    check(all(m.topic == topic for m in m1.received() + m2.received()),
          "shared deliveries must carry the real topic, not the $share filter")
    check(plain.payloads() == expected, f"plain subscription: {plain.describe_received()}")
    check(other.payloads() == expected, f"group h (single member): {other.describe_received()}")
    for c in (m1, m2, other, plain, pub):
        c.disconnect()


def scenario_topic_alias(a):
    """A publish that sets Topic Alias 1, then one with an empty topic and alias 1: the
    subscriber (which allows no aliases) gets both with the full topic and no alias."""
    topic = f"{a.prefix}/aliased/topic"
    sub = Client(a.port, "v5", name="subscriber").connect().subscribe(topic, 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    maximum = getattr(pub.connack_props, "TopicAliasMaximum", 0)
    check(maximum >= 1, f"CONNACK must advertise Topic Alias Maximum >= 1, got {pub.connack_props}")
    pub.publish(topic, b"one", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    pub.publish("", b"two", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    expect_exactly(sub, [b"one", b"two"], "aliased publishes")
    for m in sub.received():
        check(m.topic == topic, f"delivery must carry the full topic: {describe(m)}")
        check(prop(m, "TopicAlias") is None,
              f"the subscriber allowed no aliases, but got one: {describe(m)}")
    check(not pub.disconnects, f"publisher was disconnected: {pub.disconnects}")
    pub.disconnect()
    sub.disconnect()


def scenario_subscription_ids(a):
    """Overlapping subscriptions with identifiers 1 and 2: one delivery carrying both."""
    base = f"{a.prefix}/sid"
    c = Client(a.port, "v5", name="subscriber").connect()
    c.subscribe(f"{base}/+", 1, sub_id=1)
    c.subscribe(f"{base}/#", 1, sub_id=2)
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(f"{base}/x", b"both", qos=1)
    expect_exactly(c, [b"both"], "overlapping subscriptions (one delivery)")
    ids = prop(c.received()[0], "SubscriptionIdentifier", [])
    check(sorted(ids) == [1, 2], f"expected subscription identifiers [1, 2], got {ids}: {c.describe_received()}")
    c.clear()
    pub.publish(f"{base}/x/y", b"only-hash", qos=1)
    expect_exactly(c, [b"only-hash"], "single matching subscription")
    ids = prop(c.received()[0], "SubscriptionIdentifier", [])
    check(ids == [2], f"expected subscription identifier [2], got {ids}")
    pub.disconnect()
    c.disconnect()


def scenario_overlap(a):
    """Overlapping subscriptions (QoS 0 and QoS 2) on one client: one delivery, at QoS 2."""
    base = f"{a.prefix}/ov"
    c = Client(a.port, a.protocol, name="subscriber").connect()
    c.subscribe(f"{base}/+", 0)
    c.subscribe(f"{base}/#", 2)
    pub = Client(a.port, a.protocol, name="publisher").connect()
    pub.publish(f"{base}/x", b"once", qos=2)
    expect_exactly(c, [b"once"], "overlapping subscriptions")
    check(c.received()[0].qos == 2, f"delivery must use the highest subscription QoS: {c.describe_received()}")
    pub.disconnect()
    c.disconnect()


def scenario_receive_maximum(a):
    """Client Receive Maximum 2 and no acknowledgements: never more than 2 unacked QoS 1
    deliveries; each PUBACK releases the next one."""
    topic = f"{a.prefix}/rm"
    sub = Client(a.port, "v5", connect_props={"ReceiveMaximum": 2}, manual_ack=True,
                 name="subscriber").connect().subscribe(topic, 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    expected = [f"r{i}".encode() for i in range(5)]
    for p in expected:
        pub.publish(topic, p, qos=1)
    sub.wait_messages(2, 5)
    quiet()
    check(sub.payloads() == expected[:2],
          f"with Receive Maximum 2 only 2 unacked deliveries allowed, got {sub.describe_received()}")
    acked = 0
    while acked < 5:
        msg = sub.received()[acked]
        sub.c.ack(msg.mid, msg.qos)
        acked += 1
        want = min(acked + 2, 5)
        sub.wait_messages(want, 5)
        time.sleep(0.3)
        check(len(sub.received()) == want,
              f"after {acked} PUBACK(s) exactly {want} deliveries expected, got {sub.describe_received()}")
    check(sub.payloads() == expected, f"order: {sub.describe_received()}")
    pub.disconnect()
    sub.disconnect()


def scenario_message_expiry(a):
    """Messages queued for an offline session expire; survivors carry a decremented Message
    Expiry Interval. Same for retained messages."""
    topic = f"{a.prefix}/exp"
    cid = f"{a.prefix}-exp"
    sub = Client(a.port, "v5", client_id=cid, session_expiry=300, name="subscriber").connect()
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(topic, b"short", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    pub.publish(topic, b"forever", qos=1)
    pub.publish(f"{a.prefix}/ret/short", b"r-short", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(f"{a.prefix}/ret/long", b"r-long", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.2)
    sub = Client(a.port, "v5", client_id=cid, clean=False, session_expiry=300,
                 name="subscriber").connect()
    check(sub.session_present, "session must be present")
    expect_exactly(sub, [b"long", b"forever"], "queued messages after 2.2 s (expiry 1 s dropped)")
    long_msg, forever = sub.received()
    remaining = prop(long_msg, "MessageExpiryInterval")
    check(remaining is not None and 1 <= remaining <= 59,
          f"Message Expiry Interval must be decremented by the ~2 s spent queued: {describe(long_msg)}")
    check(prop(forever, "MessageExpiryInterval") is None,
          f"a message without expiry must not get one: {describe(forever)}")
    sub.disconnect(session_expiry=0)
    late = Client(a.port, "v5", name="late").connect().subscribe(f"{a.prefix}/ret/#", 1)
    expect_exactly(late, [b"r-long"], "retained messages after 2.2 s")
    remaining = prop(late.received()[0], "MessageExpiryInterval")
    check(remaining is not None and 1 <= remaining <= 59,
          f"retained Message Expiry Interval must be decremented: {late.describe_received()}")
    pub.publish(f"{a.prefix}/ret/long", b"", qos=1, retain=True)
    late.disconnect()
    pub.disconnect()


def scenario_retain_handling(a):
    """Retain Handling 2: never; 1: only for a new subscription; 0: every time."""
    topic = f"{a.prefix}/rh/t"
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(topic, b"kept", qos=1, retain=True)
    c = Client(a.port, "v5", name="subscriber").connect()
    c.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
    quiet()
    check(c.received() == [], f"Retain Handling 2 must send no retained message: {c.describe_received()}")
    wild = f"{a.prefix}/rh/+"
    c.subscribe(wild, options=SubscribeOptions(qos=1, retainHandling=1))
    expect_exactly(c, [b"kept"], "Retain Handling 1 on a new subscription")
    check(c.received()[0].retain, f"retained delivery must have RETAIN set: {c.describe_received()}")
    c.clear()
    c.subscribe(wild, options=SubscribeOptions(qos=1, retainHandling=1))
    quiet()
    check(c.received() == [],
          f"Retain Handling 1 on an existing subscription must send nothing: {c.describe_received()}")
    c.subscribe(wild, options=SubscribeOptions(qos=1, retainHandling=0))
    expect_exactly(c, [b"kept"], "Retain Handling 0 on an existing subscription")
    pub.publish(topic, b"", qos=1, retain=True)
    pub.disconnect()
    c.disconnect()


def scenario_no_local(a):
    """No Local: the client does not get its own messages on that subscription."""
    nl, al = f"{a.prefix}/nl", f"{a.prefix}/all"
    c = Client(a.port, "v5", name="self").connect()
    c.subscribe(nl, options=SubscribeOptions(qos=1, noLocal=True))
    c.subscribe(al, options=SubscribeOptions(qos=1, noLocal=False))
    other = Client(a.port, "v5", name="other").connect()
    c.publish(nl, b"own-no-local", qos=1)
    c.publish(al, b"own-local-ok", qos=1)
    other.publish(nl, b"from-other", qos=1)
    c.wait_messages(2, 5)
    quiet()
    got = sorted(m.payload for m in c.received())
    check(got == [b"from-other", b"own-local-ok"],
          f"expected from-other and own-local-ok only, got {c.describe_received()}")
    other.disconnect()
    c.disconnect()


def scenario_retain_as_published(a):
    """Retain As Published keeps RETAIN on live deliveries; without it RETAIN is cleared."""
    topic = f"{a.prefix}/rap"
    keep = Client(a.port, "v5", name="rap").connect()
    keep.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
    clear = Client(a.port, "v5", name="no-rap").connect()
    clear.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(topic, b"r1", qos=1, retain=True)
    keep.wait_messages(1, 5)
    clear.wait_messages(1, 5)
    check(keep.received()[0].retain, f"Retain As Published: RETAIN must stay set: {keep.describe_received()}")
    check(not clear.received()[0].retain,
          f"without Retain As Published a live delivery has RETAIN 0: {clear.describe_received()}")
    late = Client(a.port, "v5", name="late").connect()
    late.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    late.wait_messages(1, 5)
    check(late.received()[0].retain, f"a retained delivery on subscribe has RETAIN 1: {late.describe_received()}")
    pub.publish(topic, b"", qos=1, retain=True)
    for c in (keep, clear, pub, late):
        c.disconnect()


def scenario_properties(a):
    """User properties (in order, duplicates kept), response topic, correlation data, content
    type and payload format indicator reach the subscriber unchanged."""
    topic = f"{a.prefix}/props"
    sub = Client(a.port, "v5", name="subscriber").connect().subscribe(topic, 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    user = [("b", "2"), ("a", "1"), ("b", "3"), ("empty", ""), ("ünï", "cødé")]
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = user
    p.ResponseTopic = f"{a.prefix}/reply"
    p.CorrelationData = b"\x00\x01corr\xff"
    p.ContentType = "application/json"
    p.PayloadFormatIndicator = 1
    pub.publish(topic, b'{"k":1}', qos=1, properties=p)
    msg = sub.wait_messages(1, 5)[0]
    check(prop(msg, "UserProperty") == user, f"user properties must be forwarded in order: {describe(msg)}")
    check(prop(msg, "ResponseTopic") == f"{a.prefix}/reply", f"response topic: {describe(msg)}")
    check(prop(msg, "CorrelationData") == b"\x00\x01corr\xff", f"correlation data: {describe(msg)}")
    check(prop(msg, "ContentType") == "application/json", f"content type: {describe(msg)}")
    check(prop(msg, "PayloadFormatIndicator") == 1, f"payload format indicator: {describe(msg)}")
    pub.disconnect()
    sub.disconnect()


def scenario_bad_topic(a):
    """A v5 client publishing to a topic with a wildcard is disconnected with 0x90; the broker
    keeps serving others."""
    c = Client(a.port, "v5", name="offender").connect()
    c.c._raise_for_invalid_topic = lambda topic: None  # let paho send the invalid topic
    # Not c.publish: the broker may answer so fast that paho has already dropped the socket
    # when its own write returns (rc MQTT_ERR_NO_CONN), which is the expected outcome here.
    info = c.c.publish(f"{a.prefix}/+/bad", b"x", qos=0)
    check(info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), f"publish failed: {info.rc}")
    c.wait(lambda: c.disconnects, 5, "being disconnected")
    check(c.disconnect_packets, "the connection was closed without a DISCONNECT packet (0x90 expected)")
    code = c.disconnect_packets[0]
    check(code == 0x90, f"expected DISCONNECT reason 0x90 (Topic Name invalid), got {code:#04x}")
    c.stop_loop()
    sub = Client(a.port, "v5", name="subscriber").connect().subscribe(f"{a.prefix}/ok", 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(f"{a.prefix}/ok", b"still-serving", qos=1)
    expect_exactly(sub, [b"still-serving"], "broker still serving")
    pub.disconnect()
    sub.disconnect()


def scenario_client_max_packet(a):
    """The broker never sends a client a packet larger than its Maximum Packet Size."""
    topic = f"{a.prefix}/mps"
    sub = Client(a.port, "v5", connect_props={"MaximumPacketSize": 256},
                 name="subscriber").connect().subscribe(topic, 1)
    pub = Client(a.port, "v5", name="publisher").connect()
    pub.publish(topic, b"x" * 1000, qos=1)
    pub.publish(topic, b"small", qos=1)
    expect_exactly(sub, [b"small"], "only the packet that fits")
    check(not sub.disconnects, f"subscriber must stay connected: {sub.disconnects}")
    pub.disconnect()
    sub.disconnect()


def scenario_connack_v5(a):
    """Assigned Client Identifier for an empty id; Server Keep Alive when the requested
    keepalive exceeds the broker's max_keepalive (the harness configures 60)."""
    c = Client(a.port, "v5", client_id="", keepalive=120, name="anonymous-id").connect()
    assigned = getattr(c.connack_props, "AssignedClientIdentifier", None)
    check(bool(assigned), f"CONNACK must carry an Assigned Client Identifier: {c.connack_props}")
    server_ka = getattr(c.connack_props, "ServerKeepAlive", None)
    check(server_ka == 60, f"keepalive 120 > max_keepalive 60: Server Keep Alive 60 expected, got {c.connack_props}")
    c.disconnect()


SCENARIOS = {
    name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="v5")
    parser.add_argument("--phase", default=None, help="for multi-phase scenarios (before|after)")
    parser.add_argument("--id", default=None, help="stable id shared by the phases of one run")
    a = parser.parse_args()
    if a.id is None:
        a.id = uuid.uuid4().hex[:10]
    a.prefix = f"it/{a.id}"
    started = time.monotonic()
    try:
        SCENARIOS[a.scenario](a)
    except Fail as err:
        print(f"FAIL: {a.scenario} ({a.protocol}{', ' + a.phase if a.phase else ''}): {err}")
        return 1
    except Exception:  # noqa: BLE001 - report anything unexpected as a failure
        traceback.print_exc(file=sys.stdout)
        print(f"FAIL: {a.scenario}: unexpected exception (see traceback above)")
        return 1
    print(f"OK {a.scenario} ({a.protocol}{', ' + a.phase if a.phase else ''}) "
          f"in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
