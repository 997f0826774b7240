"""The Debian package end to end, in a booted Debian 12 container.

``apt install bessai-edge`` by name from a local repository, the service in the
default simulator mode, then in modbus mode against ``bessai simulate`` on loopback,
an upgrade to a newer build, remove and purge. The lifecycle tests share one
container and run in file order: each step starts from the state the previous one
left, and once a step fails the later ones are reported as xfail.
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import free_tcp_port, require_commands
from tests.system.conftest import (SETTINGS, add_apt_repo, apt_get, build_deb, make_repo,
                                   read_settings, set_settings)

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]

SPOOL = "/var/spool/bessai"
SIMULATOR_UNIT = "bessai-test-simulator"
# Values the loopback simulator serves, so that records can only show them if the
# gateway really decoded the simulator's registers.
PINNED_SOC_PCT = 42.5
PINNED_BATTERY_TEMP_C = 31.5
CYCLE_LINE = re.compile(r"^cycle \d+: ", re.MULTILINE)


def spool_records(container):
    """Return every whole record in the container's spool, oldest segment first."""
    records = []
    for segment in sorted(container.path(SPOOL).glob("*.jsonl")):
        for line in segment.read_bytes().split(b"\n"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # the empty string after the last newline, or a line being written
    return records


def invocation_id(container, unit="bessai"):
    return container.run(f"systemctl show -p InvocationID --value {unit}").stdout.strip()


def wait_for_records(container, predicate, timeout=90):
    """Return the spool records once one of them satisfies ``predicate``; fail at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        records = spool_records(container)
        if any(predicate(record) for record in records):
            return records
        if time.monotonic() > deadline:
            status = container.run("systemctl status --no-pager -n 30 bessai", check=False)
            pytest.fail(f"no matching record in {SPOOL} after {timeout} s; "
                        f"{len(records)} records, last: {records[-1:]}\n{status.stdout}")
        time.sleep(0.5)


def wait_for_tcp(port, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def restart_and_wait_active(container):
    """Restart the gateway and return the new invocation id once it is active."""
    container.run("systemctl restart bessai")
    container.wait_for("systemctl is-active --quiet bessai", timeout=60)
    return invocation_id(container)


@pytest.fixture(scope="module")
def deb_container(boot_container, apt_repo):
    """A container of its own, because these tests purge the package at the end."""
    with boot_container("deb") as container:
        add_apt_repo(container, apt_repo)
        apt_get(container, "install", "bessai-edge")
        yield container


@pytest.fixture(scope="module")
def upgrade_deb(bessai_deb, tmp_path_factory):
    """A second build of the tree with a higher version, for the upgrade."""
    base_version = bessai_deb.name.split("_")[1]
    return build_deb(dist_dir=tmp_path_factory.mktemp("upgrade-dist"),
                     deb_version=f"{base_version}+systemtest1", log_name="build-deb-upgrade.log")


def test_lintian_no_errors_or_warnings(bessai_deb):
    require_commands("lintian")
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--no-tag-display-limit",
                             str(bessai_deb)], capture_output=True, text=True)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert tags == [], "\n".join(tags)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.incremental
class TestPackageLifecycle:
    def test_install_by_name_sets_up_system(self, deb_container, bessai_deb):
        container = deb_container
        version = bessai_deb.name.split("_")[1]
        status = container.run("dpkg-query -W -f='${Status} ${Version}' bessai-edge").stdout
        assert status == f"install ok installed {version}"
        assert version in container.run("bessai --version").stdout

        assert container.run(f"stat -c '%a %U %G' {SETTINGS}").stdout.split() == [
            "640", "root", "bessai"]
        conffiles = container.run("dpkg-query -W -f='${Conffiles}' bessai-edge").stdout
        assert SETTINGS in conffiles
        assert re.search(r"^BESSAI_MODE=simulator$", read_settings(container), re.MULTILINE)

        for directory in (SPOOL, "/var/lib/bessai"):
            owner = container.run(f"stat -c '%U %G %a' {directory}").stdout.split()
            assert owner == ["bessai", "bessai", "750"], directory
        account = container.run("getent passwd bessai").stdout.strip().split(":")
        assert int(account[2]) < 1000, account
        assert account[6] in ("/usr/sbin/nologin", "/bin/false"), account

        for unit in ("bessai", "bessai-forward"):
            assert container.run(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
        # The forwarder exits at once with MQTT_ENABLED=false; that must not count as failed.
        assert container.run("systemctl --failed --no-legend --plain").stdout.strip() == ""
        assert "huawei_sun2000" in container.run("bessai profiles").stdout
        assert container.path("/usr/share/man/man8/bessai.8.gz").is_file()
        assert container.path("/usr/share/bessai/registry").is_dir()
        guides = "/usr/share/doc/bessai-edge"
        for guide in ("README.es.md", "docs/connect-inverter.md", "docs/es/configuration.md"):
            assert any(container.path(f"{guides}/{guide}{suffix}").is_file()
                       for suffix in ("", ".gz")), guide

    def test_simulator_mode_writes_cycles_and_spool(self, deb_container):
        container = deb_container
        # The default health port is fixed, and the container shares the host network.
        health_port = free_tcp_port()
        set_settings(container, HEALTH_LISTEN=f"127.0.0.1:{health_port}")
        container.run("systemctl start bessai")
        invocation = restart_and_wait_active(container)

        wait_for_records(container, lambda record: record.get("values", {}).get("soc_pct") is not None)
        journal = container.wait_for(
            f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation} "
            "| grep -E '^cycle [0-9]+: '").stdout
        assert CYCLE_LINE.search(journal), journal

        records = spool_records(container)
        last = records[-1]
        assert last["device"] == "inverter"
        assert last["quality"]["soc_pct"] == "ok"
        assert 0.0 <= last["values"]["soc_pct"] <= 100.0
        assert container.run("systemctl is-active bessai").stdout.strip() == "active"

        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/health", timeout=10) as reply:
            assert reply.status == 200

    def test_modbus_mode_reads_loopback_simulator(self, deb_container):
        container = deb_container
        port = free_tcp_port()
        container.run(
            f"systemd-run --unit={SIMULATOR_UNIT} /usr/bin/bessai simulate "
            f"--profile huawei_sun2000 --port {port} "
            f"--set soc_pct={PINNED_SOC_PCT} --set battery_temp_c={PINNED_BATTERY_TEMP_C}")
        wait_for_tcp(port)
        # The relative profile path is how BESSAI users write it; the service's working
        # directory is /, so only the installed registry can resolve it.
        set_settings(container, BESSAI_MODE="modbus", INVERTER_IP="127.0.0.1",
                     INVERTER_PORT=port, DRIVER_PROFILE_PATH="registry/huawei_sun2000.json")
        invocation = restart_and_wait_active(container)

        def shows_pinned_values(record):
            values = record.get("values", {})
            return (record.get("profile") == "huawei_sun2000"
                    and values.get("soc_pct") == pytest.approx(PINNED_SOC_PCT)
                    and values.get("battery_temp_c") == pytest.approx(PINNED_BATTERY_TEMP_C))

        records = wait_for_records(container, shows_pinned_values)
        assert records[-1]["state"] in ("ok", "degraded")
        journal = container.wait_for(
            f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation} "
            f"| grep -F 'soc={PINNED_SOC_PCT:.1f}%'").stdout
        assert CYCLE_LINE.search(journal), journal

    def test_upgrade_keeps_settings_and_spool(self, deb_container, bessai_deb, upgrade_deb,
                                              tmp_path_factory):
        container = deb_container
        settings_before = read_settings(container)
        segments_before = sorted(path.name for path in container.path(SPOOL).glob("*.jsonl"))
        last_seq_before = spool_records(container)[-1]["seq"]
        invocation_before = invocation_id(container)

        repo = make_repo([bessai_deb, upgrade_deb], tmp_path_factory.mktemp("apt-upgrade") / "repo")
        add_apt_repo(container, repo)
        upgrade = apt_get(container, "install", "bessai-edge")

        # The forwarder ends inactive with MQTT_ENABLED=false, which is no failure.
        assert "failed to start" not in upgrade.stdout + upgrade.stderr
        new_version = upgrade_deb.name.split("_")[1]
        assert container.run("dpkg-query -W -f='${Version}' bessai-edge").stdout == new_version
        # The build's own version, not the source tree's, so a report names the right one.
        assert container.run("bessai --version").stdout.split() == ["bessai-edge", new_version]
        assert read_settings(container) == settings_before
        assert container.run(f"stat -c '%a %U %G' {SETTINGS}").stdout.split() == [
            "640", "root", "bessai"]
        segments_after = {path.name for path in container.path(SPOOL).glob("*.jsonl")}
        assert set(segments_before) <= segments_after

        container.wait_for("systemctl is-active --quiet bessai", timeout=60)
        invocation = invocation_id(container)
        assert invocation != invocation_before, "the upgrade did not restart bessai"
        wait_for_records(container, lambda record: record["seq"] > last_seq_before)
        container.wait_for(f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation} "
                           f"| grep -F 'bessai-edge {new_version} starting'")
        sequence = [record["seq"] for record in spool_records(container)]
        assert sequence == sorted(sequence)

    def test_reinstall_invalid_settings_names_unit(self, deb_container):
        container = deb_container
        saved = read_settings(container)
        set_settings(container, SCAN_INTERVAL_S="1,5")
        try:
            # The reinstall's restart fails with exit status 78, so the unit ends failed.
            reinstall = apt_get(container, "install", "--reinstall", "bessai-edge")
            state = container.run("systemctl show -p ActiveState --value bessai").stdout.strip()
        finally:
            container.path(SETTINGS).write_text(saved)
        output = reinstall.stdout + reinstall.stderr

        assert state == "failed", output
        assert ("bessai-edge: bessai.service failed to start and is not running. "
                "To see why, run:\n"
                "bessai-edge:   journalctl -u bessai -n 20\n"
                f"bessai-edge:   bessai check --env-file {SETTINGS}\n") in output
        assert "bessai-forward.service failed" not in output   # MQTT_ENABLED=false
        assert container.run("dpkg-query -W -f='${Status}' bessai-edge").stdout == (
            "install ok installed")

    def test_reinstall_quiet_for_disabled_unit(self, deb_container):
        container = deb_container
        saved = read_settings(container)
        set_settings(container, SCAN_INTERVAL_S="1,5")
        # bessai is disabled and still failed from the step before. debhelper does not
        # start it, so its old failure must not be reported as this reinstall's.
        container.run("systemctl disable bessai")
        try:
            state = container.run("systemctl show -p ActiveState --value bessai").stdout.strip()
            reinstall = apt_get(container, "install", "--reinstall", "bessai-edge")
        finally:
            container.path(SETTINGS).write_text(saved)
            container.run("systemctl reset-failed bessai", check=False)
            container.run("systemctl enable --now bessai")
        output = reinstall.stdout + reinstall.stderr

        assert state == "failed"
        assert "failed to start" not in output
        container.wait_for("systemctl is-active --quiet bessai", timeout=60)

    def test_remove_keeps_settings_and_spool(self, deb_container):
        container = deb_container
        container.run(f"systemctl stop {SIMULATOR_UNIT}", check=False)
        settings_before = read_settings(container)
        records_before = len(spool_records(container))
        apt_get(container, "remove", "bessai-edge")

        status = container.run("dpkg-query -W -f='${db:Status-Abbrev}' bessai-edge").stdout
        assert status.strip() == "rc"
        assert read_settings(container) == settings_before
        assert len(spool_records(container)) >= records_before > 0
        assert not container.path("/usr/bin/bessai").exists()
        assert not container.path("/usr/lib/bessai-edge").exists()
        state = container.run("systemctl show -p ActiveState --value bessai").stdout.strip()
        assert state in ("inactive", "failed"), state

    def test_purge_deletes_settings_and_spool(self, deb_container):
        container = deb_container
        # The MQTT password file as docs/forwarder.md has the admin create it.
        container.run("install -m 600 -o bessai -g bessai /dev/null /etc/bessai/mqtt-password"
                      " && echo broker-secret > /etc/bessai/mqtt-password")
        purge = apt_get(container, "purge", "bessai-edge")

        assert "not empty so not removed" not in purge.stdout + purge.stderr
        assert container.run("dpkg-query -W bessai-edge", check=False).returncode != 0
        for path in ("/etc/bessai", SPOOL, "/var/lib/bessai",
                     "/etc/systemd/system/multi-user.target.wants/bessai.service"):
            assert not os.path.lexists(container.path(path)), f"{path} left after purge"
        override = container.run(f"dpkg-statoverride --list {SETTINGS}", check=False)
        assert override.stdout == "", override.stdout
        # Debian packages leave their system users behind, and so does this one.
        assert container.run("getent passwd bessai", check=False).returncode == 0
