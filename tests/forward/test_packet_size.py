"""A broker's maximum packet size: a larger record is held back, not sent into a disconnect.

Mosquitto 2.0.11 with ``max_packet_size`` announces the limit in its MQTT 5 CONNACK and
closes the connection of a client that sends a larger packet, without a PUBACK. Before
the forwarder read the announcement, such a record went out after every backoff and
the log showed only lost connections, with a hint about a shared client id.
"""

import time

import paho.mqtt.client as mqtt

from bessai_edge.forward.session import publish_packet_size
from tests.forward.broker import Mosquitto, Subscriber
from tests.forward.conftest import RecordWriter, wait_until
from tests.forward.test_publish_rejected import (DELIVERY_TIMEOUT_S, MAX_ATTEMPTS, OBSERVE_S,
                                                 assert_all_delivered, assert_held_at,
                                                 error_lines, forward_one_large_record,
                                                 forwarder_connections, start_forwarder)

LIMIT = 1400
TOPIC = "bessai/SITE-TEST-001/battery/telemetry"


def publish_once(port, payload):
    """Publish ``payload`` at QoS 1 over MQTT 5; return "acknowledged" or "disconnected"."""
    outcome = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_publish = lambda *args: outcome.append("acknowledged")
    client.on_disconnect = lambda *args: outcome.append("disconnected")
    client.connect("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            client.loop(0.05)
        client.publish(TOPIC, payload, qos=1)
        while not outcome and time.monotonic() < deadline:
            client.loop(0.05)
    finally:
        client.disconnect()
    return outcome[0] if outcome else "no answer"


def test_packet_at_limit_accepted_by_mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker", max_packet_size=LIMIT).start()
    try:
        overhead = publish_packet_size(TOPIC, b"x" * 1000) - 1000   # two length bytes
        assert publish_packet_size(TOPIC, b"x" * (LIMIT - overhead)) == LIMIT
        assert publish_once(broker.port, b"x" * (LIMIT - overhead)) == "acknowledged"
        assert publish_once(broker.port, b"x" * (LIMIT - overhead + 50)) == "disconnected"
    finally:
        broker.stop()


def test_packet_size_length_bytes():
    # One length byte up to 127 bytes after the fixed header, two up to 16,383.
    assert publish_packet_size("t", b"x" * 121) == 1 + 1 + 127
    assert publish_packet_size("t", b"x" * 122) == 1 + 2 + 128
    assert publish_packet_size("é", b"") == 1 + 1 + 2 + 2 + 2 + 1


def test_forward_oversized_record_held(tmp_path, spool_dir, state_dir):
    broker = Mosquitto(tmp_path / "broker", max_packet_size=LIMIT).start()
    subscriber, writer, large_seq, forwarder = forward_one_large_record(
        tmp_path, broker, spool_dir, state_dir)
    try:
        assert forwarder.wait_for_log("maximum packet size"), forwarder.log_text()
        before = forwarder_connections(broker)
        time.sleep(OBSERVE_S)
        attempts = forwarder_connections(broker) - before
        assert 1 <= attempts <= MAX_ATTEMPTS, attempts
        assert_held_at(spool_dir, state_dir, writer, large_seq)
        assert "oversize packet" not in broker.log_text()   # it was never sent
        errors = error_lines(forwarder.log_text())
        assert len(errors) == 1, errors
        assert (f"record {large_seq} on topic {TOPIC} needs a PUBLISH packet of") in errors[0]
        assert f"accepts at most {LIMIT} (its maximum packet size): not sent" in errors[0]
        assert "raise the broker's max_packet_size well above" in errors[0]
        assert "MQTT_CLIENT_ID" not in forwarder.log_text()

        # Mosquitto 2.0.11 keeps the old limit after SIGHUP, although its manual says
        # the option is reloaded: only a restart applies it.
        broker.restart_with(f"max_packet_size {LIMIT}", "max_packet_size 100000")
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
        assert forwarder.wait_for_log(f"accepted record {large_seq} on topic {TOPIC}")
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert_all_delivered(exit_status, subscriber, writer, state_dir)


def test_forward_oversized_alarm_state_skipped(tmp_path, spool_dir, state_dir):
    # After a reconnect the forwarder publishes each device's alarm state again. One that
    # the broker took before but that exceeds a lowered max_packet_size made the broker
    # close every new connection, so no record was delivered any more.
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port).start()
    writer = RecordWriter(spool_dir, devices=("battery", "inverter"), segment_max_bytes=8192)
    writer.active["battery"] = [f"cell_{index:02d}_temp_c:high_warn" for index in range(60)]
    writer.append(4)
    writer.spool.flush()
    forwarder = start_forwarder(tmp_path, broker, spool_dir, state_dir)

    try:
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
        alarm_topic = "bessai/SITE-TEST-001/battery/alarms"
        alarm_size = max(len(payload) for topic, payload, retain in subscriber.messages
                         if topic == alarm_topic)
        assert alarm_size > LIMIT

        broker.stop()
        broker = Mosquitto(tmp_path / "broker", port=broker.port,
                           max_packet_size=LIMIT).start()
        # From now on only the inverter writes records; they fit under the limit.
        writer.factories = [factory for factory in writer.factories
                            if factory.device == "inverter"]
        inverter_seqs = writer.append(5)
        writer.spool.flush()

        assert subscriber.wait_for_seqs(inverter_seqs, DELIVERY_TIMEOUT_S) == set()
        assert wait_until(lambda: "did not publish the retained alarm message on topic "
                          f"{alarm_topic} again" in forwarder.log_text())
        assert f"accepts at most {LIMIT} (its maximum packet size)" in forwarder.log_text()
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert exit_status == 0
    writer.close()
