"""Publishes that a real Mosquitto rejects: the records stay in the spool until it takes them.

Over MQTT 5 the PUBACK carries reason code 135 or 149, and the forwarder must not count
such a record as delivered. Over MQTT 3.1.1 a PUBACK cannot carry a reason: Mosquitto
2.0.11 acknowledges a publish its ACL denies in its default configuration, and closes
the connection instead with ``max_queued_messages 0``, which most tests here use.
"""

import time

import orjson
import pytest

from bessai_edge.forward.checkpoint import CheckpointFile
from bessai_edge.spool.segments import list_segments
from tests.forward.broker import Mosquitto, Subscriber
from tests.forward.conftest import (ForwarderProcess, RecordWriter, first_arrivals,
                                    forward_environment, wait_until)
from tests.forward.standin import BrokerStandIn

DELIVERY_TIMEOUT_S = 60
CLIENT_ID = "bessai-forward-test"
# Long enough for several attempts with the backoff of these tests (0.2 s doubling to 1 s,
# less up to 30 % jitter): at most about 8 in 5 s. A retry without backoff makes hundreds.
OBSERVE_S = 5.0
MAX_ATTEMPTS = 12
# ACL of the forwarder's anonymous connection: every topic may be read, and only the
# inverter's topics written, so the battery's records are rejected.
ACL_DENYING_BATTERY = "topic read #\ntopic readwrite bessai/SITE-TEST-001/inverter/#\n"
ACL_ALLOWING_ALL = "topic readwrite #\n"


def start_forwarder(tmp_path, broker, spool_dir, state_dir, **overrides):
    # The checkpoint is saved at once, so a checkpoint past a rejected record would show.
    environ = forward_environment(broker.port, spool_dir, state_dir,
                                  FORWARD_CHECKPOINT_INTERVAL_S=0, **overrides)
    return ForwarderProcess(environ, tmp_path / "forward.log").start()


def spool_seqs(spool_dir):
    """Return the seq of every record still in the spool's segment files."""
    seqs = []
    for segment in list_segments(spool_dir):
        for line in segment.path.read_bytes().splitlines():
            seqs.append(orjson.loads(line)["seq"])
    return seqs


def checkpoint_seq(state_dir):
    checkpoint = CheckpointFile(state_dir).load()
    return checkpoint.seq if checkpoint is not None else None


def error_lines(log):
    return [line for line in log.splitlines() if " ERROR " in line]


def forwarder_connections(broker, protocol_level=5):
    return broker.count_log(f"as {CLIENT_ID} (p{protocol_level},")


def assert_held_at(spool_dir, state_dir, writer, rejected_seq):
    """Check that nothing from ``rejected_seq`` on is checkpointed or deleted."""
    checkpoint = CheckpointFile(state_dir).load()
    before = [seq for seq in writer.seqs if seq < rejected_seq]
    assert checkpoint is not None
    assert checkpoint.seq == before[-1]
    remaining = set(spool_seqs(spool_dir))
    assert [seq for seq in writer.seqs if seq >= rejected_seq and seq not in remaining] == []


def assert_in_order(subscriber, writer):
    received = subscriber.seqs_by_device()
    for device, seqs in writer.expected_by_device().items():
        assert first_arrivals(received[device]) == seqs, f"order of {device}"


def assert_all_delivered(exit_status, subscriber, writer, state_dir):
    """Check a clean stop, every record in order, and the checkpoint at the last one."""
    assert exit_status == 0
    assert_in_order(subscriber, writer)
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    writer.close()


@pytest.fixture
def acl_file(tmp_path):
    path = tmp_path / "acl"
    path.write_text(ACL_DENYING_BATTERY)
    return path


@pytest.fixture
def acl_broker(tmp_path, acl_file):
    broker = Mosquitto(tmp_path / "broker", acl_file=acl_file).start()
    yield broker
    broker.stop()


def test_forward_acl_denied_record_kept_until_allowed(tmp_path, acl_broker, acl_file, spool_dir,
                                                      state_dir):
    subscriber = Subscriber(acl_broker.port).start()
    writer = RecordWriter(spool_dir, devices=("battery", "inverter", "inverter"),
                          segment_max_bytes=2048)
    writer.append(60)
    writer.spool.flush()
    rejected_seq = next(seq for seq in writer.seqs if writer.devices[seq] == "battery")
    forwarder = start_forwarder(tmp_path, acl_broker, spool_dir, state_dir)
    try:
        assert forwarder.wait_for_log("PUBACK reason code 135"), forwarder.log_text()
        before = forwarder_connections(acl_broker)
        time.sleep(OBSERVE_S)
        attempts = forwarder_connections(acl_broker) - before
        assert forwarder.process.poll() is None, "the forwarder stopped instead of retrying"
        assert_held_at(spool_dir, state_dir, writer, rejected_seq)

        errors = error_lines(forwarder.log_text())
        assert len(errors) == 1, errors    # rate-limited: once a minute at most
        assert (f"broker 127.0.0.1:{acl_broker.port} rejected record {rejected_seq} on topic "
                f"bessai/SITE-TEST-001/battery/telemetry") in errors[0]
        assert "PUBACK reason code 135 Not authorized" in errors[0]
        assert "ACL must allow publishing to this topic" in errors[0]
        assert "stay in the spool" in errors[0]
        assert 1 <= attempts <= MAX_ATTEMPTS, attempts

        acl_file.write_text(ACL_ALLOWING_ALL)
        acl_broker.reload()
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
        assert forwarder.wait_for_log(f"accepted record {rejected_seq} on topic "
                                      f"bessai/SITE-TEST-001/battery/telemetry")
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
    assert_all_delivered(exit_status, subscriber, writer, state_dir)


def test_forward_311_acl_denied_record_lost(tmp_path, acl_file, spool_dir, state_dir):
    # Over MQTT 3.1.1 Mosquitto 2.0.11 in its default configuration acknowledges a publish
    # its ACL denies. The docs and the start WARNING claimed that it closed the connection
    # and that the record stayed in the spool.
    broker = Mosquitto(tmp_path / "broker", acl_file=acl_file, max_queued_messages=None)
    broker.start()
    subscriber = Subscriber(broker.port).start()
    writer = RecordWriter(spool_dir, devices=("battery", "inverter", "inverter"),
                          segment_max_bytes=2048)
    writer.append(30)
    writer.spool.flush()
    battery_seqs = writer.expected_by_device()["battery"]
    forwarder = start_forwarder(tmp_path, broker, spool_dir, state_dir, MQTT_PROTOCOL="3.1.1")
    try:
        assert wait_until(lambda: checkpoint_seq(state_dir) == writer.seqs[-1],
                          DELIVERY_TIMEOUT_S), forwarder.log_text()
        subscriber.wait_quiet()
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert exit_status == 0
    # The checkpoint passed the battery's records, but none of them reached the subscriber.
    assert subscriber.seen
    assert subscriber.seen.isdisjoint(battery_seqs)
    log = forwarder.log_text()
    warning, = [line for line in log.splitlines() if "MQTT 3.1.1 cannot report" in line]
    assert " WARNING " in warning
    assert "makes the record count as delivered, and the record is lost" in warning
    assert "Mosquitto does so in its default configuration" in warning
    assert "Set MQTT_PROTOCOL=5, the default" in warning
    assert "reason code 135" in warning
    assert "MQTT outage" not in log
    writer.close()


def test_forward_311_connection_closed_on_denied_record(tmp_path, acl_broker, spool_dir,
                                                        state_dir):
    # With max_queued_messages 0 (no limit), Mosquitto 2.0.11 closes a 3.1.1 connection
    # on a publish its ACL denies. The record must stay in the spool, and the log named
    # only a duplicate client id as the cause.
    writer = RecordWriter(spool_dir, devices=("battery", "inverter", "inverter"),
                          segment_max_bytes=2048)
    writer.append(30)
    writer.spool.flush()
    rejected_seq = next(seq for seq in writer.seqs if writer.devices[seq] == "battery")
    forwarder = start_forwarder(tmp_path, acl_broker, spool_dir, state_dir,
                                MQTT_PROTOCOL="3.1.1")
    try:
        assert forwarder.wait_for_log("MQTT outage started"), forwarder.log_text()
        time.sleep(OBSERVE_S)
        assert forwarder.process.poll() is None, "the forwarder stopped instead of retrying"
        assert_held_at(spool_dir, state_dir, writer, rejected_seq)
    finally:
        assert forwarder.stop() == 0
    log = forwarder.log_text()
    assert ("or the broker's ACL may deny publishing under MQTT_TOPIC_PREFIX=bessai: its log "
            "tells which") in log, log
    writer.close()


def test_forward_denied_alarms_topic_does_not_repeat_telemetry(tmp_path, acl_file, spool_dir,
                                                               state_dir):
    # Only the battery's alarm topic is denied: its record's telemetry was taken, and the
    # whole record went out again on every attempt, a duplicate per attempt without bound.
    acl_file.write_text("topic read #\ntopic readwrite bessai/SITE-TEST-001/+/telemetry\n"
                        "topic readwrite bessai/SITE-TEST-001/inverter/alarms\n")
    broker = Mosquitto(tmp_path / "broker", acl_file=acl_file).start()
    subscriber = Subscriber(broker.port).start()
    writer = RecordWriter(spool_dir, devices=("battery", "inverter"), segment_max_bytes=2048)
    writer.append(20)
    writer.spool.flush()
    held_seq = next(seq for seq in writer.seqs if writer.devices[seq] == "battery")
    forwarder = start_forwarder(tmp_path, broker, spool_dir, state_dir)
    try:
        assert forwarder.wait_for_log("on topic bessai/SITE-TEST-001/battery/alarms"), \
            forwarder.log_text()
        # The test broker runs with max_queued_messages 0, with which Mosquitto 2.0.11
        # closes the connection after a rejecting PUBACK. That close may reset the
        # connection before the PUBACK is read, so the whole record may go once more.
        # After that, only its alarms message goes again.
        copies = subscriber.telemetry_seqs().count(held_seq)
        before = forwarder_connections(broker)
        time.sleep(OBSERVE_S)
        assert forwarder_connections(broker) - before >= 2, "too few attempts to tell"
        assert copies <= 2
        assert subscriber.telemetry_seqs().count(held_seq) == copies
        assert_held_at(spool_dir, state_dir, writer, held_seq)

        acl_file.write_text(ACL_ALLOWING_ALL)
        broker.reload()
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert exit_status == 0
    assert subscriber.telemetry_seqs().count(held_seq) == copies
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    writer.close()


def test_forward_restart_sends_a_rejected_record_alone(tmp_path, spool_dir, state_dir):
    # A restart forgot the held-back record and sent a whole window, and a broker that
    # took the smaller records behind it delivered them first. Mosquitto closes the
    # connection after such a rejection at a moment that depends on timing, so the
    # stand-in plays the broker that keeps it open (see standin.py).
    standin = BrokerStandIn(reject_larger_than=1000).start()
    writer = RecordWriter(spool_dir, segment_max_bytes=2048)
    writer.append(5)
    large_seq, = writer.append(1, extra_values={"padding": "x" * 1500})
    writer.append(20)
    writer.spool.flush()
    environ = forward_environment(standin.port, spool_dir, state_dir,
                                  FORWARD_CHECKPOINT_INTERVAL_S=0)
    first = ForwarderProcess(environ, tmp_path / "first.log").start()
    restarted = None
    try:
        assert first.wait_for_log("PUBACK reason code 149"), first.log_text()
        # Held back, the record goes alone after those before it: the checkpoint gets
        # to just before it, where a restart starts.
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            checkpoint = CheckpointFile(state_dir).load()
            if checkpoint is not None and checkpoint.seq == large_seq - 1:
                break
            time.sleep(0.1)
        assert first.stop() == 0
        assert CheckpointFile(state_dir).load().seq == large_seq - 1
        connections_before = len(standin.published_by(CLIENT_ID))
        restarted = ForwarderProcess(environ, tmp_path / "restarted.log").start()
        assert restarted.wait_for_log("PUBACK reason code 149"), restarted.log_text()
        published = [orjson.loads(payload)["seq"]
                     for connection in standin.published_by(CLIENT_ID)[connections_before:]
                     for topic, payload in connection if topic.endswith("/telemetry")]
    finally:
        if restarted is not None:
            restarted.stop()
        standin.stop()
    assert published and set(published) == {large_seq}, published
    writer.close()


def forward_one_large_record(tmp_path, broker, spool_dir, state_dir):
    """Start a subscriber and a forwarder on 21 records, the 11th of them about 2 kB.

    Return the subscriber, the writer, the large record's seq and the forwarder. The
    alarm messages stay small.
    """
    subscriber = Subscriber(broker.port).start()
    writer = RecordWriter(spool_dir, segment_max_bytes=4096)
    writer.append(10)
    large_seq, = writer.append(1, extra_values={"padding": "x" * 1500})
    writer.append(10)
    writer.spool.flush()
    forwarder = start_forwarder(tmp_path, broker, spool_dir, state_dir)
    return subscriber, writer, large_seq, forwarder


def test_forward_too_large_record_kept_until_limit_raised(tmp_path, spool_dir, state_dir):
    broker = Mosquitto(tmp_path / "broker", message_size_limit=1000).start()
    subscriber, writer, large_seq, forwarder = forward_one_large_record(
        tmp_path, broker, spool_dir, state_dir)
    try:
        assert forwarder.wait_for_log("PUBACK reason code 149"), forwarder.log_text()
        time.sleep(2)
        assert_held_at(spool_dir, state_dir, writer, large_seq)
        errors = error_lines(forwarder.log_text())
        assert len(errors) == 1, errors
        assert f"rejected record {large_seq} on topic" in errors[0]
        assert "PUBACK reason code 149 Packet too large" in errors[0]
        assert "raise the broker's message_size_limit well above" in errors[0]

        broker.restart_with("message_size_limit 1000", "message_size_limit 100000")
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert_all_delivered(exit_status, subscriber, writer, state_dir)


def test_forward_no_matching_subscribers_counts_as_delivered(tmp_path, mosquitto, spool_dir,
                                                             state_dir):
    # No subscriber: Mosquitto acknowledges each MQTT 5 publish with reason code 16.
    writer = RecordWriter(spool_dir, segment_max_bytes=2048)
    writer.append(30)
    writer.spool.flush()
    forwarder = start_forwarder(tmp_path, mosquitto, spool_dir, state_dir)
    try:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            checkpoint = CheckpointFile(state_dir).load()
            if checkpoint is not None and checkpoint.seq == writer.seqs[-1]:
                break
            time.sleep(0.1)
    finally:
        exit_status = forwarder.stop()
    assert exit_status == 0
    assert forwarder_connections(mosquitto) >= 1
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    assert error_lines(forwarder.log_text()) == []
    # Every sealed segment is delivered and deleted: only the open one is left.
    assert len(list_segments(spool_dir)) == 1
    writer.close()
