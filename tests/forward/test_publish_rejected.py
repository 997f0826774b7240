"""Publishes that a real Mosquitto rejects: the records stay in the spool until it takes them.

Over MQTT 3.1.1, Mosquitto 2.0.11 acknowledges a publish that its ACL denies or that
exceeds ``message_size_limit`` with a plain PUBACK. Over MQTT 5 the PUBACK carries
reason code 135 or 149, and the forwarder must not count such a record as delivered.
"""

import time

import orjson
import pytest

from bessai_edge.forward.checkpoint import CheckpointFile
from bessai_edge.spool.segments import list_segments
from tests.forward.broker import Mosquitto, Subscriber
from tests.forward.conftest import (ForwarderProcess, RecordWriter, first_arrivals,
                                    forward_environment)

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
    assert exit_status == 0
    assert_in_order(subscriber, writer)
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    writer.close()


def test_forward_too_large_record_kept_until_limit_raised(tmp_path, spool_dir, state_dir):
    broker = Mosquitto(tmp_path / "broker", message_size_limit=1000).start()
    subscriber = Subscriber(broker.port).start()
    writer = RecordWriter(spool_dir, segment_max_bytes=2048)
    writer.append(10)
    # About 2 kB of telemetry, over the 1000-byte limit; alarm messages stay small.
    large_seq, = writer.append(1, extra_values={"padding": "x" * 1500})
    writer.append(10)
    writer.spool.flush()
    forwarder = start_forwarder(tmp_path, broker, spool_dir, state_dir)
    try:
        assert forwarder.wait_for_log("PUBACK reason code 149"), forwarder.log_text()
        time.sleep(2)
        assert_held_at(spool_dir, state_dir, writer, large_seq)
        errors = error_lines(forwarder.log_text())
        assert len(errors) == 1, errors
        assert f"rejected record {large_seq} on topic" in errors[0]
        assert "PUBACK reason code 149 Packet too large" in errors[0]
        assert "raise the broker's message_size_limit above" in errors[0]

        broker.stop()
        config = broker.config_path.read_text()
        broker.config_path.write_text(config.replace("message_size_limit 1000",
                                                     "message_size_limit 100000"))
        broker.start()
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    finally:
        subscriber.stop()
        exit_status = forwarder.stop()
        broker.stop()
    assert exit_status == 0
    assert_in_order(subscriber, writer)
    assert CheckpointFile(state_dir).load().seq == writer.seqs[-1]
    writer.close()


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
