"""Forwarder settings: defaults, each invalid value with its own line, secret files, TLS."""

import os
import pathlib
import pty
import select
import signal
import ssl
import subprocess
import sys
import time

import pytest

from bessai_edge.errors import ConfigError
from bessai_edge.forward.settings import load_settings, require_usable_state_dir
from tests.settings.helpers import NOBODY, call_as_nobody, spool_and_state_dirs

MINIMAL = {"MQTT_ENABLED": "true", "MQTT_BROKER_HOST": "192.168.1.200"}


def problems_of(**variables):
    with pytest.raises(ConfigError) as caught:
        load_settings({**MINIMAL, **variables})
    return caught.value.problems


def test_forward_settings_defaults():
    settings = load_settings({**MINIMAL, "SITE_ID": "SITE-ATACAMA-001"})
    assert settings.enabled
    assert settings.broker == "192.168.1.200:1883"
    assert settings.client_id == "bessai-forward-SITE-ATACAMA-001"
    assert settings.topic_prefix == "bessai"
    assert settings.keepalive_s == 60
    assert settings.inflight == 100
    assert settings.tls_context is None
    assert settings.username is None
    assert settings.password is None
    assert settings.spool_dir == "/var/spool/bessai"
    assert settings.state_dir == "/var/lib/bessai"
    assert settings.reconnect_min_s == 1.0
    assert settings.reconnect_max_s == 60.0
    assert settings.ack_timeout_s == 60.0
    assert settings.protocol == "5"


@pytest.mark.parametrize("value", ["", "false", "no", "0", "off"])
def test_forward_settings_disabled_ignores_the_rest(value):
    settings = load_settings({"MQTT_ENABLED": value, "MQTT_PORT": "not a port"})
    assert not settings.enabled


def test_forward_settings_ipv6_broker():
    settings = load_settings({**MINIMAL, "MQTT_BROKER_HOST": "fd00::5", "MQTT_PORT": "1884"})
    assert settings.broker == "[fd00::5]:1884"


# (variables, the start of the one expected problem line, a fragment of its fix)
INVALID_CASES = [
    ({"MQTT_ENABLED": "maybe"}, "MQTT_ENABLED='maybe' is invalid", "true or false"),
    ({"MQTT_BROKER_HOST": ""}, "MQTT_BROKER_HOST is missing", "192.168.1.200"),
    ({"MQTT_BROKER_HOST": "broker:1883"}, "MQTT_BROKER_HOST='broker:1883' is invalid",
     "set the port in MQTT_PORT"),
    ({"MQTT_BROKER_HOST": "bad host"}, "MQTT_BROKER_HOST='bad host' is invalid", "host name"),
    ({"MQTT_BROKER_HOST": "mqtt://broker.local:1883"},
     "MQTT_BROKER_HOST='mqtt://broker.local:1883' is invalid",
     "; write the address without mqtt://, as broker.local, and set the port in MQTT_PORT"),
    ({"MQTT_BROKER_HOST": "[fd00::5]"}, "MQTT_BROKER_HOST='[fd00::5]' is invalid",
     "; write the address without brackets, as fd00::5"),
    ({"MQTT_PORT": "0"}, "MQTT_PORT='0' is invalid", "from 1 to 65535"),
    ({"MQTT_ACK_TIMEOUT_S": "0"}, "MQTT_ACK_TIMEOUT_S='0' is invalid", "from 1 to 3600"),
    ({"MQTT_ACK_TIMEOUT_S": "1m"}, "MQTT_ACK_TIMEOUT_S='1m' is invalid", "a number"),
    ({"MQTT_PORT": "mqtt"}, "MQTT_PORT='mqtt' is invalid", "an integer"),
    ({"MQTT_PROTOCOL": "3"}, "MQTT_PROTOCOL='3' is invalid", "expected one of 5, 3.1.1"),
    ({"MQTT_PROTOCOL": "mqttv5"}, "MQTT_PROTOCOL='mqttv5' is invalid", "one of 5, 3.1.1"),
    ({"MQTT_CLIENT_ID": "two words"}, "MQTT_CLIENT_ID='two words' is invalid", "without spaces"),
    ({"MQTT_TOPIC_PREFIX": "bessai/#"}, "MQTT_TOPIC_PREFIX='bessai/#' is invalid", "'#'"),
    ({"MQTT_TOPIC_PREFIX": "/bessai"}, "MQTT_TOPIC_PREFIX='/bessai' is invalid", "empty levels"),
    ({"MQTT_TOPIC_PREFIX": "a//b"}, "MQTT_TOPIC_PREFIX='a//b' is invalid", "empty levels"),
    ({"MQTT_TOPIC_PREFIX": "$SYS/x"}, "MQTT_TOPIC_PREFIX='$SYS/x' is invalid",
     "remove the leading '$'"),
    ({"MQTT_TOPIC_PREFIX": "$bessai"}, "MQTT_TOPIC_PREFIX='$bessai' is invalid",
     "reserved for the broker"),
    ({"MQTT_KEEPALIVE": "2"}, "MQTT_KEEPALIVE='2' is invalid", "from 5 to 65535"),
    ({"MQTT_INFLIGHT": "0"}, "MQTT_INFLIGHT='0' is invalid", "from 1 to 10000"),
    ({"MQTT_INFLIGHT": "20000"}, "MQTT_INFLIGHT='20000' is invalid", "from 1 to 10000"),
    ({"MQTT_RECONNECT_MIN_S": "0"}, "MQTT_RECONNECT_MIN_S='0' is invalid", "from 0.1"),
    ({"MQTT_RECONNECT_MIN_S": "30", "MQTT_RECONNECT_MAX_S": "10"},
     "MQTT_RECONNECT_MAX_S=10 is less than MQTT_RECONNECT_MIN_S=30", "cannot be shorter"),
    ({"MQTT_PASSWORD": "secret"}, "MQTT_PASSWORD is set but MQTT_USERNAME is missing",
     "set MQTT_USERNAME"),
    ({"MQTT_USERNAME": "u", "MQTT_PASSWORD": "p", "MQTT_PASSWORD_FILE": "/etc/bessai/pw"},
     "MQTT_PASSWORD and MQTT_PASSWORD_FILE are both set", "keep only one"),
    ({"MQTT_USERNAME": "u", "MQTT_PASSWORD_FILE": "/nonexistent/pw"},
     "MQTT_PASSWORD_FILE='/nonexistent/pw' is invalid", "must exist"),
    ({"MQTT_TLS_CERT": "/etc/ssl/client.pem"}, "MQTT_TLS_CERT and MQTT_TLS_KEY go together",
     "set both"),
    ({"MQTT_TLS_CA": "/nonexistent/ca.pem"}, "MQTT_TLS_CA='/nonexistent/ca.pem' is invalid",
     "PEM file"),
    ({"SPOOL_DIR": "spool"}, "SPOOL_DIR='spool' is invalid", "absolute path"),
    # A leading dot alone is not a relative path marker: ".hid" is a hidden folder name.
    ({"SPOOL_DIR": ".hid"}, "SPOOL_DIR='.hid' is invalid", "starts with ./ or ../"),
    ({"FORWARD_STATE_DIR": "state"}, "FORWARD_STATE_DIR='state' is invalid", "/var/lib/bessai"),
    ({"FORWARD_CHECKPOINT_INTERVAL_S": "-1"}, "FORWARD_CHECKPOINT_INTERVAL_S='-1' is invalid",
     "from 0 to 3600"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is invalid", "debug, info"),
]


@pytest.mark.parametrize("variables, start, fix", INVALID_CASES,
                         ids=[case[1].split("=")[0].split(" ")[0] + f"-{i}"
                              for i, case in enumerate(INVALID_CASES)])
def test_forward_settings_invalid_value(variables, start, fix):
    problem, = problems_of(**variables)
    assert problem.startswith(start)
    assert fix in problem


def test_broker_host_space_no_port_hint():
    problem, = problems_of(MQTT_BROKER_HOST="bad host")
    assert problem == ("MQTT_BROKER_HOST='bad host' is invalid: expected an IPv4 or IPv6 "
                       "address or a host name")


@pytest.mark.parametrize("name, expected", [
    ("MQTT_ENABLE", "MQTT_ENABLE is not a setting of bessai forward: did you mean MQTT_ENABLED?"),
    ("MQTT_BROKR_HOST", "did you mean MQTT_BROKER_HOST?"),
    ("FORWARD_STATE_DIRS", "did you mean FORWARD_STATE_DIR?"),
    ("MQTT_QOS", "MQTT_QOS is not a setting of bessai forward: remove it"),
])
def test_forward_settings_unknown_name(name, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: "x"})   # reported even with forwarding off
    problem, = caught.value.problems
    assert expected in problem


def test_forward_settings_invalid_switch_lists_the_others():
    # An invalid MQTT_ENABLED used to hide every other MQTT problem until it was fixed.
    problems = problems_of(MQTT_ENABLED="yes please", MQTT_PORT="99999")
    assert any(line.startswith("MQTT_ENABLED='yes please' is invalid") for line in problems)
    assert any(line.startswith("MQTT_PORT='99999' is invalid") for line in problems), problems


def test_forward_settings_every_problem_listed():
    problems = problems_of(MQTT_PORT="0", MQTT_INFLIGHT="x", MQTT_TOPIC_PREFIX="#", LOG_LEVEL="x")
    assert len(problems) == 4


def test_forward_settings_password_file(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret with spaces\n")
    secret.chmod(0o600)
    settings = load_settings({**MINIMAL, "MQTT_USERNAME": "gateway",
                              "MQTT_PASSWORD_FILE": str(secret)})
    assert settings.password == "s3cret with spaces"
    assert settings.password_source == "MQTT_PASSWORD_FILE"
    assert "s3cret" not in repr(settings)


def test_forward_settings_password_file_with_bom(tmp_path):
    # A byte order mark from a Windows editor became part of the password.
    secret = tmp_path / "mqtt-password"
    secret.write_bytes("\ufeffs3cret\r\n".encode())
    secret.chmod(0o600)
    settings = load_settings({**MINIMAL, "MQTT_USERNAME": "gateway",
                              "MQTT_PASSWORD_FILE": str(secret)})
    assert settings.password == "s3cret"


def test_forward_settings_topic_prefix_too_long():
    # paho raised "Publish topic is too long" at the first publish: a crash per restart.
    problem, = problems_of(MQTT_TOPIC_PREFIX="a" * 70000)
    assert problem.startswith("MQTT_TOPIC_PREFIX='aaaa")
    assert "expected at most 65427 bytes" in problem
    assert len(problem) < 300
    assert load_settings({**MINIMAL, "MQTT_TOPIC_PREFIX": "a" * 65427}).topic_prefix


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_forward_settings_password_file_readable_by_others(tmp_path, mode):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    problem, = problems_of(MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=str(secret))
    assert f"(mode {mode:o})" in problem
    assert f"chmod 600 {secret}" in problem


def test_forward_settings_password_file_empty(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("\n")
    secret.chmod(0o600)
    problem, = problems_of(MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=str(secret))
    assert "the file is empty" in problem


def test_forward_settings_tls_context(tls_files):
    settings = load_settings({**MINIMAL, "MQTT_TLS_CA": tls_files["ca"],
                              "MQTT_TLS_CERT": tls_files["client_cert"],
                              "MQTT_TLS_KEY": tls_files["client_key"]})
    assert isinstance(settings.tls_context, ssl.SSLContext)
    assert settings.tls_context.verify_mode == ssl.CERT_REQUIRED
    assert settings.tls_context.check_hostname
    assert settings.port == 8883


def test_forward_settings_tls_ca_replaces_system_cas(tls_files, monkeypatch):
    # MQTT_TLS_CA used to be added to the system's CAs, so a broker with a certificate
    # from any public CA passed. SSL_CERT_FILE replaces the system store here.
    monkeypatch.setenv("SSL_CERT_FILE", tls_files["rogue_ca"])
    with_file = load_settings({**MINIMAL, "MQTT_TLS_CA": tls_files["ca"]}).tls_context
    issuers = [dict(entry[0] for entry in ca["subject"])["commonName"]
               for ca in with_file.get_ca_certs()]
    assert issuers == ["test-ca"]


def test_forward_settings_tls_system_cas_without_file(tls_files, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls_files["rogue_ca"])
    context = load_settings({**MINIMAL, "MQTT_TLS_CERT": tls_files["client_cert"],
                             "MQTT_TLS_KEY": tls_files["client_key"]}).tls_context
    issuers = [dict(entry[0] for entry in ca["subject"])["commonName"]
               for ca in context.get_ca_certs()]
    assert issuers == ["rogue-ca"]


def test_forward_settings_tls_key_not_matching(tls_files):
    problem, = problems_of(MQTT_TLS_CA=tls_files["ca"], MQTT_TLS_CERT=tls_files["client_cert"],
                           MQTT_TLS_KEY=tls_files["server_key"])
    assert problem.startswith(f"MQTT_TLS_CERT={tls_files['client_cert']!r} is invalid")
    assert "the unencrypted PEM key that belongs to it" in problem


def _output_on_terminal(code, timeout_s):
    """Run ``code`` in a Python child whose controlling terminal is a pseudo-terminal.

    Return what the child wrote there, and whether it ended within ``timeout_s``.
    """
    pid, terminal = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code])
    output = b""
    deadline = time.monotonic() + timeout_s
    ended = False
    while time.monotonic() < deadline:
        readable, _, _ = select.select([terminal], [], [], 0.1)
        if not readable:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:   # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            ended = True
            break
        output += chunk
    if not ended:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(terminal)
    return output.decode(errors="replace"), ended


def test_forward_settings_tls_key_encrypted(tls_files, tmp_path):
    # OpenSSL prompts for the passphrase of an encrypted key on the controlling terminal,
    # so a forwarder started by hand from a shell would wait there for input.
    encrypted_key = tmp_path / "client-encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", tls_files["client_key"], "-aes256",
                    "-passout", "pass:secret", "-out", str(encrypted_key)], check=True)
    encrypted_key.chmod(0o600)
    variables = {**MINIMAL, "MQTT_TLS_CA": tls_files["ca"],
                 "MQTT_TLS_CERT": tls_files["client_cert"], "MQTT_TLS_KEY": str(encrypted_key)}
    code = (
        "from bessai_edge.errors import ConfigError\n"
        "from bessai_edge.forward.settings import load_settings\n"
        "try:\n"
        f"    load_settings({variables!r})\n"
        "except ConfigError as error:\n"
        "    print('problems:', error.problems)\n"
    )

    output, ended = _output_on_terminal(code, timeout_s=30)

    assert "pass phrase" not in output
    assert ended
    assert f"MQTT_TLS_CERT={tls_files['client_cert']!r} is invalid" in output
    assert "the unencrypted PEM key that belongs to it" in output


def test_forward_settings_tls_ca_not_pem(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")
    problem, = problems_of(MQTT_TLS_CA=str(not_pem))
    assert problem.startswith(f"MQTT_TLS_CA={str(not_pem)!r} is invalid")


def test_forward_settings_tls_key_readable_by_others(tls_files):
    os.chmod(tls_files["client_key"], 0o644)
    try:
        problem, = problems_of(MQTT_TLS_CA=tls_files["ca"], MQTT_TLS_CERT=tls_files["client_cert"],
                               MQTT_TLS_KEY=tls_files["client_key"])
    finally:
        os.chmod(tls_files["client_key"], 0o600)
    assert problem.startswith("MQTT_TLS_KEY=")
    assert "readable by other users" in problem


def test_forward_state_dir_missing(tmp_path):
    missing = tmp_path / "missing"
    settings = load_settings({**MINIMAL, "FORWARD_STATE_DIR": str(missing)})
    with pytest.raises(ConfigError) as caught:
        require_usable_state_dir(settings)
    problem, = caught.value.problems
    assert problem == (
        f"FORWARD_STATE_DIR='{missing}' does not exist: create it, owned by the bessai user "
        f"(sudo install -d -m 0750 -o bessai -g bessai {missing}), or set FORWARD_STATE_DIR "
        f"to a directory that exists (the package uses /var/lib/bessai)")


def test_forward_state_dir_is_file(tmp_path):
    state_file = tmp_path / "state"
    state_file.write_text("")
    settings = load_settings({**MINIMAL, "FORWARD_STATE_DIR": str(state_file)})
    with pytest.raises(ConfigError) as caught:
        require_usable_state_dir(settings)
    problem, = caught.value.problems
    assert problem == (f"FORWARD_STATE_DIR='{state_file}' is not a directory: set "
                       f"FORWARD_STATE_DIR to a directory (the package uses /var/lib/bessai)")


def test_forward_state_dir_under_file(tmp_path):
    (tmp_path / "plain-file").write_text("")
    path = tmp_path / "plain-file" / "state"
    settings = load_settings({**MINIMAL, "FORWARD_STATE_DIR": str(path)})
    with pytest.raises(ConfigError) as caught:
        require_usable_state_dir(settings)
    problem, = caught.value.problems
    assert problem == (f"FORWARD_STATE_DIR='{path}' cannot be opened (not a directory): check "
                       f"the path and the permissions of its parent directories")


def state_dir_problem(spool_dir, state_dir):
    """Return the problem that ``require_usable_state_dir`` raises, or None."""
    settings = load_settings({**MINIMAL, "SPOOL_DIR": spool_dir, "FORWARD_STATE_DIR": state_dir})
    try:
        require_usable_state_dir(settings)
    except ConfigError as error:
        return str(error)
    return None


@pytest.mark.parametrize("spool_owner, advice", [
    (NOBODY, "is not writable by user nobody, which runs the forwarder: run "
             "`chown nobody: {state_dir}`"),
    (0, "is not writable by user nobody: give it to the bessai user (chown bessai: "
        "{state_dir}) and run the forwarder as that user (sudo -u bessai bessai forward ...)"),
], ids=["spool-owner", "other-user"])
def test_forward_state_dir_not_writable_names_user(needs_root, spool_owner, advice):
    with spool_and_state_dirs(spool_owner) as (spool_dir, state_dir):
        problem = call_as_nobody(state_dir_problem, spool_dir, state_dir)

    assert problem == f"FORWARD_STATE_DIR='{state_dir}' " + advice.format(state_dir=state_dir)


# (a name in the shared settings file, reported by bessai forward, reported by bessai run)
FILE_NAME_CASES = [
    pytest.param("MQT_ENABLED", True, True, id="forwarder-setting-without-prefix"),
    pytest.param("MQTTPORT", True, False, id="forwarder-only-setting-without-prefix"),
    pytest.param("MQTT_ENABLE", True, False, id="forwarder-prefix"),
    pytest.param("FORWARD_STATE_DRI", True, False, id="forward-prefix"),
    pytest.param("SPOOL_DRI", True, True, id="shared-setting"),
    pytest.param("LOG_LEVL", True, True, id="shared-log-level"),
    pytest.param("SCAN_INTERVL_S", False, True, id="scan-loop-setting"),
    pytest.param("INVERTER_PORTT", False, True, id="scan-loop-device-setting"),
    pytest.param("DEVICE_PV_IP", False, True, id="scan-loop-device-prefix"),
    pytest.param("SCAN_INTERVAL_S", False, False, id="scan-loop-setting-spelt-right"),
    pytest.param("JAVA_HOME", False, False, id="another-programs-variable"),
]


def file_problems(tmp_path, reads, load, name):
    """Problems of command settings ``reads``/``load`` for a file that adds ``name``."""
    env_file = tmp_path / "bessai.env"
    env_file.write_text(f"SITE_ID=SITE-TEST-001\nINVERTER_IP=192.168.1.10\n"
                        f"DRIVER_PROFILE_PATH=huawei_sun2000\nMQTT_ENABLED=false\n{name}=1\n")
    try:
        load(reads(str(env_file), environ={}))
    except ConfigError as error:
        return [problem for problem in error.problems if name in problem]
    return []


@pytest.mark.parametrize("name, by_forward, by_run", FILE_NAME_CASES)
def test_forward_settings_file_name_checked_once(tmp_path, name, by_forward, by_run):
    from bessai_edge import settings as run_settings
    from bessai_edge.forward import settings as forward_settings

    forward = file_problems(tmp_path, forward_settings.read_environment,
                            forward_settings.load_settings, name)
    run = file_problems(tmp_path, run_settings.read_environment, run_settings.load_settings, name)
    assert len(forward) == by_forward, forward
    assert len(run) == by_run, run
    # Each one names the line that sets it, as the invalid values do.
    line = f"{tmp_path / 'bessai.env'}:5: "
    assert [problem for problem in forward + run if not problem.startswith(line)] == []


@pytest.mark.parametrize("lines, expected", [
    (["MQTT_PASSWORD_FILE=/etc/bessai/mqtt-password", "MQTT_PASSWORD=x"],
     ":6: MQTT_PASSWORD and MQTT_PASSWORD_FILE are both set"),
    (["MQTT_PASSWORD=x"], ":5: MQTT_PASSWORD is set but MQTT_USERNAME is missing"),
    (["MQTT_TLS_KEY=/etc/bessai/client.key"], ":5: MQTT_TLS_CERT and MQTT_TLS_KEY go together"),
])
def test_forward_settings_two_setting_problem_located(tmp_path, lines, expected):
    from bessai_edge.forward.settings import read_environment

    env_file = tmp_path / "bessai.env"
    env_file.write_text("MQTT_ENABLED=true\nMQTT_BROKER_HOST=192.0.2.7\nSITE_ID=a\n"
                        "FORWARD_STATE_DIR=" + str(tmp_path) + "\n"
                        + "".join(line + "\n" for line in lines))
    with pytest.raises(ConfigError) as caught:
        load_settings(read_environment(str(env_file), environ={}))
    located = [problem for problem in caught.value.problems
               if problem.startswith(f"{env_file}{expected}")]
    assert len(located) == 1, caught.value.problems


def test_forward_settings_shipped_env_file_accepted():
    from bessai_edge.forward.settings import KNOWN_NAMES, read_environment

    shipped = pathlib.Path(__file__).parents[2] / "packaging" / "bessai.env"
    settings = load_settings(read_environment(str(shipped), environ={}))
    assert not settings.enabled
    text = shipped.read_text()
    # MQTT_PASSWORD is left out on purpose: the file points to MQTT_PASSWORD_FILE.
    assert [name for name in sorted(KNOWN_NAMES - {"MQTT_PASSWORD"}) if name not in text] == []


@pytest.mark.parametrize("value", ["5", "3.1.1"])
def test_forward_settings_protocol_accepted(value):
    assert load_settings({**MINIMAL, "MQTT_PROTOCOL": value}).protocol == value


def test_forward_settings_long_client_id_shortened():
    # A 70,000-character value made a message of 70,133 bytes.
    value = "x" * 100 + " " + "x" * 69_899   # the space makes it invalid
    problem, = problems_of(MQTT_CLIENT_ID=value)
    assert problem.startswith("MQTT_CLIENT_ID='" + "x" * 60 + "'\u2026 (70000 characters) "
                              "is invalid: expected 1 to 128"), problem[:200]
    assert len(problem) < 300, len(problem)


def test_forward_settings_short_value_quoted_whole():
    problem, = problems_of(MQTT_PORT="99999")
    assert problem.startswith("MQTT_PORT='99999' is invalid"), problem


def test_forward_settings_long_file_line_shortened(tmp_path):
    from bessai_edge.forward.settings import read_environment

    env_file = tmp_path / "bessai.env"
    env_file.write_text("MQTT_ENABLED=true\nMQTT_BROKER_HOST=broker\n"
                        + "not a setting " * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(read_environment(str(env_file), environ={}))
    problem, = caught.value.problems
    assert problem.startswith(f"{env_file}:3: invalid line 'not a setting "), problem[:200]
    assert "\u2026 (69999 characters): expected NAME=VALUE" in problem, problem[:200]
    assert len(problem) < 300 + len(str(env_file)), len(problem)
