"""Ordinary broker trouble on loopback: restarts and a frozen broker.

The outage lines must not point at causes that cannot apply: another client with the
same MQTT_CLIENT_ID after a restart, or a wrong MQTT_PORT on a port that worked.
"""

import os
import signal
import time

from tests.forward.conftest import RecordWriter, wait_until


def restart(mosquitto, down_s=0.6):
    mosquitto.stop()
    time.sleep(down_s)   # long enough for at least one refused attempt
    mosquitto.start()


def test_forward_broker_restarts_name_no_client_id(mosquitto, subscriber, spool_dir,
                                                   start_forwarder):
    writer = RecordWriter(spool_dir)
    writer.append(20)
    writer.spool.flush()
    forwarder = start_forwarder()
    assert subscriber.wait_for_seqs(writer.seqs, 30) == set()
    # Two restarts a few seconds apart: the second loses a connection that is younger
    # than STABLE_CONNECTION_S.
    restart(mosquitto)
    assert forwarder.wait_for_log("MQTT outage started")
    assert wait_until(lambda: forwarder.log_text().count("connected to MQTT broker") >= 1)
    time.sleep(2)
    restart(mosquitto)
    writer.append(20)
    writer.spool.flush()
    assert subscriber.wait_for_seqs(writer.seqs, 30) == set()
    assert forwarder.stop() == 0
    writer.close()
    log = forwarder.log_text()
    assert "another client may use" not in log, log
    assert "for another reason" not in log, log
    assert "MQTT outage started" in log


def test_forward_frozen_broker_names_no_port(mosquitto, subscriber, spool_dir,
                                             start_forwarder):
    writer = RecordWriter(spool_dir)
    writer.append(10)
    writer.spool.flush()
    forwarder = start_forwarder(MQTT_ACK_TIMEOUT_S=1)
    assert subscriber.wait_for_seqs(writer.seqs, 30) == set()
    os.kill(mosquitto.process.pid, signal.SIGSTOP)
    try:
        writer.append(5)
        writer.spool.flush()
        # No PUBACK drops the connection; the next attempt's TCP connect is accepted by
        # the kernel, and no CONNACK comes.
        assert forwarder.wait_for_log("no CONNACK came within", timeout=30), \
            forwarder.log_text()
    finally:
        os.kill(mosquitto.process.pid, signal.SIGCONT)
    assert subscriber.wait_for_seqs(writer.seqs, 30) == set()
    assert forwarder.stop() == 0
    writer.close()
    line = next(line for line in forwarder.log_text().splitlines()
                if "no CONNACK came within" in line)
    assert "check that MQTT_PORT" not in line, line
    assert "accepted connections on this port before" in line, line
