"""A minimal Debian 12 root, booted with systemd-nspawn, driven through nsenter.

The root is made once by debootstrap and cached as a tarball; each container boots from
a fresh copy of it. The container shares the host's network namespace (no
``--private-network``), so a server on 127.0.0.1 inside it is reachable from the host
and the reverse, and apt inside it reaches the Debian mirror. Because nspawn runs with
``--register=no``, machined has no record of the container, and ``systemd-run
--machine`` or ``machinectl shell`` cannot reach it. Commands therefore enter the
namespaces of the container's PID 1 with ``nsenter``.
"""

import hashlib
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"

# Installed by debootstrap: what booting systemd and running apt over https need.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates")

# Downloaded into the root's APT cache but not installed, so `apt install bessai-edge`
# still resolves these dependencies itself without fetching them in every test run.
# A dependency missing here is fetched from the mirror; the tests stay correct.
PREFETCHED_PACKAGES = ("python3.11", "adduser", "libsystemd0", "systemd-timesyncd")

# Timers that would take the dpkg lock or add load at random moments during a test.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "systemd-tmpfiles-clean.timer",
)

# The system calls that read the clock's NTP status (adjtimex(2) with no change).
CLOCK_STATUS_CALLS = "adjtimex clock_adjtime clock_adjtime64"

# Bumped by hand when the way the root is made changes in a way the lists do not show.
ROOT_RECIPE_VERSION = "1"

CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}


class CommandFailed(AssertionError):
    """A command inside the container exited non-zero; the message carries its output."""


def root_tarball_name():
    """Return the cache file name, which changes whenever the recipe of the root changes."""
    recipe = "\n".join([ROOT_RECIPE_VERSION, MIRROR, SUITE, *BOOT_PACKAGES, "--",
                        *PREFETCHED_PACKAGES, "--", *MASKED_UNITS])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"debian-{SUITE}-minbase-{digest}.tar"


def build_root_tarball(tarball, log_path):
    """Debootstrap a minimal Debian 12 root that can boot, and store it as ``tarball``.

    The tarball is written under a temporary name and renamed at the end, so a crash
    never leaves a half-written cache behind. Output of every step goes to ``log_path``.
    """
    tarball = pathlib.Path(tarball)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="debootstrap-", dir=tarball.parent))
    root = work / "root"
    try:
        with open(log_path, "ab") as log:
            _run_logged(["debootstrap", "--variant=minbase",
                         "--include=" + ",".join(BOOT_PACKAGES), SUITE, str(root), MIRROR], log)
            _configure_root(root)
            _run_logged(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                         "--machine", f"bessai-root-{os.getpid()}", "-D", str(root),
                         "apt-get", "install", "--download-only", "-y", "-q",
                         *PREFETCHED_PACKAGES], log)
            partial = tarball.with_suffix(".partial")
            _run_logged(["tar", "--numeric-owner", "--xattrs", "-C", str(root),
                         "-cf", str(partial), "."], log)
            partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _configure_root(root):
    apt_conf = root / "etc/apt/apt.conf.d/90bessai-test"
    apt_conf.write_text('APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    # Images made by debootstrap keep no hostname; nspawn sets it from --machine.
    (root / "etc/hostname").unlink(missing_ok=True)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def _run_logged(argv, log):
    log.write(f"$ {shlex.join(argv)}\n".encode())
    log.flush()
    result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with status {result.returncode}; "
                           f"see {log.name}")


class Container:
    """A booted Debian root: ``run`` executes a shell command inside it.

    ``root`` is the container's root directory seen from the host: files written there
    appear inside the container at once (nspawn boots the directory itself, not a copy).
    """

    def __init__(self, root, process, leader_pid, console_log):
        self.root = pathlib.Path(root)
        self.process = process
        self.leader_pid = leader_pid
        self.console_log = pathlib.Path(console_log)

    def run(self, command, check=True, timeout=120, input=None, env=None):
        """Run ``command`` with /bin/sh inside the container and return the CompletedProcess.

        ``command`` is a shell string, or an argv list that is quoted for the shell.
        With ``check`` a non-zero exit raises CommandFailed showing stdout and stderr.
        ``env`` adds variables to the clean environment the command starts with.
        """
        if not isinstance(command, str):
            command = shlex.join(command)
        environment = dict(CONTAINER_ENV, **(env or {}))
        argv = ["nsenter", "--target", str(self.leader_pid), "--mount", "--uts", "--ipc",
                "--pid", "--root", "--wd", "--",
                "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()),
                "/bin/sh", "-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise CommandFailed(
                f"command in container exited with status {result.returncode}: {command}\n"
                f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}")
        return result

    def path(self, inside):
        """Return the host path of the absolute path ``inside`` the container."""
        return self.root / str(inside).lstrip("/")

    def wait_for(self, command, timeout=60, interval=0.5):
        """Run ``command`` until it exits 0 and return its result; raise CommandFailed at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(command, check=False)
            if result.returncode == 0:
                return result
            if time.monotonic() > deadline:
                raise CommandFailed(
                    f"still failing after {timeout} s: {command}\n"
                    f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}")
            time.sleep(interval)

    def console_tail(self, lines=40):
        """Return the last lines nspawn printed from the container's console."""
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def boot(tarball, workdir, name, boot_timeout=120):
    """Unpack ``tarball`` under ``workdir``, boot it and return a running Container.

    Returns once ``systemctl is-system-running`` inside reports running or degraded.
    The caller must call ``shutdown`` on the result (a fixture's teardown does).
    """
    root = pathlib.Path(workdir) / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-xpf", str(tarball)],
                   check=True)
    console_log = pathlib.Path(workdir) / "console.log"
    with open(console_log, "wb") as console:
        process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
             "--console=read-only", "--machine", name, "-D", str(root),
             # nspawn filters the clock system calls of a container without CAP_SYS_TIME,
             # reads included. Allowing them lets the gateway read the NTP status as on a
             # real machine; without the capability the container still cannot set the
             # clock.
             f"--system-call-filter={CLOCK_STATUS_CALLS}"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
    container = None
    try:
        leader = _wait_for_leader(process, timeout=30)
        container = Container(root, process, leader, console_log)
        _wait_until_booted(container, boot_timeout)
        return container
    except BaseException:
        shutdown(container or Container(root, process, None, console_log))
        raise


def _wait_for_leader(process, timeout):
    """Return the PID of the container's PID 1: nspawn's child in another PID namespace."""
    own_namespace = os.readlink("/proc/self/ns/pid")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with status {process.returncode} while starting")
        for pid in _children(process.pid):
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != own_namespace:
                    return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise RuntimeError(f"no container PID 1 appeared under systemd-nspawn within {timeout} s")


def _children(pid):
    children = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return children


def _wait_until_booted(container, timeout):
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            break
        state = container.run("systemctl is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"container did not finish booting within {timeout} s "
                       f"(last state {state!r}); console:\n{container.console_tail()}")


def shutdown(container, timeout=60):
    """Power the container off, by nspawn's PID, and delete its root directory.

    SIGTERM makes nspawn ask the container's systemd for an orderly shutdown. If that
    takes longer than ``timeout``, the container's PID 1 and nspawn are killed.
    """
    process = container.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Killing PID 1 of a PID namespace kills every process inside it.
            if container.leader_pid:
                _kill_quietly(container.leader_pid)
            _kill_quietly(process.pid)
            process.wait(timeout=30)
    shutil.rmtree(container.root, ignore_errors=True)


def _kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
