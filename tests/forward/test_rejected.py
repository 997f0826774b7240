"""A broker that rejects the credentials or the TLS certificate: reported clearly, retried
with backoff (connection attempts are counted in the broker's own log), and delivery
works once the settings are right.
"""

import os
import socket
import ssl
import subprocess
import time

import pytest

from tests.forward.broker import Mosquitto, Subscriber
from tests.forward.conftest import (ForwarderProcess, RecordWriter, forward_environment,
                                    receive_notifications)

# Fast backoff for the tests: 0.25 s doubling up to 1 s, so a few seconds show several
# attempts. A retry loop without backoff would make hundreds in the same time.
FAST_RETRY = {"MQTT_RECONNECT_MIN_S": "0.25", "MQTT_RECONNECT_MAX_S": "1"}
OBSERVE_S = 4.0
# With jitter taking up to 30 % off each wait (0.175, 0.35, then 0.7 s), at most 6
# attempts fit in the 4 s after the first failure; 8 leaves room for a slow log.
MAX_ATTEMPTS = 8


def start(tmp_path, broker, spool_dir, state_dir, name, **overrides):
    environ = forward_environment(broker.port, spool_dir, state_dir, **FAST_RETRY, **overrides)
    return ForwarderProcess(environ, tmp_path / f"{name}.log").start()


def connections_logged(broker):
    # "New connection from 127.0.0.1:PORT" once TCP and TLS are up; "Client connection
    # from 127.0.0.1 failed" when the TLS handshake fails.
    return broker.count_log("connection from 127.0.0.1")


def observe_attempts(broker, forwarder, marker):
    """Return the connections the broker logged during OBSERVE_S, after the first failure."""
    assert forwarder.wait_for_log(marker), forwarder.log_text()
    before = connections_logged(broker)
    time.sleep(OBSERVE_S)
    assert forwarder.process.poll() is None, "the forwarder gave up instead of retrying"
    return connections_logged(broker) - before


@pytest.fixture
def spool_with_records(spool_dir):
    writer = RecordWriter(spool_dir)
    writer.append(10)
    writer.spool.flush()
    yield writer
    writer.close()


@pytest.fixture
def password_broker(tmp_path):
    password_file = tmp_path / "broker-passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(password_file), "gateway", "right-pass"],
                   check=True, capture_output=True)
    broker = Mosquitto(tmp_path / "broker", password_file=password_file).start()
    yield broker
    broker.stop()


def secret_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


def test_forward_rejected_credentials_reported_and_retried(tmp_path, password_broker, spool_dir,
                                                           state_dir, spool_with_records):
    wrong = secret_file(tmp_path, "wrong-password", "wrong-pass")
    forwarder = start(tmp_path, password_broker, spool_dir, state_dir, "wrong",
                      MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=wrong)
    attempts = observe_attempts(password_broker, forwarder, "rejected the credentials")
    assert forwarder.stop() == 0
    assert 2 <= attempts <= MAX_ATTEMPTS, attempts

    log = forwarder.log_text()
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings     # reported once, not once per attempt
    assert ("MQTT outage started: broker 127.0.0.1:%d rejected the credentials of user "
            "'gateway'" % password_broker.port) in warnings[0]
    assert "check MQTT_USERNAME and MQTT_PASSWORD_FILE" in warnings[0]
    assert "wrong-pass" not in log

    right = secret_file(tmp_path, "right-password", "right-pass")
    subscriber = Subscriber(password_broker.port, username="gateway", password="right-pass").start()
    forwarder = start(tmp_path, password_broker, spool_dir, state_dir, "right",
                      MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=right)
    try:
        assert subscriber.wait_for_seqs(spool_with_records.seqs, 30) == set()
    finally:
        subscriber.stop()
    assert forwarder.stop() == 0


def outage_statuses(tmp_path, broker, spool_dir, state_dir, expected, **settings):
    """Run the forwarder with a notify socket until a STATUS= contains ``expected``.

    Returns every STATUS= text it sent, oldest first. It waits at most 20 s.
    """
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        forwarder = start(tmp_path, broker, spool_dir, state_dir, "status",
                          NOTIFY_SOCKET=notify_path, **settings)
        try:
            messages = receive_notifications(
                sock, time.monotonic() + 20,
                lambda data: data.startswith("STATUS=") and expected in data)
        finally:
            exit_status = forwarder.stop()
    assert exit_status == 0, forwarder.log_text()
    return [data for data in messages if data.startswith("STATUS=")]


def test_forward_status_names_rejected_credentials(tmp_path, password_broker, spool_dir,
                                                   state_dir, spool_with_records):
    wrong = secret_file(tmp_path, "wrong-password", "wrong-pass")
    expected = (f"STATUS=broker 127.0.0.1:{password_broker.port} rejected the credentials "
                f"of user 'gateway'; next attempt in ")
    statuses = outage_statuses(tmp_path, password_broker, spool_dir, state_dir, expected,
                               MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=wrong)
    assert statuses, "no STATUS= notification"
    assert statuses[-1].startswith(expected), statuses
    assert not [status for status in statuses if "unreachable" in status]


def tls_broker(tmp_path, tls_files, require_client):
    tls = {"ca": tls_files["ca"], "cert": tls_files["server_cert"],
           "key": tls_files["server_key"], "require_client": require_client}
    return Mosquitto(tmp_path / "broker", tls=tls).start()


def client_context(tls_files):
    context = ssl.create_default_context(cafile=tls_files["ca"])
    context.load_cert_chain(tls_files["client_cert"], tls_files["client_key"])
    return context


# (broker requires a client certificate, forwarder settings by tls_files role,
#  the failure text the forwarder must log)
TLS_REJECTIONS = [
    pytest.param(False, {"MQTT_TLS_CA": "rogue_ca"},
                 "TLS: the certificate of broker 127.0.0.1:{port} was rejected: ",
                 id="broker-certificate-not-trusted"),
    pytest.param(True, {"MQTT_TLS_CA": "ca"},
                 "broker 127.0.0.1:{port} closed the TLS session before accepting the connection",
                 id="client-certificate-missing"),
    pytest.param(True, {"MQTT_TLS_CA": "ca", "MQTT_TLS_CERT": "rogue_client_cert",
                        "MQTT_TLS_KEY": "rogue_client_key"},
                 "broker 127.0.0.1:{port} closed the TLS session before accepting the connection",
                 id="client-certificate-from-other-ca"),
]


@pytest.mark.parametrize("require_client, roles, failure", TLS_REJECTIONS)
def test_forward_rejected_tls_reported_and_retried(tmp_path, tls_files, spool_dir, state_dir,
                                                   spool_with_records, require_client, roles,
                                                   failure):
    broker = tls_broker(tmp_path, tls_files, require_client)
    try:
        settings = {name: tls_files[role] for name, role in roles.items()}
        forwarder = start(tmp_path, broker, spool_dir, state_dir, "rejected", **settings)
        attempts = observe_attempts(broker, forwarder, "MQTT outage started")
        assert forwarder.stop() == 0
        log = forwarder.log_text()
        assert failure.format(port=broker.port) in log, log
        if require_client:
            assert "check MQTT_TLS_CERT and MQTT_TLS_KEY" in log
        else:
            assert "check MQTT_TLS_CA" in log
        assert log.count("MQTT outage started") == 1
        assert "MQTT outage goes on" not in log   # every attempt failed for the same reason
        assert 2 <= attempts <= MAX_ATTEMPTS, attempts
    finally:
        broker.stop()


def test_forward_status_names_rejected_tls_certificate(tmp_path, tls_files, spool_dir,
                                                       state_dir, spool_with_records):
    broker = tls_broker(tmp_path, tls_files, require_client=False)
    expected = f"STATUS=TLS certificate of broker 127.0.0.1:{broker.port} rejected; "
    try:
        statuses = outage_statuses(tmp_path, broker, spool_dir, state_dir, expected,
                                   MQTT_TLS_CA=tls_files["rogue_ca"])
    finally:
        broker.stop()
    assert statuses, "no STATUS= notification"
    assert statuses[-1].startswith(expected), statuses
    assert not [status for status in statuses if "unreachable" in status]


def test_forward_tls_client_certificate_delivers(tmp_path, tls_files, spool_dir, state_dir,
                                                 spool_with_records):
    broker = tls_broker(tmp_path, tls_files, require_client=True)
    subscriber = Subscriber(broker.port, tls_context=client_context(tls_files)).start()
    try:
        forwarder = start(tmp_path, broker, spool_dir, state_dir, "tls",
                          MQTT_TLS_CA=tls_files["ca"], MQTT_TLS_CERT=tls_files["client_cert"],
                          MQTT_TLS_KEY=tls_files["client_key"])
        assert subscriber.wait_for_seqs(spool_with_records.seqs, 30) == set()
        assert forwarder.stop() == 0
        assert "(MQTT 5, TLS, no user name)" in forwarder.log_text()
    finally:
        subscriber.stop()
        broker.stop()


def test_forward_same_client_id_backs_off(tmp_path, mosquitto, spool_dir, state_dir):
    # The broker drops the older of two clients with one id. Each forwarder reconnected
    # at once after the loss, so the two took turns thousands of times a second.
    first = start(tmp_path, mosquitto, spool_dir, state_dir, "first")
    assert first.wait_for_log("connected to MQTT broker"), first.log_text()
    other_spool, other_state = tmp_path / "other-spool", tmp_path / "other-state"
    other_spool.mkdir()
    other_state.mkdir()
    second = start(tmp_path, mosquitto, other_spool, other_state, "second")
    attempts = observe_attempts(mosquitto, first, "lost")
    assert second.stop() == 0
    assert first.stop() == 0
    assert attempts <= 2 * MAX_ATTEMPTS, attempts
    assert "another client may use MQTT_CLIENT_ID=bessai-forward-test" in first.log_text()


def test_forward_tls_to_plain_port_named(tmp_path, mosquitto, spool_dir, state_dir,
                                         spool_with_records, tls_files):
    # Said only "cannot connect to broker ...: Connection reset by peer".
    forwarder = start(tmp_path, mosquitto, spool_dir, state_dir, "tls-to-plain",
                      MQTT_TLS_CA=tls_files["ca"])
    observe_attempts(mosquitto, forwarder, "MQTT outage started")
    assert forwarder.stop() == 0
    assert (f"check that MQTT_PORT={mosquitto.port} is the broker's TLS listener, not its "
            f"plain MQTT port") in forwarder.log_text()


def test_forward_plain_to_tls_port_named(tmp_path, tls_files, spool_dir, state_dir,
                                         spool_with_records):
    # Said only "closed the connection before accepting it (...); check the broker's log".
    broker = tls_broker(tmp_path, tls_files, require_client=False)
    try:
        forwarder = start(tmp_path, broker, spool_dir, state_dir, "plain-to-tls")
        observe_attempts(broker, forwarder, "MQTT outage started")
        assert forwarder.stop() == 0
    finally:
        broker.stop()
    assert (f"MQTT_PORT={broker.port} is its plain MQTT port, not a listener that expects "
            f"TLS (for TLS, set MQTT_TLS_CA)") in forwarder.log_text()


def test_forward_tls_name_mismatch_reason_joined(tmp_path, tls_files, spool_dir, state_dir,
                                                 spool_with_records):
    # The reason read "...is not valid for '127.0.0.1'.; check MQTT_TLS_CA".
    from tests.forward.tls import make_leaf

    directory = os.path.dirname(tls_files["ca"])
    cert, key = make_leaf(directory, "test-ca", "other-name",
                          "subjectAltName=DNS:broker.invalid\nextendedKeyUsage=serverAuth")
    tls = {"ca": tls_files["ca"], "cert": cert, "key": key, "require_client": False}
    broker = Mosquitto(tmp_path / "broker", tls=tls).start()
    try:
        forwarder = start(tmp_path, broker, spool_dir, state_dir, "name-mismatch",
                          MQTT_TLS_CA=tls_files["ca"])
        observe_attempts(broker, forwarder, "MQTT outage started")
        assert forwarder.stop() == 0
    finally:
        broker.stop()
    log = forwarder.log_text()
    assert "not valid for '127.0.0.1'; check MQTT_TLS_CA" in log, log
    assert ".;" not in log, log
