"""A real Mosquitto on loopback and a collecting subscriber, for the forwarder's tests.

``Mosquitto`` writes a configuration into a directory of its own, starts
``/usr/sbin/mosquitto -c CONF`` on a free port, and stops it by its PID. Persistence is
on unless ``persistence=False``, so a stop and start (an outage) keeps the retained
messages and the queued messages of the test's subscriber, whose session is
persistent. What the forwarder publishes while the subscriber reconnects is then not
lost on the receiving side, so every loss a test detects is the forwarder's.

``max_queued_messages=None`` leaves that setting at Mosquitto's default (1000), which
changes how Mosquitto 2.0.11 handles a publish its ACL denies over MQTT 3.1.1.

``Subscriber`` is a paho client in its own thread (tests may use threads) that keeps
every message it receives.
"""

import os
import pathlib
import signal
import socket
import subprocess
import threading
import time

import orjson
import paho.mqtt.client as mqtt

from tests.conftest import free_tcp_port

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    """One broker process on 127.0.0.1; ``start``/``stop`` may be repeated (an outage)."""

    def __init__(self, directory, tls=None, password_file=None, port=None, persistence=True,
                 acl_file=None, message_size_limit=None, max_packet_size=None,
                 max_queued_messages=0):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_tcp_port()
        self.log_path = self.directory / "mosquitto.log"
        self.config_path = self.directory / "mosquitto.conf"
        self.process = None
        lines = [
            "user root",  # started as root in CI: stay root to write this directory
            f"listener {self.port} 127.0.0.1",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.directory}/",
            "autosave_interval 0",
            "max_inflight_messages 0",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        if password_file:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines += ["allow_anonymous true"]
        if max_queued_messages is not None:
            # 0: no limit, so the persistent subscriber of a test loses nothing in an outage.
            lines += [f"max_queued_messages {max_queued_messages}"]
        if acl_file:
            lines += [f"acl_file {acl_file}"]
        if message_size_limit:
            lines += [f"message_size_limit {message_size_limit}"]
        if max_packet_size:
            lines += [f"max_packet_size {max_packet_size}"]
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}",
                      f"require_certificate {'true' if tls.get('require_client') else 'false'}"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self):
        """Stop the broker with SIGTERM (it saves its persistence file) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process.stderr.close()
        self.process = None

    def restart_with(self, line, replacement):
        """Replace ``line`` in the configuration, then stop and start the broker."""
        self.stop()
        self.config_path.write_text(self.config_path.read_text().replace(line, replacement))
        self.start()

    def reload(self):
        """Send SIGHUP to this broker's PID: it reads its configuration and ACL file again."""
        os.kill(self.process.pid, signal.SIGHUP)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count_log(self, text):
        return self.log_text().count(text)


class Subscriber:
    """Collects every message under ``topic_filter`` on a persistent QoS 1 session."""

    def __init__(self, port, topic_filter="#", client_id="test-subscriber", tls_context=None,
                 username=None, password=None):
        self.messages = []   # (topic, payload bytes, retain flag), in arrival order
        self.telemetry = []  # (device, seq) of each telemetry message, in arrival order
        self.seen = set()    # distinct telemetry seqs
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topic_filter = topic_filter
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.max_inflight_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.port = port

    def start(self, timeout=10.0):
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise RuntimeError("the subscriber did not get its SUBACK")
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subscribed.set()

    def _on_message(self, client, userdata, message):
        payload = bytes(message.payload)
        seq = orjson.loads(payload)["seq"] if message.topic.endswith("/telemetry") else None
        with self.lock:
            self.messages.append((message.topic, payload, message.retain))
            if seq is not None:
                self.telemetry.append((message.topic.split("/")[-2], seq))
                self.seen.add(seq)

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def telemetry_seqs(self):
        """Sequence numbers of the telemetry messages in arrival order."""
        with self.lock:
            return [seq for _, seq in self.telemetry]

    def seqs_by_device(self):
        """Map each device to the seqs of its telemetry messages in arrival order."""
        by_device = {}
        with self.lock:
            for device, seq in self.telemetry:
                by_device.setdefault(device, []).append(seq)
        return by_device

    def wait_for_seqs(self, expected, timeout):
        """Wait until every seq in ``expected`` arrived; return the seqs still missing."""
        missing = set(expected)
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                missing -= self.seen
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def wait_quiet(self, quiet_s=0.3, timeout=10.0):
        """Wait until no message arrived for ``quiet_s``; return the message count."""
        deadline = time.monotonic() + timeout
        count = len(self.snapshot())
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now_count = len(self.snapshot())
            if now_count != count:
                count, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                break
        return count
