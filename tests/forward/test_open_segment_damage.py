"""A line with NUL bytes in the open segment: delivery waits for ``bessai run``, logged once."""

import socket
import time

from bessai_edge.spool.segments import list_segments
from tests.forward.conftest import RecordWriter, receive_notifications
from tests.forward.test_repaired_spool import line_offsets, overwrite_line_with_nul

DELIVERY_TIMEOUT_S = 60
DAMAGED_INDEX = 14   # the 15th line, the record with seq 15


def test_forward_reports_wait_for_repair(tmp_path, subscriber, spool_dir, start_forwarder):
    writer = RecordWriter(spool_dir, segment_max_bytes=16 * 1024 * 1024)
    writer.append(30)
    writer.close()
    segment = list_segments(spool_dir)[-1].path
    offset = line_offsets(segment)[DAMAGED_INDEX]
    overwrite_line_with_nul(segment, DAMAGED_INDEX)

    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    try:
        forwarder = start_forwarder(NOTIFY_SOCKET=notify_path)
        assert subscriber.wait_for_seqs(range(1, 15), DELIVERY_TIMEOUT_S) == set()
        # The reader polls the spool every 0.5 s: give it several polls at the damage.
        messages = receive_notifications(sock, time.monotonic() + 7.0)
    finally:
        sock.close()
    assert forwarder.stop() == 0

    assert subscriber.telemetry_seqs() == list(range(1, 15))
    expected = (f"the open spool segment {segment.name} has a line with NUL bytes at "
                f"offset {offset}: delivery waits there until bessai run repairs")
    warnings = [line for line in forwarder.log_text().splitlines() if expected in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    statuses = [data for data in messages if data.startswith("STATUS=")]
    assert statuses, messages
    assert (f"waiting for bessai run to repair NUL bytes in spool segment {segment.name} at "
            f"offset {offset}") in statuses[-1]
