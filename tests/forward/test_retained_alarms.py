"""The retained alarm message follows the newest forwarded record of each device.

A real Mosquitto without persistence loses its retained messages when it restarts;
the forwarder, still running, must publish each device's alarm state again once it
has reconnected, without any new alarm change in the spool. A restarted ``bessai
run`` starts with no alarms and reports no change for the ones it forgot. A restarted
forwarder has published nothing yet. In both cases the retained message must still
end up with the alarms of the newest record.
"""

import os
import time

import orjson

from bessai_edge.records import RecordFactory
from bessai_edge.spool import Spool
from tests.conftest import require_commands
from tests.forward.broker import MOSQUITTO, Mosquitto, Subscriber
from tests.forward.conftest import ForwarderProcess, RecordWriter, forward_environment

DELIVERY_TIMEOUT_S = 60
ALARM_FILTER = "bessai/+/+/alarms"
INVERTER_ALARMS = "bessai/SITE-TEST-001/inverter/alarms"
# What `bessai simulate --profile huawei_sun2000 --set battery_temp_c=60` raises.
HOT = ["battery_temp_c:high_trip", "battery_temp_c:high_warn"]


def retained_alarm_state(port, client_id):
    """Return {topic: alarm message} of the retained messages a new subscriber gets."""
    late = Subscriber(port, ALARM_FILTER, client_id=client_id).start()
    try:
        late.wait_quiet()
        return {topic: orjson.loads(payload) for topic, payload, retain in late.snapshot()
                if retain}
    finally:
        late.stop()


def append_cycles(spool, alarm_lists, before=()):
    """Append one inverter record per alarm list, as ``bessai run`` writes them.

    A record's ``alarm_changes`` are the differences from the list before it, and
    ``before`` is the list before the first one: empty for a gateway that just started.
    Returns the seqs.
    """
    factory = RecordFactory("SITE-TEST-001", "inverter", "huawei_sun2000", "boot-1")
    seqs = []
    previous = list(before)
    for cycle, alarms in enumerate(alarm_lists, 1):
        changes = [(name, True) for name in alarms if name not in previous]
        changes += [(name, False) for name in previous if name not in alarms]
        record = factory.build(
            cycle=cycle, wall_ms=1_700_000_000_000 + cycle * 1000, monotonic_s=float(cycle),
            cycle_ms=10.0, state="ok", error=None,
            values={"battery_temp_c": 60.0 if alarms else 31.5},
            quality={"battery_temp_c": "ok"}, alarms=list(alarms), alarm_changes=changes)
        seq = spool.append(record)
        assert seq is not None, "the test spool dropped a record"
        seqs.append(seq)
        previous = list(alarms)
    spool.flush()
    return seqs


def alarm_messages(subscriber):
    """The alarm messages the subscriber received, decoded, in arrival order."""
    return [orjson.loads(payload) for topic, payload, _ in subscriber.snapshot()
            if topic.endswith("/alarms")]


def test_forward_alarm_state_cleared_after_gateway_restart(mosquitto, subscriber, spool_dir,
                                                           start_forwarder):
    forwarder = start_forwarder()
    with Spool(spool_dir) as spool:
        hot = append_cycles(spool, [[], [], HOT, HOT, HOT])
    assert subscriber.wait_for_seqs(hot, DELIVERY_TIMEOUT_S) == set()

    # bessai run restarts against a device without alarms: no record reports a change.
    with Spool(spool_dir) as spool:
        normal = append_cycles(spool, [[]] * 10)
    assert subscriber.wait_for_seqs(normal, DELIVERY_TIMEOUT_S) == set()
    assert forwarder.stop() == 0

    received = alarm_messages(subscriber)
    assert [(message["seq"], message["active"]) for message in received] == [
        (hot[0], []), (hot[2], HOT), (normal[0], [])]
    assert received[-1]["changes"] == []
    retained = retained_alarm_state(mosquitto.port, "late")
    assert retained == {INVERTER_ALARMS: received[-1]}


def test_forward_alarm_state_after_forwarder_restart(tmp_path, spool_dir, state_dir):
    if not os.path.exists(MOSQUITTO):
        require_commands("mosquitto")
    broker = Mosquitto(tmp_path / "broker", persistence=False).start()
    environ = forward_environment(broker.port, spool_dir, state_dir)
    spool = Spool(spool_dir).open()
    subscriber = Subscriber(broker.port).start()
    forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
    try:
        hot = append_cycles(spool, [[], HOT, HOT])
        assert subscriber.wait_for_seqs(hot, DELIVERY_TIMEOUT_S) == set()
        assert forwarder.stop() == 0
        subscriber.stop()

        # The broker loses its retained messages while the forwarder is stopped, and
        # the alarms stay active, so the next records report no change.
        broker.stop()
        broker.start()
        still_hot = append_cycles(spool, [HOT, HOT], before=HOT)
        subscriber = Subscriber(broker.port, client_id="after-restart").start()
        forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
        assert subscriber.wait_for_seqs(still_hot, DELIVERY_TIMEOUT_S) == set()
        assert forwarder.stop() == 0

        received = alarm_messages(subscriber)
        assert [(message["seq"], message["active"]) for message in received] == [
            (still_hot[0], HOT)]
        retained = retained_alarm_state(broker.port, "late")
        assert retained == {INVERTER_ALARMS: received[0]}
    finally:
        if forwarder.process.poll() is None:
            forwarder.stop()
        subscriber.stop()
        broker.stop()
        spool.close()


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
