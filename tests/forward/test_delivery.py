"""Delivery through a real Mosquitto: backlog, order per device, alarms, outages.

Each test starts its own broker on a free loopback port and ``bessai forward`` as a
child process, and checks what a subscriber receives.
"""

import hashlib

import orjson
import pytest

from bessai_edge.forward.checkpoint import CheckpointFile
from bessai_edge.spool.segments import list_segments, segment_name
from tests.forward.broker import Subscriber
from tests.forward.conftest import RecordWriter, first_arrivals

DELIVERY_TIMEOUT_S = 60


def segment_digests(directory):
    return {segment.path.name: hashlib.sha256(segment.path.read_bytes()).hexdigest()
            for segment in list_segments(directory)}


def test_forward_backlog_delivered_in_order(mosquitto, subscriber, spool_dir, state_dir,
                                            start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    writer.append(3000, alarm_every=50)
    writer.spool.flush()
    forwarder = start_forwarder()

    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert subscriber.seqs_by_device() == writer.expected_by_device()
    assert forwarder.stop() == 0

    checkpoint = CheckpointFile(state_dir).load()
    assert checkpoint.seq == writer.seqs[-1]
    remaining = list_segments(spool_dir)
    # Every sealed segment before the checkpoint's segment was deleted, no other one.
    assert [segment.first_seq for segment in remaining][0] == checkpoint.segment
    assert len(remaining) <= 2
    writer.close()


def test_forward_never_writes_scan_loop_files(mosquitto, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=1024 ** 2)
    writer.append(500)
    writer.spool.flush()
    before = segment_digests(spool_dir)
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    assert segment_digests(spool_dir) == before  # the open segment is read, never written
    writer.close()


def test_forward_alarm_state_retained(mosquitto, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir)
    writer.append(40, alarm_every=5)   # alternately raises and clears soc_pct:low_warn
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0

    alarm_messages = [orjson.loads(payload) for topic, payload, _ in subscriber.snapshot()
                      if topic.endswith("/alarms")]
    # Each device's first record publishes its alarm state, and each alarm change does.
    first_of_each_device = writer.seqs[:2]
    assert [message["seq"] for message in alarm_messages] == first_of_each_device + [
        seq for seq in writer.seqs if seq % 5 == 0]
    assert [message["changes"] for message in alarm_messages[:2]] == [[], []]

    # A receiver that subscribes later gets the current alarm state of each device.
    late = Subscriber(mosquitto.port, "bessai/+/+/alarms", client_id="late",).start()
    try:
        late.wait_quiet()
        retained = {topic: orjson.loads(payload) for topic, payload, retain in late.snapshot()
                    if retain}
    finally:
        late.stop()
    last_by_device = {}
    for message in alarm_messages:
        last_by_device[message["device"]] = message
    assert retained == {f"bessai/SITE-TEST-001/{device}/alarms": message
                        for device, message in last_by_device.items()}
    writer.close()


@pytest.mark.parametrize("outage_records", [
    pytest.param(20, id="short-outage"),
    pytest.param(20000, id="long-outage-many-segments"),
])
def test_forward_broker_outage_delivers_everything(mosquitto, subscriber, spool_dir,
                                                   start_forwarder, outage_records):
    writer = RecordWriter(spool_dir, segment_max_bytes=64 * 1024)
    writer.append(200)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()

    mosquitto.stop()
    assert forwarder.wait_for_log("MQTT outage started")
    during = []
    for _ in range(10):   # the scan loop keeps appending while the broker is away
        during += writer.append(outage_records // 10)
        writer.spool.flush()
        forwarder.wait_for_log("no such line", timeout=0.1)
    mosquitto.start()
    writer.append(200)
    writer.spool.flush()

    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    expected = writer.expected_by_device()
    received = subscriber.seqs_by_device()
    for device, seqs in expected.items():
        assert first_arrivals(received[device]) == seqs, f"order of {device}"
    assert forwarder.wait_for_log("MQTT outage over")
    assert forwarder.stop() == 0
    log = forwarder.log_text()
    assert log.count("MQTT outage started") == 1
    assert log.count("MQTT outage over") == 1
    assert "MQTT outage goes on" not in log  # refusals after the loss are no new reason
    over = next(line for line in log.splitlines() if "MQTT outage over" in line)
    backlog = int(over.split("delivered the backlog of ")[1].split(" ")[0])
    assert backlog >= len(during)
    writer.close()


@pytest.mark.parametrize("last_seq, gap_text", [
    (3, "records 2 to 2 (1) were not forwarded: the damaged line skipped there (logged above)"),
    (5, "records 2 to 4 (3) were not forwarded: 1 damaged line skipped there (logged above); "
        "the others were evicted by the spool's size cap, dropped on a full disk, or deleted "
        "from the spool directory by hand"),
])
def test_forward_skips_unreadable_line(mosquitto, subscriber, spool_dir, state_dir,
                                       start_forwarder, last_seq, gap_text):
    # A sealed segment whose second line was damaged: not JSON, so not a record.
    lines = [orjson.dumps({"v": 1, "site": "S", "device": "inverter", "seq": seq,
                           "alarm_changes": []}) for seq in (1, 2, last_seq)]
    lines[1] = b'{"v": 1, "site": "S", "dev\x7f garbage'
    (spool_dir / segment_name(1)).write_bytes(b"\n".join(lines) + b"\n")
    (spool_dir / segment_name(last_seq + 1)).write_bytes(b"")   # the open segment
    forwarder = start_forwarder(FORWARD_CHECKPOINT_INTERVAL_S=0)
    assert subscriber.wait_for_seqs([1, last_seq], DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    assert subscriber.telemetry_seqs() == [1, last_seq]
    log = forwarder.log_text()
    assert f"spool segment 1: skipping the line that ends at offset {len(lines[0]) + len(lines[1]) + 2}" in log
    assert f"sequence gap: {gap_text}" in log
    # The skipped line was counted as a delivered record.
    assert (f"forwarder stopped: 2 records delivered since start, 1 damaged spool line "
            f"skipped, checkpoint after record {last_seq}") in log, log
    assert CheckpointFile(state_dir).load().seq == last_seq
    # Delivered, sealed and before the checkpoint: the damaged segment is gone too.
    assert [segment.first_seq for segment in list_segments(spool_dir)] == [last_seq + 1]


def test_forward_gap_names_lines_the_reader_skipped(mosquitto, subscriber, spool_dir,
                                                   start_forwarder):
    # A line with NUL bytes and a sealed segment's cut end are skipped by the reader, not
    # parsed: their gaps were blamed on eviction.
    def record(seq):
        return orjson.dumps({"v": 1, "site": "S", "device": "inverter", "seq": seq,
                             "alarm_changes": []})

    (spool_dir / segment_name(1)).write_bytes(
        record(1) + b"\n" + record(2).replace(b'"site"', b'"si\0e"') + b"\n" + record(3) + b"\n")
    (spool_dir / segment_name(4)).write_bytes(record(4) + b"\n" + record(5)[:20])
    (spool_dir / segment_name(6)).write_bytes(record(6) + b"\n")   # the open segment
    forwarder = start_forwarder(FORWARD_CHECKPOINT_INTERVAL_S=0)
    assert subscriber.wait_for_seqs([1, 3, 4, 6], DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    log = forwarder.log_text()
    assert ("sequence gap: records 2 to 2 (1) were not forwarded: the damaged line skipped "
            "there (logged above)") in log
    assert ("sequence gap: records 5 to 5 (1) were not forwarded: the damaged line skipped "
            "there (logged above)") in log
    assert "evicted" not in log
    assert ("forwarder stopped: 4 records delivered since start, 2 damaged spool lines "
            "skipped, checkpoint after record 6") in log, log


def test_forward_resumes_from_checkpoint_without_stamp(mosquitto, subscriber, spool_dir,
                                                       state_dir, start_forwarder):
    # Versions before boot_id and mono_s saved only these keys: their checkpoint must
    # still load, and the forwarder must resume after its record.
    from bessai_edge.spool import stats

    writer = RecordWriter(spool_dir)
    writer.append(20)
    writer.spool.flush()
    segment = list_segments(spool_dir)[0]
    with open(segment.path, "rb") as stream:
        offset = sum(len(next(stream)) for _ in range(10))
    spool_id, _first_seq = stats.load_identity(spool_dir)
    old = {"version": 1, "segment": segment.first_seq, "offset": offset,
           "seq": writer.seqs[9], "spool_id": spool_id}
    (state_dir / "forward-checkpoint.json").write_bytes(orjson.dumps(old))

    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs[10:], DELIVERY_TIMEOUT_S) == set()
    subscriber.wait_quiet()
    assert forwarder.stop() == 0
    writer.close()
    log = forwarder.log_text()
    assert f"resuming after record {writer.seqs[9]}" in log, log
    assert subscriber.telemetry_seqs() == writer.seqs[10:]
    saved = CheckpointFile(state_dir).load()
    assert saved.seq == writer.seqs[-1]
    assert saved.boot_id == "boot-1"
