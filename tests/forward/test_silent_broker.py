"""Brokers that stop talking: no CONNACK after the TCP connect, no PUBACK after publishes.

The misbehaving side is ``standin.BrokerStandIn`` (its docstring explains why Mosquitto
cannot play it); delivery is then checked through a real Mosquitto on the same port.
"""

from tests.forward.conftest import (ForwarderProcess, RecordWriter, first_arrivals,
                                    forward_environment, wait_until)
from tests.forward.standin import BrokerStandIn

DELIVERY_TIMEOUT_S = 60


def outage_line(log):
    return next(line for line in log.splitlines() if "MQTT outage started" in line)


def test_forward_silent_listener_reports_no_connack(tmp_path, spool_dir, state_dir):
    standin = BrokerStandIn(connack=False).start()
    # With MQTT_KEEPALIVE at the CONNACK timeout, paho's keepalive check used to end
    # the attempt first, and the log blamed the broker for closing the connection.
    environ = forward_environment(standin.port, spool_dir, state_dir, MQTT_KEEPALIVE=5)
    forwarder = ForwarderProcess(environ, tmp_path / "forward.log").start()
    try:
        assert forwarder.wait_for_log("MQTT outage started", timeout=30)
        # The usual backoff (0.2 s to 1 s here), then the next attempt.
        assert wait_until(lambda: standin.connection_count() >= 2, timeout=30)
    finally:
        assert forwarder.stop() == 0
        standin.stop()
    line = outage_line(forwarder.log_text())
    assert f"no CONNACK came within 5 s from 127.0.0.1:{standin.port}" in line
    assert f"check that MQTT_PORT={standin.port} is the broker's MQTT port" in line
    assert "Keep alive" not in line
    assert "closed the connection" not in line


def test_forward_no_puback_reconnects_and_delivers(mosquitto, subscriber, spool_dir,
                                                    start_forwarder):
    writer = RecordWriter(spool_dir)
    writer.append(60, alarm_every=7)
    writer.spool.flush()
    port = mosquitto.port
    mosquitto.stop()   # the subscriber's persistent session waits in the broker's store
    standin = BrokerStandIn(port=port, connack=True).start()
    try:
        forwarder = start_forwarder(MQTT_ACK_TIMEOUT_S=1, MQTT_INFLIGHT=10)
        client_id = forwarder.environ["MQTT_CLIENT_ID"]
        assert forwarder.wait_for_log("sent no PUBACK", timeout=30)
        # Reconnected, and sent the same records again from the checkpoint.
        assert wait_until(lambda: len(standin.published_by(client_id)) >= 2
                          and standin.published_by(client_id)[1], timeout=30)
        first, again = standin.published_by(client_id)[:2]
        assert first[0] == again[0]
        assert first[0][0].endswith("/telemetry")
    finally:
        standin.stop()
    line = outage_line(forwarder.log_text())
    assert f"broker 127.0.0.1:{port} sent no PUBACK for record {writer.seqs[0]}" in line
    assert "MQTT_ACK_TIMEOUT_S=1" in line

    mosquitto.start()
    assert subscriber.wait_for_seqs(writer.seqs, DELIVERY_TIMEOUT_S) == set()
    received = subscriber.seqs_by_device()
    for device, seqs in writer.expected_by_device().items():
        assert first_arrivals(received[device]) == seqs, f"order of {device}"
    assert forwarder.stop() == 0
    writer.close()
