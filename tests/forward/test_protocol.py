"""MQTT_PROTOCOL: MQTT 5 by default, 3.1.1 for a broker that rejects MQTT 5.

The broker without MQTT 5 is ``standin.BrokerStandIn(mqtt5=False)``: Mosquitto 2.0.11
accepts MQTT 5 on every listener and cannot be set to reject it.
"""

from tests.forward.conftest import (ForwarderProcess, RecordWriter, forward_environment,
                                    wait_until)
from tests.forward.standin import BrokerStandIn

MQTT5, MQTT311 = 5, 4   # protocol levels of the CONNECT packet


def test_forward_broker_without_mqtt5_gets_error(tmp_path, spool_dir, state_dir):
    writer = RecordWriter(spool_dir)
    writer.append(5)
    writer.spool.flush()
    standin = BrokerStandIn(mqtt5=False).start()
    environ = forward_environment(standin.port, spool_dir, state_dir)
    forwarder = ForwarderProcess(environ, tmp_path / "mqtt5.log").start()
    try:
        assert forwarder.wait_for_log("MQTT outage started"), forwarder.log_text()
        assert wait_until(lambda: standin.connection_count() >= 2)
    finally:
        exit_status = forwarder.stop()
        standin.stop()
    assert exit_status == 0
    assert set(standin.protocol_levels.values()) == {MQTT5}
    assert standin.publishes == []
    line = next(line for line in forwarder.log_text().splitlines()
                if "MQTT outage started" in line)
    assert " ERROR " in line
    assert (f"broker 127.0.0.1:{standin.port} rejected the connection: Unsupported protocol "
            f"version") in line
    assert "set MQTT_PROTOCOL=3.1.1" in line
    writer.close()


def test_forward_mqtt311_start_line_warns(tmp_path, spool_dir, state_dir):
    writer = RecordWriter(spool_dir)
    writer.append(5)
    writer.spool.flush()
    standin = BrokerStandIn(mqtt5=False).start()
    environ = forward_environment(standin.port, spool_dir, state_dir, MQTT_PROTOCOL="3.1.1")
    forwarder = ForwarderProcess(environ, tmp_path / "mqtt311.log").start()
    try:
        assert wait_until(lambda: len(standin.published_by(environ["MQTT_CLIENT_ID"])) == 1
                          and len(standin.published_by(environ["MQTT_CLIENT_ID"])[0]) >= 5)
    finally:
        exit_status = forwarder.stop()
        standin.stop()
    assert exit_status == 0
    assert set(standin.protocol_levels.values()) == {MQTT311}
    start_line = forwarder.log_text().splitlines()[0]
    assert "(MQTT 3.1.1, no TLS, no user name)" in start_line
    warning = forwarder.log_text().splitlines()[1]
    assert "WARNING bessai_edge.forward.forwarder: MQTT 3.1.1 cannot report a rejected " \
           "publish" in warning
    assert "makes the record count as delivered, and the record is lost" in warning
    writer.close()
