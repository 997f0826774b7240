"""bessai.service under a real systemd: notify, watchdog, journald fields, exit 78, hardening.

Runs in the session's booted Debian 12 container with the package installed from the
local APT repository (``installed_container``). The module sets its own settings and a
drop-in with a short watchdog and restart delay, and puts both back when it ends.
The tests are steps in file order on one running service.
"""

import contextlib
import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO, free_tcp_port
from tests.forward.broker import Mosquitto
from tests.system.conftest import SETTINGS, set_settings

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]

UNIT = "bessai"
DROP_IN_DIR = "/etc/systemd/system/bessai.service.d"
DROP_IN = f"{DROP_IN_DIR}/50-test-service.conf"
# A 3 s watchdog (WATCHDOG=1 due every 0.75 s), SIGKILL 2 s after the SIGABRT that a
# stopped process cannot handle, and 1 s between restarts keep the test short.
DROP_IN_TEXT = """[Service]
WatchdogSec=3
TimeoutAbortSec=2
RestartSec=1
"""
# The simulator's battery sits near 28 C; a 1 C warning level raises an alarm at once.
ALARM = "inverter:battery_temp_c:high_warn"
ALARM_SETTINGS = {
    "LIMIT_BATTERY_TEMP_LOW_TRIP": "off",
    "LIMIT_BATTERY_TEMP_LOW_WARN": "off",
    "LIMIT_BATTERY_TEMP_HIGH_WARN": "1",
    "LIMIT_BATTERY_TEMP_HIGH_TRIP": "off",
}
# For the stop test: a stop timeout shorter than the request in flight, and a watchdog
# long enough not to fire while that request waits.
STOP_DROP_IN = f"{DROP_IN_DIR}/60-test-stop.conf"
STOP_DROP_IN_TEXT = """[Service]
TimeoutStopSec=2
WatchdogSec=60
"""
MAX_EXPOSURE = 2.0
FORWARD_UNIT = "bessai-forward"


def shipped_line(name):
    """Return the line number of NAME= in the shipped settings file (set_settings keeps it)."""
    lines = (REPO / "packaging" / "bessai.env").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(f"{name}="))
_EXPOSURE = re.compile(r"Overall exposure level for bessai\.service: (\d+\.\d+)")


def show(container, *properties):
    """Return ``systemctl show`` properties of the unit as a dict of strings."""
    args = " ".join(f"-p {name}" for name in properties)
    output = container.run(f"systemctl show {args} {UNIT}").stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def journal_entries(container, *matches, invocation=None):
    """Return the unit's journal entries as dicts, optionally for one invocation."""
    command = f"journalctl --no-pager -o json -u {UNIT}"
    if invocation:
        command += f" _SYSTEMD_INVOCATION_ID={invocation}"
    command += "".join(f" {match}" for match in matches)
    output = container.run(command).stdout
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def wait_for_entries(container, *matches, invocation=None, count=1, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        entries = journal_entries(container, *matches, invocation=invocation)
        if len(entries) >= count:
            return entries
        if time.monotonic() > deadline:
            status = container.run(f"systemctl status --no-pager -n 40 {UNIT}", check=False)
            pytest.fail(f"fewer than {count} journal entries matching {matches} after "
                        f"{timeout} s:\n{status.stdout}")
        time.sleep(0.3)


def wait_for_property(container, name, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = show(container, name)[name]
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            status = container.run(f"systemctl status --no-pager -n 40 {UNIT}", check=False)
            pytest.fail(f"{name}={value!r} still not as expected after {timeout} s:\n"
                        f"{status.stdout}")
        time.sleep(0.2)


def restart_after(container, command):
    """Run ``command`` ({pid} is the main PID) and wait for the automatic restart.

    Return the unit's MainPID and NRestarts before, and its MainPID after.
    """
    before = show(container, "MainPID", "NRestarts")
    container.run(command.format(pid=before["MainPID"]))
    wait_for_property(container, "NRestarts",
                      lambda value: int(value) > int(before["NRestarts"]))
    container.wait_for(f"systemctl is-active --quiet {UNIT}", timeout=60)
    return before, show(container, "MainPID")


def check_with_each(container, name, values):
    """Run ``bessai check`` once with setting ``name`` set to each of ``values``."""
    results = []
    for value in values:
        set_settings(container, **{name: value})
        results.append(container.run(f"bessai check --env-file {SETTINGS}", check=False,
                                     env={"LANG": "C.UTF-8"}))
    return results


def forwarder_state(container, *properties):
    """Return the forwarder unit's ``properties`` and the journal of its last invocation."""
    args = " ".join(f"-p {name}" for name in (*properties, "InvocationID"))
    output = container.run(f"systemctl show {args} {FORWARD_UNIT}").stdout
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    log = container.run(f"journalctl --no-pager -o cat "
                        f"_SYSTEMD_INVOCATION_ID={values['InvocationID']}").stdout
    return values, log


@contextlib.contextmanager
def forwarding_to(container, port):
    """Switch forwarding on, to 127.0.0.1:``port``; afterwards stop the unit and restore."""
    saved = container.path(SETTINGS).read_text()
    set_settings(container, MQTT_ENABLED="true", MQTT_BROKER_HOST="127.0.0.1",
                 MQTT_PORT=str(port))
    try:
        yield
    finally:
        container.run(f"systemctl stop {FORWARD_UNIT}", check=False)
        container.run(f"systemctl reset-failed {FORWARD_UNIT}", check=False)
        container.path(SETTINGS).write_text(saved)


def restart_forwarder_until_failed(container):
    """Restart the forwarder unit and wait until it failed; return its exit status and journal."""
    container.run(f"systemctl restart {FORWARD_UNIT}", check=False)
    container.wait_for(f"systemctl is-failed --quiet {FORWARD_UNIT}", timeout=60)
    return forwarder_state(container, "ExecMainStatus")


def start_fresh(container):
    """Restart the unit, wait until it is active and return its invocation id."""
    container.run(f"systemctl reset-failed {UNIT}", check=False)
    container.run(f"systemctl restart {UNIT}")
    container.wait_for(f"systemctl is-active --quiet {UNIT}", timeout=60)
    return show(container, "InvocationID")["InvocationID"]


@pytest.fixture(scope="module")
def service(installed_container):
    """The container with bessai running in simulator mode on a free health port."""
    container = installed_container
    settings_path = container.path(SETTINGS)
    saved_settings = settings_path.read_text()
    health_port = free_tcp_port()
    container.run(f"mkdir -p {DROP_IN_DIR}")
    container.path(DROP_IN).write_text(DROP_IN_TEXT)
    set_settings(container, BESSAI_MODE="simulator", SITE_ID="cl-booted-01",
                 SCAN_INTERVAL_S="0.5", HEALTH_LISTEN=f"127.0.0.1:{health_port}",
                 **ALARM_SETTINGS)
    container.run("systemctl daemon-reload")
    try:
        yield container, health_port
    finally:
        container.run(f"systemctl stop {UNIT}", check=False)
        settings_path.write_text(saved_settings)
        container.path(DROP_IN).unlink(missing_ok=True)
        container.run("systemctl daemon-reload", check=False)
        container.run(f"systemctl reset-failed {UNIT}", check=False)


def get_health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.incremental
class TestServiceUnderSystemd:
    def test_active_with_status_watchdog_and_hardening(self, service):
        container, _port = service
        start_fresh(container)

        status_text = wait_for_property(container, "StatusText",
                                        lambda value: value.startswith("cycle ") and
                                        not value.startswith("cycle 0;"))
        first = int(wait_for_property(container, "WatchdogTimestampMonotonic",
                                      lambda value: value not in ("", "0")))
        later = int(wait_for_property(container, "WatchdogTimestampMonotonic",
                                      lambda value: int(value) > first))
        properties = show(container, "Type", "MainPID", "WatchdogUSec", "NRestarts",
                          "MemoryDenyWriteExecute", "User")
        pid = properties["MainPID"]
        process_status = container.run(f"cat /proc/{pid}/status").stdout
        fields = dict(re.findall(r"^(\w+):\s+(.*)$", process_status, re.MULTILINE))
        owner = container.run(f"stat -c %U /proc/{pid}").stdout.strip()

        assert container.run(f"systemctl is-active {UNIT}").stdout.strip() == "active"
        assert re.match(r"cycle \d+; inverter (ok|degraded); ", status_text), status_text
        assert later > first
        assert properties["Type"] == "notify"
        assert properties["WatchdogUSec"] == "3s"
        assert properties["MemoryDenyWriteExecute"] == "yes"
        assert owner == "bessai"
        assert fields["NoNewPrivs"] == "1"
        assert fields["Seccomp"] == "2"
        assert int(fields["CapEff"], 16) == 0

    def test_journal_cycle_lines_with_fields(self, service):
        container, _port = service
        invocation = show(container, "InvocationID")["InvocationID"]

        cycles = wait_for_entries(container, "BESSAI_EVENT=cycle", invocation=invocation)
        startup = wait_for_entries(container, "BESSAI_EVENT=startup", invocation=invocation)
        device = wait_for_entries(container, "BESSAI_EVENT=device_state",
                                  "BESSAI_DEVICE=inverter", invocation=invocation)

        cycle = cycles[0]
        assert re.match(r"cycle \d+: soc=", cycle["MESSAGE"]), cycle["MESSAGE"]
        assert cycle["BESSAI_CYCLE"] == "1"
        assert cycle["BESSAI_SITE"] == "cl-booted-01"
        assert cycle["SYSLOG_IDENTIFIER"] == "bessai"
        assert cycle["PRIORITY"] == "6"
        assert cycle["_TRANSPORT"] == "journal"
        assert cycle["LOGGER"] == "bessai_edge.scanloop"
        assert startup[0]["BESSAI_SITE"] == "cl-booted-01"
        assert device[0]["BESSAI_DEVICE_STATE"] in ("ok", "degraded")
        assert device[0]["BESSAI_PROFILE"] == "huawei_sun2000"

    def test_alarm_query_and_health(self, service):
        container, port = service
        invocation = show(container, "InvocationID")["InvocationID"]

        # The query from systemd/README.md, as a technician types it.
        raised = wait_for_entries(container, f"BESSAI_ALARM={ALARM}", "BESSAI_ALARM_STATE=raised",
                                  invocation=invocation)
        status, document = get_health(port)

        assert raised[0]["PRIORITY"] == "4"
        assert raised[0]["BESSAI_EVENT"] == "alarm"
        assert raised[0]["MESSAGE"] == f"alarm {ALARM} raised"
        assert status == 503
        assert document["status"] == "degraded"
        assert ALARM in document["active_alarms"]
        assert document["site"] == "cl-booted-01"
        assert document["spool_backlog"]["bytes"] > 0

    def test_clock_status_read_inside_the_sandbox(self, service):
        # The unit's system call filter must let the read-only adjtimex through: a
        # filtered call kills the gateway before its first cycle line, and ProtectClock=
        # makes the call fail, which /health would show as null.
        container, port = service
        invocation = start_fresh(container)
        wait_for_entries(container, "BESSAI_EVENT=cycle", invocation=invocation)
        _status, document = get_health(port)
        timedated = container.run("timedatectl show -p NTPSynchronized --value").stdout.strip()

        assert document["clock_synced"] is (timedated == "yes")

    def test_watchdog_restarts_stopped_process(self, service):
        container, _port = service
        before, after = restart_after(container, "kill -STOP {pid}")
        log = container.run(f"journalctl --no-pager -o cat -u {UNIT} -n 200").stdout

        assert after["MainPID"] not in ("0", before["MainPID"])
        assert "Watchdog timeout" in log
        assert "Failed with result 'watchdog'" in log

    def test_sigterm_from_kill_restarts(self, service):
        # With Restart=on-failure a stray SIGTERM (systemctl kill, kill PID) stopped the
        # gateway for good: it exits 0 after one, which systemd counts as clean.
        container, _port = service
        before, after = restart_after(container, f"systemctl kill {UNIT}")

        assert after["MainPID"] not in ("0", before["MainPID"])

    def test_forwarder_off_ends_inactive_without_restart(self, service):
        container, _port = service
        container.run(f"systemctl restart {FORWARD_UNIT}", check=False)
        time.sleep(7)   # longer than RestartSec=5, so a restart would have happened
        properties, _log = forwarder_state(container, "ActiveState", "Result",
                                           "ExecMainStatus", "NRestarts")

        assert properties["ActiveState"] == "inactive"
        assert properties["Result"] == "success"
        assert properties["ExecMainStatus"] == "69"
        assert properties["NRestarts"] == "0"

    def test_abort_leaves_python_traceback(self, service):
        container, _port = service
        before = show(container, "MainPID", "NRestarts")
        invocation = show(container, "InvocationID")["InvocationID"]

        # SIGABRT is what systemd sends on a watchdog timeout (WatchdogSignal=).
        container.run(f"kill -ABRT {before['MainPID']}")
        wait_for_property(container, "NRestarts",
                          lambda value: int(value) > int(before["NRestarts"]))
        container.wait_for(f"systemctl is-active --quiet {UNIT}", timeout=60)
        log = container.run(f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}"
                            ).stdout

        assert "Fatal Python error: Aborted" in log
        assert "bessai_edge" in log  # the stack of the main thread names our modules

    @pytest.mark.parametrize("name, value, message", [
        ("SCAN_INTERVAL_S", "banana", f"{SETTINGS}:{shipped_line('SCAN_INTERVAL_S')}: "
                                      "SCAN_INTERVAL_S='banana' is invalid"),
        # Misspelt in the file: without --env-file the unit would poll the default port.
        ("INVERTER_PORTT", "5020", "INVERTER_PORTT is not a bessai setting: did you mean "
                                   "INVERTER_PORT?"),
        ("SPOOL_DIR", "/var/lib/bessai", "spool directory /var/lib/bessai is read-only for "
                                         "the service: the bessai unit may write only to "
                                         "/var/spool/bessai"),
        # ProtectHome=yes denies /root: this was a traceback, exit 1 and a restart loop.
        ("DRIVER_PROFILE_PATH", "/root/site.json", "/root/site.json: cannot read the profile: "
                                                   "permission denied; user bessai, which the "
                                                   "services run as, needs read access"),
        # A file in the shell's /tmp was "not found" for the service, with no reason.
        ("DRIVER_PROFILE_PATH", "/tmp/site.json", "the service has a private /tmp "
                                                  "(PrivateTmp=yes), where the file is not "
                                                  "found"),
    ])
    def test_config_error_exits_78_without_restart(self, service, name, value, message):
        container, _port = service
        saved = container.path(SETTINGS).read_text()
        set_settings(container, **{name: value})
        try:
            # A manual restart sets NRestarts back to 0; it counts automatic restarts.
            container.run(f"systemctl restart {UNIT}", check=False)
            wait_for_property(container, "ActiveState", lambda state: state == "failed")
            restarts = show(container, "NRestarts")["NRestarts"]
            # Five times RestartSec: a restart loop would have started again by now.
            time.sleep(5)
            properties = show(container, "ActiveState", "ExecMainStatus", "NRestarts",
                              "Result")
            invocation = show(container, "InvocationID")["InvocationID"]
            log = container.run(f"journalctl --no-pager -o cat "
                                f"_SYSTEMD_INVOCATION_ID={invocation}").stdout
        finally:
            container.path(SETTINGS).write_text(saved)

        assert properties["ActiveState"] == "failed"
        assert properties["ExecMainStatus"] == "78"
        assert properties["Result"] == "exit-code"
        assert restarts == "0"
        assert properties["NRestarts"] == "0"
        assert message in log

    def test_forwarder_misspelt_name_exits_78(self, service):
        container, _port = service
        saved = container.path(SETTINGS).read_text()
        container.path(SETTINGS).write_text(
            re.sub(r"^MQTT_ENABLED=.*$", "MQT_ENABLED=false", saved, flags=re.MULTILINE))
        try:
            container.run(f"systemctl restart {FORWARD_UNIT}", check=False)
            properties, log = forwarder_state(container, "ActiveState", "ExecMainStatus")
        finally:
            container.path(SETTINGS).write_text(saved)
            container.run(f"systemctl reset-failed {FORWARD_UNIT}", check=False)

        # With forwarding off the forwarder used to end inactive without a word.
        assert properties["ActiveState"] == "failed", log
        assert properties["ExecMainStatus"] == "78"
        assert (f"{SETTINGS}:{shipped_line('MQTT_ENABLED')}: MQT_ENABLED is not a bessai "
                f"setting: did you mean MQTT_ENABLED?") in log

    def test_forwarder_lock_message_names_service_pid(self, service):
        # The lock message named a pgrep pattern that missed the installed service,
        # whose command line is "python3 -I -m bessai_edge forward".
        container, _port = service
        with forwarding_to(container, free_tcp_port()):  # no broker: it keeps retrying
            container.run(f"systemctl restart {FORWARD_UNIT}")
            container.wait_for(f"systemctl is-active --quiet {FORWARD_UNIT}", timeout=60)
            main_pid = container.run(f"systemctl show -p MainPID --value {FORWARD_UNIT}"
                                     ).stdout.strip()
            manual = container.run(f"runuser -u bessai -- bessai forward --env-file {SETTINGS}",
                                   check=False, env={"LANG": "C.UTF-8"})

        assert manual.returncode == 78, manual.stderr
        assert f"another bessai forward process, PID {main_pid} " in manual.stderr
        assert f"(kill {main_pid})" in manual.stderr

    def test_settings_file_unreadable_by_service_names_fix(self, service):
        # The service's message advised "run the command with sudo".
        container, _port = service
        container.run(f"chmod 600 {SETTINGS}")
        try:
            container.run(f"systemctl restart {UNIT}", check=False)
            wait_for_property(container, "ActiveState", lambda state: state == "failed")
            invocation = show(container, "InvocationID")["InvocationID"]
            log = container.run(f"journalctl --no-pager -o cat "
                                f"_SYSTEMD_INVOCATION_ID={invocation}").stdout
        finally:
            container.run(f"chmod 640 {SETTINGS}")
            start_fresh(container)

        assert (f"cannot read settings file {SETTINGS}: permission denied; the services read "
                f"it as user bessai, through group bessai: chown root:bessai {SETTINGS} and "
                f"chmod 640 {SETTINGS}") in log, log

    def test_root_run_by_hand_leaves_files_to_bessai(self, service):
        # A segment that a root shell's `bessai run` created was root's, 0640, and the
        # forwarder, running as bessai, stopped at it for good.
        container, _port = service
        container.run(f"systemctl stop {UNIT}")
        try:
            manual = container.run(f"bessai run --env-file {SETTINGS} --cycles 2",
                                   check=False, env={"LANG": "C.UTF-8"})
            owners = container.run("stat -c '%U %n' /var/spool/bessai/*").stdout.splitlines()
            state_mode = container.run("stat -c %a /var/spool/bessai/spool-state.json").stdout
        finally:
            start_fresh(container)

        assert manual.returncode == 0, manual.stderr
        assert ("running as root: switched to user bessai (uid "
                in manual.stderr), manual.stderr
        assert owners and all(line.startswith("bessai ") for line in owners), owners
        assert state_mode.strip() == "640"   # the units' UMask=0027, not the shell's 022

    def test_forwarder_unreadable_checkpoint_exits_78(self, service):
        # A checkpoint that a root run left behind gave a traceback and a restart loop.
        container, _port = service
        checkpoint = "/var/lib/bessai/forward-checkpoint.json"
        container.run(f"echo '{{}}' > {checkpoint} && chmod 600 {checkpoint}")
        try:
            with forwarding_to(container, free_tcp_port()):
                properties, log = restart_forwarder_until_failed(container)
        finally:
            container.run(f"rm -f {checkpoint}")

        assert properties["ExecMainStatus"] == "78", log
        assert (f"cannot read the checkpoint {checkpoint}: permission denied: give it to the "
                f"user that runs the forwarder (bessai): chown bessai: {checkpoint}") in log

    def test_check_warns_unreadable_profile(self, service):
        container, _port = service
        saved = container.path(SETTINGS).read_text()
        container.run("cp /usr/share/bessai/registry/huawei_sun2000.json /root/site.json")
        container.run("install -d -m 700 /etc/bessai/private && "
                      "cp /root/site.json /etc/bessai/private/site.json")
        try:
            in_root, private = check_with_each(container, "DRIVER_PROFILE_PATH", (
                "/root/site.json", "/etc/bessai/private/site.json"))
        finally:
            container.path(SETTINGS).write_text(saved)
            container.run("rm -rf /root/site.json /etc/bessai/private")

        assert ("the installed services will not start: profile /root/site.json is under "
                "/root, which the units' ProtectHome=yes hides from the services") in \
            in_root.stderr
        assert ("the installed services will not start: profile "
                "/etc/bessai/private/site.json is not readable by the bessai user") in \
            private.stderr

    def test_check_warns_unreadable_settings_and_password(self, service):
        # Both passed `bessai check` in a root shell, then stopped the services.
        container, _port = service
        saved = container.path(SETTINGS).read_text()
        password = "/etc/bessai/mqtt-password"
        container.run(f"install -m 600 /dev/null {password} && echo secret > {password}")
        set_settings(container, MQTT_ENABLED="true", MQTT_BROKER_HOST="127.0.0.1",
                     MQTT_USERNAME="gateway", MQTT_PASSWORD_FILE=password)
        container.run(f"chmod 600 {SETTINGS}")
        try:
            result = container.run(f"bessai check --env-file {SETTINGS}", check=False,
                                   env={"LANG": "C.UTF-8"})
        finally:
            container.run(f"chmod 640 {SETTINGS} && rm -f {password}")
            container.path(SETTINGS).write_text(saved)

        assert (f"the installed services will not start: settings file {SETTINGS} is not "
                f"readable by the bessai user: chown root:bessai {SETTINGS} and chmod 640 "
                f"{SETTINGS}") in result.stderr, result.stderr
        assert (f"`bessai forward` will not start: MQTT_PASSWORD_FILE {password} is not "
                f"readable by the bessai user: chown bessai: {password} and chmod 600 "
                f"{password}") in result.stderr, result.stderr

    def test_forwarder_unreadable_segment_exits_78(self, service, tmp_path):
        # A segment that a root shell left behind stopped delivery for good, while the
        # forwarder logged a warning a minute and looked active.
        container, _port = service
        broker = Mosquitto(tmp_path / "broker").start()   # on the host's loopback
        segment = "/var/spool/bessai/" + sorted(
            container.path("/var/spool/bessai").glob("*.jsonl"))[0].name
        container.run(f"chown root:root {segment} && chmod 600 {segment}")
        try:
            with forwarding_to(container, broker.port):
                properties, log = restart_forwarder_until_failed(container)
        finally:
            container.run(f"chown bessai:bessai {segment} && chmod 640 {segment}")
            broker.stop()

        assert properties["ExecMainStatus"] == "78", log
        assert (f"cannot read spool segment {segment}: permission denied: give the spool's "
                f"files to the user that owns the spool directory: chown -R bessai: "
                f"/var/spool/bessai") in log, log

    def test_check_sees_spool_as_the_services_do(self, service):
        # A root shell passed a spool that the units' sandbox and user then rejected.
        container, _port = service
        default = container.run(f"bessai check --env-file {SETTINGS}", check=False,
                                env={"LANG": "C.UTF-8"})
        saved = container.path(SETTINGS).read_text()
        container.run("mkdir -p /srv/bessai-spool && chmod 750 /srv/bessai-spool")
        try:
            result, in_tmp = check_with_each(container, "SPOOL_DIR",
                                             ("/srv/bessai-spool", "/tmp"))
        finally:
            container.path(SETTINGS).write_text(saved)
            container.run("rm -rf /srv/bessai-spool")

        assert ("the installed services will not start: spool directory /srv/bessai-spool "
                "is outside the paths the bessai and bessai-forward units may write to: add "
                "it with ReadWritePaths= in a drop-in for each (systemctl edit bessai, then "
                "systemctl edit bessai-forward)") in result.stderr, result.stderr
        assert "will not start" not in default.stderr, default.stderr  # /var/spool/bessai
        assert ("spool directory /tmp is under /tmp, which the units' PrivateTmp=yes hides "
                "from the services") in in_tmp.stderr, in_tmp.stderr
        assert ("spool directory /srv/bessai-spool is not writable by the bessai user, which "
                "the services run as: chown -R bessai: /srv/bessai-spool") in result.stderr

    def test_check_without_env_file_names_installed_file(self, service):
        container, _port = service
        result = container.run("bessai check", check=False, env={"LANG": "C.UTF-8"})

        assert result.returncode == 78
        assert "bessai: SITE_ID is missing" in result.stderr
        assert (f"bessai: the installed settings are in {SETTINGS}, which this command reads "
                f"only with --env-file {SETTINGS}") in result.stderr

    def test_check_names_timeouts_the_watchdog_shortens(self, service):
        # check passed with timeouts that the service, under WatchdogSec=3, then cut to fit.
        container, _port = service
        start_fresh(container)  # systemd reports the WatchdogSec the running service got
        result = container.run(f"bessai check --env-file {SETTINGS}", check=False,
                               env={"LANG": "C.UTF-8"})
        assert re.search(
            r"bessai check: warning: the installed service uses a connect timeout of 1\.5 s "
            r"and a request timeout of 0\.5 s for inverter, not the 2 s and [\d.]+ s used "
            r"here, to fit its 3 s watchdog", result.stderr), result.stderr

    def test_security_exposure_within_target(self, service):
        container, _port = service
        output = container.run(f"systemd-analyze security --no-pager {UNIT}.service").stdout

        match = _EXPOSURE.search(output)
        assert match, output[-2000:]
        assert float(match.group(1)) <= MAX_EXPOSURE

    def test_clean_stop_flushes_and_exits_zero(self, service):
        container, _port = service
        invocation = start_fresh(container)
        wait_for_entries(container, "BESSAI_EVENT=cycle", invocation=invocation)

        container.run(f"systemctl stop {UNIT}")
        properties = show(container, "ActiveState", "ExecMainStatus", "Result")
        shutdown = wait_for_entries(container, "BESSAI_EVENT=shutdown", invocation=invocation)
        segments = sorted(container.path("/var/spool/bessai").glob("*.jsonl"))
        last_line = segments[-1].read_bytes().rsplit(b"\n", 2)

        assert properties["ActiveState"] == "inactive"
        assert properties["ExecMainStatus"] == "0"
        assert properties["Result"] == "success"
        assert shutdown[0]["MESSAGE"].startswith("stopped after ")
        assert last_line[-1] == b""  # the segment ends with a whole line
        assert json.loads(last_line[-2])["site"] == "cl-booted-01"
        # The simulator child stops after the gateway's last cycle, not with it: that
        # cycle's record was sometimes "down" with every value null.
        assert json.loads(last_line[-2])["state"] == "ok"
        assert "device state ok -> " not in container.run(
            f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}").stdout

    def test_stop_waits_for_request_in_flight(self, service):
        container, _port = service
        saved = container.path(SETTINGS).read_text()
        # Not a mock: a real TCP peer that completes the handshake (the kernel does,
        # from the backlog) and never replies, like an inverter whose Modbus server hangs.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            set_settings(container, BESSAI_MODE="modbus", INVERTER_IP="127.0.0.1",
                         INVERTER_PORT=str(silent.getsockname()[1]), REQUEST_TIMEOUT_S="8")
            container.path(STOP_DROP_IN).write_text(STOP_DROP_IN_TEXT)
            container.run("systemctl daemon-reload")
            try:
                # READY=1 comes after the connection's quiet time, so the stop arrives
                # while cycle 1 waits up to 8 s for its first reply: past TimeoutStopSec=2.
                invocation = start_fresh(container)
                container.run(f"systemctl stop {UNIT}")
                properties = show(container, "ActiveState", "ExecMainStatus", "Result")
                log = container.run(f"journalctl --no-pager -o cat "
                                    f"_SYSTEMD_INVOCATION_ID={invocation}").stdout
            finally:
                container.path(SETTINGS).write_text(saved)
                container.path(STOP_DROP_IN).unlink(missing_ok=True)
                container.run("systemctl daemon-reload", check=False)

        assert properties["Result"] == "success", log
        assert properties["ExecMainStatus"] == "0"
        assert properties["ActiveState"] == "inactive"
        assert "received SIGTERM: stopped after cycle 1" in log
        assert "stopped after 1 cycle: 1 record appended, 0 dropped" in log
