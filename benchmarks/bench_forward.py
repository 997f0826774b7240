"""Forwarder drain rate: one day of records at 1 Hz (86,400) delivered to a local Mosquitto.

The day is written to a fresh spool with the real writer (Huawei records as the spool
benchmark uses, default segment size of ``bessai run``). The figure is the time from
starting ``bessai forward`` until a subscriber has received every record, so it
includes the process start, reading the spool, QoS 1 acknowledgements, the
checkpoint saves and segment deletion.

The baseline is measured in the same run against the same broker and subscriber. It
is the least a QoS 1 publisher needs: a bare paho client that publishes the same lines
from memory with the same window of unacknowledged messages. It has no spool, no
checkpoint and no process start. Target: the whole day in at most 30 s.

Run with ``python -m benchmarks forward`` or ``python -m benchmarks.bench_forward
--dir DIR`` to put the spool and the checkpoint on another file system.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import orjson
import paho.mqtt.client as mqtt

from benchmarks.bench_spool import huawei_record
from bessai_edge.spool import MIB, Spool
from tests.forward.broker import Mosquitto

COMMAND = "python -m benchmarks forward"
RECORDS = 86_400
WINDOW = 100                 # MQTT_INFLIGHT's default
SEGMENT_MAX_BYTES = 8 * MIB  # SPOOL_SEGMENT_MAX_BYTES's default
TARGET_S = 30.0
TIMEOUT_S = 600.0


class CountingSubscriber:
    """Counts the messages under one topic filter, in paho's network thread."""

    def __init__(self, port, topic_filter):
        self.count = 0
        self.done = threading.Event()
        self.expected = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{topic_filter}")
        self.client.max_inflight_messages_set(0)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("the benchmark subscriber got no SUBACK")

    def _on_message(self, client, userdata, message):
        self.count += 1
        if self.expected is not None and self.count >= self.expected:
            self.done.set()

    def wait_for(self, expected):
        self.expected = expected
        if self.count >= expected:
            return
        if not self.done.wait(TIMEOUT_S):
            raise RuntimeError(f"only {self.count} of {expected} messages arrived in {TIMEOUT_S} s")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def write_day(spool_dir):
    spool = Spool(spool_dir, segment_max_bytes=SEGMENT_MAX_BYTES, max_total_bytes=1024 * MIB)
    spool.open()
    for cycle in range(1, RECORDS + 1):
        spool.append(huawei_record(cycle))
    spool.close()


def spool_lines(spool_dir):
    lines = []
    for path in sorted(pathlib.Path(spool_dir).glob("*.jsonl")):
        lines.extend(path.read_bytes().splitlines())
    return lines


def drain_with_bare_paho(port, lines):
    """Publish ``lines`` at QoS 1 with at most WINDOW unacknowledged; return seconds until received."""
    subscriber = CountingSubscriber(port, "baseline/#")
    acknowledged = [0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    client.max_inflight_messages_set(0)
    client.on_publish = lambda *args: acknowledged.__setitem__(0, acknowledged[0] + 1)
    started = time.monotonic()
    client.connect("127.0.0.1", port)
    while not client.is_connected():
        client.loop(0.1)
    sent = 0
    while acknowledged[0] < len(lines):
        while sent < len(lines) and sent - acknowledged[0] < WINDOW:
            client.publish("baseline/site/inverter/telemetry", lines[sent], qos=1)
            sent += 1
        client.loop(0.0 if sent < len(lines) and sent - acknowledged[0] < WINDOW else 0.25)
    subscriber.wait_for(len(lines))
    elapsed = time.monotonic() - started
    client.disconnect()
    subscriber.close()
    return elapsed


def drain_with_forwarder(port, spool_dir, state_dir):
    """Run ``bessai forward`` on the spool; return seconds until the subscriber has every record."""
    # Telemetry only: the forwarder also publishes an alarm message for the first record.
    subscriber = CountingSubscriber(port, "bessai/+/+/telemetry")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MQTT_ENABLED": "true", "MQTT_BROKER_HOST": "127.0.0.1", "MQTT_PORT": str(port),
        "MQTT_INFLIGHT": str(WINDOW), "SPOOL_DIR": str(spool_dir),
        "FORWARD_STATE_DIR": str(state_dir), "LOG_LEVEL": "warning",
    }
    script = pathlib.Path(sys.executable).parent / "bessai"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bessai_edge"]
    started = time.monotonic()
    process = subprocess.Popen([*command, "forward"], env=environ, stdin=subprocess.DEVNULL)
    try:
        subscriber.wait_for(RECORDS)
        elapsed = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
        subscriber.close()
    return elapsed


def figure(name, value, unit, **fields):
    print(orjson.dumps({"benchmark": "forward", "figure": name, "value": round(value, 3),
                        "unit": unit, "command": COMMAND, **fields}).decode(), flush=True)


def main(argv):
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="directory for the spool and the checkpoint "
                                      "(default: a new temporary directory)")
    args = parser.parse_args(argv)
    base = pathlib.Path(tempfile.mkdtemp(prefix="bench-forward-", dir=args.dir))
    broker = Mosquitto(base / "broker").start()
    try:
        spool_dir, state_dir = base / "spool", base / "state"
        spool_dir.mkdir()
        state_dir.mkdir()
        write_day(spool_dir)
        spool_bytes = sum(path.stat().st_size for path in spool_dir.glob("*.jsonl"))
        baseline_s = drain_with_bare_paho(broker.port, spool_lines(spool_dir))
        forward_s = drain_with_forwarder(broker.port, spool_dir, state_dir)
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
    figure("drain_one_day_s", forward_s, "s", records=RECORDS, spool_bytes=spool_bytes,
           window=WINDOW, target_s=TARGET_S, meets_target=forward_s <= TARGET_S)
    figure("drain_records_per_s", RECORDS / forward_s, "records/s")
    figure("baseline_bare_paho_s", baseline_s, "s", records=RECORDS, window=WINDOW)
    figure("ratio_forwarder_to_bare_paho", forward_s / baseline_s, "ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
