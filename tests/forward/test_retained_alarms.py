"""The retained alarm state comes back after a broker restart that lost it.

A real Mosquitto without persistence loses its retained messages when it restarts;
the forwarder, still running, must publish each device's alarm state again once it
has reconnected, without any new alarm change in the spool.
"""

import os
import time

import orjson

from tests.conftest import require_commands
from tests.forward.broker import MOSQUITTO, Mosquitto, Subscriber
from tests.forward.conftest import ForwarderProcess, RecordWriter, forward_environment

DELIVERY_TIMEOUT_S = 60
ALARM_FILTER = "bessai/+/+/alarms"


def retained_alarm_state(port, client_id):
    """Return {topic: alarm message} of the retained messages a new subscriber gets."""
    late = Subscriber(port, ALARM_FILTER, client_id=client_id).start()
    try:
        late.wait_quiet()
        return {topic: orjson.loads(payload) for topic, payload, retain in late.snapshot()
                if retain}
    finally:
        late.stop()


def test_forward_republishes_alarm_state_after_broker_restart(tmp_path, spool_dir, state_dir):
    if not os.path.exists(MOSQUITTO):
        require_commands("mosquitto")
    broker = Mosquitto(tmp_path / "broker", persistence=False).start()
    writer = RecordWriter(spool_dir)
    writer.append(40, alarm_every=5)   # alternately raises and clears soc_pct:low_warn
    writer.spool.flush()
    subscriber = Subscriber(broker.port).start()
    environ = forward_environment(broker.port, spool_dir, state_dir)
    forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
    try:
        assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
        subscriber.stop()
        before = retained_alarm_state(broker.port, "late-before")
        assert len(before) == 2   # one alarm topic per device

        broker.stop()
        assert forwarder.wait_for_log("MQTT outage started")
        broker.start()
        # Nothing new in the spool: the state can only come from the reconnect.
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        after = {}
        attempt = 0
        while after != before and time.monotonic() < deadline:
            attempt += 1
            after = retained_alarm_state(broker.port, f"late-after-{attempt}")
        assert after == before
        assert forwarder.stop() == 0
    finally:
        if forwarder.process.poll() is None:
            forwarder.stop()
        broker.stop()
        writer.close()
