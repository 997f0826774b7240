"""Crashes: kill -9 of ``bessai forward`` at random moments loses nothing, and each
restart sends again at most one in-flight window of records.

The seed of the random kill times is printed, so a failing run can be repeated with
``FORWARD_KILL_SEED=<seed>``.
"""

import os
import random
import time

from bessai_edge.forward.checkpoint import FILE_NAME
from tests.forward.conftest import RecordWriter, first_arrivals

KILLS = 50
WINDOW = 50
# Before each run the backlog is topped up to at least this many records, so that the
# kill lands while there is work in flight rather than on an idle forwarder.
MIN_BACKLOG = 15000
APPENDED_PER_KILL = 40   # the scan loop goes on appending between crashes


def duplicates_per_run(seqs, boundaries):
    """For each run (messages between two boundaries), count the messages that repeat a seq."""
    seen = set()
    counts = []
    start = 0
    for end in [*boundaries, len(seqs)]:
        run = seqs[start:end]
        new = set(run) - seen
        counts.append(len(run) - len(new))
        seen.update(run)
        start = end
    return counts


def test_forward_kill_loop_loses_nothing(mosquitto, subscriber, spool_dir, state_dir,
                                        start_forwarder):
    seed = int(os.environ.get("FORWARD_KILL_SEED", random.randrange(1 << 30)))
    print(f"FORWARD_KILL_SEED={seed}")
    rng = random.Random(seed)
    writer = RecordWriter(spool_dir, segment_max_bytes=256 * 1024)

    # How long a start takes on this machine, so that the kills cover the start-up and
    # the drain after it on slow and fast machines alike.
    writer.append(MIN_BACKLOG)
    writer.spool.flush()
    started = time.monotonic()
    forwarder = start_forwarder(MQTT_INFLIGHT=WINDOW)
    assert forwarder.wait_for_log("connected to MQTT broker")
    startup_s = time.monotonic() - started
    forwarder.kill()

    # Telemetry message count when each killed run had stopped sending. Alarm messages
    # are left out: each start publishes one per device, which would shift the runs.
    subscriber.wait_quiet(quiet_s=0.15)
    boundaries = [len(subscriber.telemetry_seqs())]
    progress = []        # distinct records delivered after each run
    appended = []        # records in the spool when each run was killed
    for _ in range(KILLS):
        backlog = len(writer.seqs) - (progress[-1] if progress else 0)
        if backlog < MIN_BACKLOG:
            writer.append(MIN_BACKLOG + 5000 - backlog)
        writer.spool.flush()
        forwarder = start_forwarder(MQTT_INFLIGHT=WINDOW)
        time.sleep(rng.uniform(0.0, startup_s + 0.5))
        forwarder.kill()
        appended.append(len(writer.seqs))
        subscriber.wait_quiet(quiet_s=0.15)
        boundaries.append(len(subscriber.telemetry_seqs()))
        progress.append(len(set(subscriber.telemetry_seqs())))
        writer.append(APPENDED_PER_KILL)
        writer.spool.flush()

    final = start_forwarder(MQTT_INFLIGHT=WINDOW)
    assert subscriber.wait_for_seqs(writer.seqs, 120) == set()
    assert final.stop() == 0

    seqs = subscriber.telemetry_seqs()
    assert first_arrivals(seqs) == writer.seqs          # nothing lost, spool order kept
    per_run = duplicates_per_run(seqs, boundaries)
    assert max(per_run) <= WINDOW, per_run
    # Most kills must hit a forwarder with a backlog to send, or the test proves little.
    kills_mid_backlog = sum(1 for total, done in zip(appended, progress) if done < total)
    assert kills_mid_backlog >= KILLS * 3 // 4, progress
    assert len(set(progress)) >= KILLS // 2, progress   # and most runs delivered something
    log = final.log_text()
    assert "is unreadable" not in log                   # every checkpoint survived its kill
    assert not (state_dir / (FILE_NAME + ".bad")).exists()
    writer.close()
