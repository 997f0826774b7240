"""The forwarder after ``bessai run`` repaired the spool at start-up.

A repair that moves the records after a damaged line to a new segment brings back
records the broker acknowledged: they are skipped. A torn tail cut after a power cut
lets the writer number new records with seqs already delivered: those are forwarded.
Each test runs the real ``bessai run`` against the simulator on loopback for the repair.
"""

import collections
import os

import orjson

from bessai_edge.spool import stats
from bessai_edge.spool.segments import list_segments
from tests.forward.conftest import RecordWriter, wait_until
from tests.loop.conftest import gateway_env, run_gateway, simulator

DELIVERY_TIMEOUT_S = 60
GATEWAY_CYCLES = 4
PROFILE = "huawei_sun2000"


def deliver_all(start_forwarder, subscriber, seqs):
    """Forward ``seqs`` with a forwarder that stops afterwards, saving its checkpoint."""
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(seqs, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0
    return forwarder


def run_repair(tmp_path, spool_dir):
    """Run ``bessai run`` for a few cycles, which repairs the spool at its start."""
    with simulator("--profile", PROFILE) as (host, port):
        environ = gateway_env(spool_dir, INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, GATEWAY_CYCLES)
    assert run.returncode == 0, run.stderr
    return run


def line_offsets(path):
    """Return the byte offset of each line of ``path``."""
    offsets, offset = [], 0
    with open(path, "rb") as stream:
        for line in stream:
            offsets.append(offset)
            offset += len(line)
    return offsets


def overwrite_line_with_nul(path, index):
    """Overwrite line ``index`` (0-based) of ``path``, newline aside, with NUL bytes."""
    data = bytearray(path.read_bytes())
    start = line_offsets(path)[index]
    end = data.index(b"\n", start)
    data[start:end] = b"\0" * (end - start)
    path.write_bytes(bytes(data))


def telemetry_boots(subscriber):
    """Map each telemetry seq to the list of the boot_ids it arrived with."""
    boots = collections.defaultdict(list)
    for topic, payload, _retain in subscriber.snapshot():
        if topic.endswith("/telemetry"):
            record = orjson.loads(payload)
            boots[record["seq"]].append(record["boot_id"])
    return boots


def test_forward_skips_records_moved_by_repair(tmp_path, mosquitto, subscriber, spool_dir,
                                                start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024 * 1024)
    delivered = writer.append(600)
    writer.close()
    deliver_all(start_forwarder, subscriber, delivered)
    segment = list_segments(spool_dir)[0].path
    overwrite_line_with_nul(segment, 299)   # the record with seq 300

    run = run_repair(tmp_path, spool_dir)
    assert "and the 300 records after them to 00000000000000000301.jsonl" in run.stderr
    new_seqs = list(range(601, 601 + GATEWAY_CYCLES))
    subscriber.wait_quiet()
    before = len(subscriber.telemetry_seqs())

    forwarder = deliver_all(start_forwarder, subscriber, new_seqs)
    subscriber.wait_quiet()
    resent = subscriber.telemetry_seqs()[before:]
    assert resent == new_seqs
    log = forwarder.log_text()
    assert "went back" not in log
    assert "spool segment 301 has records from 301 on that the broker acknowledged" in log


def test_forward_sends_new_records_with_reused_seqs(tmp_path, mosquitto, subscriber, spool_dir,
                                                     start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024 * 1024)
    delivered = writer.append(300)
    writer.close()
    deliver_all(start_forwarder, subscriber, delivered)

    # A power cut: the last 50 lines never reached the disk, and the state file still
    # contains the last_seq saved before them, as the writer saves it when it opens.
    segment = list_segments(spool_dir)[0].path
    os.truncate(segment, line_offsets(segment)[250])
    state = stats.load_state(str(spool_dir))
    state["last_seq"] = 200
    stats.save_state(str(spool_dir), state)

    run = run_repair(tmp_path, spool_dir)
    assert "next sequence number 251" in run.stderr
    reused = list(range(251, 251 + GATEWAY_CYCLES))
    forwarder = start_forwarder()
    assert wait_until(lambda: all(len(telemetry_boots(subscriber)[seq]) >= 2
                                  for seq in reused), DELIVERY_TIMEOUT_S)
    subscriber.wait_quiet()
    assert forwarder.stop() == 0

    boots = telemetry_boots(subscriber)
    for seq in reused:
        assert len(boots[seq]) == 2, f"record {seq}: {boots[seq]}"
        assert boots[seq][0] == "boot-1"
        assert boots[seq][1] != "boot-1"
    assert all(len(boots[seq]) == 1 for seq in range(1, 251))
    log = forwarder.log_text()
    assert "sequence number went back from 300 to 251 at spool segment 251" in log
    assert "was written in another boot than record 300" in log
    assert "was the spool directory replaced" not in log


def test_forward_gap_names_set_aside_file(tmp_path, mosquitto, subscriber, spool_dir,
                                          start_forwarder):
    # The gap was blamed on eviction, a full disk or a deletion by hand.
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024 * 1024)
    written = writer.append(600)
    writer.close()
    segment = list_segments(spool_dir)[0].path
    overwrite_line_with_nul(segment, 299)   # the record with seq 300

    run = run_repair(tmp_path, spool_dir)
    corrupt = f"{segment.name}.corrupt"
    assert f"moved them to {corrupt}" in run.stderr, run.stderr
    expected = [seq for seq in written if seq != 300]
    forwarder = deliver_all(start_forwarder, subscriber, expected)
    log = forwarder.log_text()
    assert (f"sequence gap: records 300 to 300 (1) are not in the spool; they were set "
            f"aside as damaged lines in {corrupt} by the start-up repair of bessai run") in log
    assert "evicted" not in log
