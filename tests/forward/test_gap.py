"""Records the spool evicted under its size cap show as a sequence gap, to receivers and in the log."""

import re

from bessai_edge.spool.segments import list_segments
from tests.forward.conftest import RecordWriter, first_arrivals

DELIVERY_TIMEOUT_S = 60


def surviving_seqs(writer, spool_dir):
    """The appended seqs still in the spool: those from the oldest segment on."""
    oldest = list_segments(spool_dir)[0].first_seq
    return [seq for seq in writer.seqs if seq >= oldest]


def test_forward_evicted_records_show_as_gap(mosquitto, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=64 * 1024)
    delivered_before = writer.append(20)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(delivered_before, DELIVERY_TIMEOUT_S) == set()

    # While the broker is away the spool fills past its cap and evicts the oldest
    # undelivered segments.
    mosquitto.stop()
    assert forwarder.wait_for_log("MQTT outage started")
    writer.append(1000)
    writer.spool.flush()
    assert writer.spool.stats()["records_evicted"] > 0
    surviving = surviving_seqs(writer, spool_dir)
    mosquitto.start()

    assert subscriber.wait_for_seqs(surviving, DELIVERY_TIMEOUT_S) == set()
    received = first_arrivals(subscriber.telemetry_seqs())
    assert received == delivered_before + surviving
    # A receiver gets exactly one jump in seq, over the evicted records.
    jumps = [(a, b) for a, b in zip(received, received[1:]) if b != a + 1]
    assert jumps == [(delivered_before[-1], surviving[0])]

    assert forwarder.stop() == 0
    gap_lines = [line for line in forwarder.log_text().splitlines() if "sequence gap" in line]
    assert len(gap_lines) == 1
    first_missing, last_missing = delivered_before[-1] + 1, surviving[0] - 1
    assert re.search(rf"records {first_missing} to {last_missing} \({last_missing - first_missing + 1}\)"
                     r" are not in the spool", gap_lines[0])
    # A segment deleted by hand leaves the same gap, so the line names that cause too.
    assert "or deleted from the spool directory by hand" in gap_lines[0]
    assert "WARNING" in gap_lines[0]
    writer.close()


def test_forward_gap_after_restart_from_checkpoint(mosquitto, subscriber, spool_dir,
                                                   start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024, max_total_bytes=64 * 1024)
    delivered_before = writer.append(20)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(delivered_before, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0

    # Eviction while the forwarder is stopped: the gap lies between the checkpoint and
    # the oldest surviving record.
    writer.append(1000)
    writer.spool.flush()
    surviving = surviving_seqs(writer, spool_dir)
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(surviving, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    assert first_arrivals(subscriber.telemetry_seqs()) == delivered_before + surviving
    assert f"sequence gap: records {delivered_before[-1] + 1} to {surviving[0] - 1}" in \
        forwarder.log_text()
    writer.close()


def test_forward_spool_replaced_starts_again(mosquitto, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    first = writer.append(200)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(first, DELIVERY_TIMEOUT_S) == set()
    writer.close()

    # Someone empties the spool directory; the writer numbers records from 1 again.
    for path in spool_dir.iterdir():
        path.unlink()
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    again = writer.append(30)
    writer.spool.flush()
    assert again == list(range(1, 31))
    assert forwarder.wait_for_log("the spool was emptied or replaced", timeout=30)
    deadline_seqs = subscriber.wait_quiet(quiet_s=1.0)
    telemetry = subscriber.telemetry_seqs()
    assert deadline_seqs and telemetry[len(first):] == again
    assert forwarder.stop() == 0
    writer.close()


def test_forward_spool_replaced_while_stopped(mosquitto, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    first = writer.append(200)
    writer.close()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(first, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0

    # The spool is emptied while the forwarder is stopped. The new spool numbers from 1
    # again and grows past the checkpoint's segment before the forwarder starts, so its
    # segment numbers alone cannot show the reset.
    for path in spool_dir.iterdir():
        path.unlink()
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    again = writer.append(300)
    writer.close()
    assert list_segments(spool_dir)[-1].first_seq > first[-1]
    received_before = len(subscriber.telemetry_seqs())

    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs([again[-1]], DELIVERY_TIMEOUT_S) == set()
    subscriber.wait_quiet(quiet_s=1.0)
    assert forwarder.stop() == 0
    received = subscriber.telemetry_seqs()[received_before:]
    assert first_arrivals(received) == again
    assert "the spool was emptied or replaced" in forwarder.log_text()
    assert "starting at the oldest record in the spool (the checkpoint belongs to a replaced " \
           "spool)" in forwarder.log_text()


def test_forward_old_checkpoint_beyond_reset_spool(mosquitto, subscriber, spool_dir, state_dir,
                                                   start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024)
    records = writer.append(200)
    writer.close()
    assert len(list_segments(spool_dir)) > 2

    # A checkpoint saved by a version without spool ids, for a spool that numbered far
    # past this one before it was emptied: only its segment number shows the reset.
    (state_dir / "forward-checkpoint.json").write_text(
        '{"version": 1, "segment": 5000, "offset": 100, "seq": 5050}\n')
    forwarder = start_forwarder()

    assert subscriber.wait_for_seqs(records, 30) == set()
    assert forwarder.stop() == 0
    assert first_arrivals(subscriber.telemetry_seqs()) == records
    assert "the spool was emptied or replaced" in forwarder.log_text()
