"""Fixtures for system tests: the .deb, a local APT repository and booted Debian 12 roots.

Every system test is marked ``@pytest.mark.system`` and
``@pytest.mark.xdist_group("system")``, so that under ``pytest -n 2 --dist loadgroup``
all of them run in one worker and share the session fixtures below. The fixtures
need root and the programs of ``tools/install-deps.sh test``; without them they skip
with the reason on a laptop and fail when ``CI=true``.

Session fixtures:

``bessai_deb``
    Path of ``dist/bessai-edge_<version>_<arch>.deb``, built once by
    ``packaging/build-deb.sh``. A .deb already in dist/ is reused when it is newer than
    every source file that goes into it.
``apt_repo``
    A flat APT repository (``packaging/make-repo.sh``) that contains only ``bessai_deb``.
``debian_root_tarball``
    A minimal Debian 12 root made by ``debootstrap --variant=minbase`` plus what
    booting needs, cached in ``.cache/system/``. Its recipe is in ``nspawn.py``.
``boot_container``
    A function: ``with boot_container("label") as container:`` boots a fresh copy of
    the root with ``systemd-nspawn --register=no --keep-unit -b`` and powers it off
    and deletes it on exit. Use it for a test that changes the system for good
    (upgrade, purge).
``installed_container``
    One booted container shared by the session, with the local repository added as an
    APT source and ``bessai-edge`` installed by name. Tests may start, stop and
    reconfigure the services, but must not remove the package.

A ``Container`` (see ``nspawn.py``) runs shell commands inside the booted system with
``container.run("systemctl is-active bessai")``, returning a CompletedProcess and
raising ``CommandFailed`` with the output on a non-zero exit unless ``check=False``.
``container.path("/etc/bessai/bessai.env")`` is the same file seen from the host,
and ``container.wait_for(command, timeout)`` retries a command until it succeeds.
The container shares the host network, so a server on 127.0.0.1 in either is
reachable from the other; pick ports with ``tests.conftest.free_tcp_port``.

Helpers for tests: ``add_apt_repo(container, repo_dir)`` copies a repository made by
make-repo.sh into the container and points APT at it, ``apt_get(container, *args)``
runs apt-get non-interactively, ``set_settings(container, NAME=value, ...)`` edits
``/etc/bessai/bessai.env`` in place and ``read_settings(container)`` returns it.

The package starts ``bessai.service`` when it is installed, with the default
``HEALTH_LISTEN=127.0.0.1:8000`` in the host's network namespace. Set
``HEALTH_LISTEN`` to a port from ``free_tcp_port`` and restart the service before
relying on /health, so that two containers, or another program on the host, never
compete for port 8000.

``@pytest.mark.incremental`` on a class makes its tests steps in order: after a
failed step, the later ones are reported as xfail instead of failing on its leftovers.

Build and boot logs go to ``.cache/system/*.log``; a failure message names the log.
"""

import contextlib
import fcntl
import itertools
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from tests.conftest import REPO, require_commands, skip_unless_ci
from tests.system import nspawn

CACHE = REPO / ".cache" / "system"
BUILD_DEB = REPO / "packaging" / "build-deb.sh"
MAKE_REPO = REPO / "packaging" / "make-repo.sh"
REPO_IN_CONTAINER = "/srv/bessai-apt"
SETTINGS = "/etc/bessai/bessai.env"
SOURCES_LIST = "/etc/apt/sources.list.d/bessai-local.list"

# Source paths whose changes make a .deb in dist/ stale.
DEB_INPUTS = ("bessai_edge/", "native/", "registry/", "packaging/", "systemd/",
              "setup.py", "pyproject.toml", "constraints.txt")

REQUIRED_COMMANDS = ("debootstrap", "systemd-nspawn", "nsenter", "tar", "dpkg-buildpackage",
                     "dpkg-scanpackages", "apt-ftparchive", "fakeroot")

_container_numbers = itertools.count(1)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "incremental: the tests of a class are steps in order; after a failed "
        "step the later ones are reported as xfail")


def pytest_runtest_makereport(item, call):
    if "incremental" in item.keywords and call.excinfo is not None:
        if not call.excinfo.errisinstance((pytest.skip.Exception, pytest.xfail.Exception)):
            item.parent._failed_step = item.name


def pytest_runtest_setup(item):
    if "incremental" in item.keywords:
        failed = getattr(item.parent, "_failed_step", None)
        if failed is not None:
            pytest.xfail(f"an earlier step failed: {failed}")


def require_system_harness():
    """Skip (or fail when CI=true) unless this process can build and boot containers."""
    if os.geteuid() != 0:
        skip_unless_ci("needs root: debootstrap, systemd-nspawn and nsenter run as root")
    require_commands(*REQUIRED_COMMANDS)


def log_timing(step, seconds):
    """Append how long a harness step took to .cache/system/timings.log."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "timings.log", "a", encoding="utf-8") as stream:
        stream.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid={os.getpid()} {step} {seconds:.1f}s\n")


@contextlib.contextmanager
def cache_lock(name):
    """Hold an exclusive lock shared with other pytest sessions on this machine."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_deb(dist_dir=None, deb_version=None, log_name="build-deb.log"):
    """Run packaging/build-deb.sh and return the path of the .deb it built.

    ``dist_dir`` and ``deb_version`` set BESSAI_DIST_DIR and BESSAI_DEB_VERSION. Builds
    take a lock because every build of one version stages in the same build/ directory.
    """
    with cache_lock("deb"):
        return _run_build_deb(dist_dir, deb_version, log_name)


def _run_build_deb(dist_dir=None, deb_version=None, log_name="build-deb.log"):
    env = dict(os.environ)
    if dist_dir is not None:
        env["BESSAI_DIST_DIR"] = str(dist_dir)
    if deb_version is not None:
        env["BESSAI_DEB_VERSION"] = deb_version
    log_path = CACHE / log_name
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run([str(BUILD_DEB)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    log_timing(f"build-deb {deb_version or 'default'}", time.monotonic() - started)
    if result.returncode != 0:
        pytest.fail(f"packaging/build-deb.sh exited with status {result.returncode}; "
                    f"see {log_path}:\n{_tail(log_path)}")
    return pathlib.Path(result.stdout.strip().splitlines()[-1])


def make_repo(debs, repo_dir):
    """Make a flat APT repository in ``repo_dir`` holding exactly ``debs``."""
    repo_dir = pathlib.Path(repo_dir)
    pool = repo_dir.with_name(repo_dir.name + "-pool")
    shutil.rmtree(pool, ignore_errors=True)
    shutil.rmtree(repo_dir, ignore_errors=True)
    pool.mkdir(parents=True)
    for deb in debs:
        shutil.copy2(deb, pool)
    subprocess.run([str(MAKE_REPO), str(pool), str(repo_dir)], check=True, cwd=REPO,
                   stdin=subprocess.DEVNULL, capture_output=True)
    return repo_dir


def add_apt_repo(container, repo_dir):
    """Copy the repository into the container, add it as an APT source and update it.

    Only the local source is updated, so the Debian lists cached in the root stay as
    they are and no mirror is asked. Running it again replaces the repository.
    """
    target = container.path(REPO_IN_CONTAINER)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(repo_dir, target)
    # The repository is unsigned; trusted=yes is how APT accepts a local one.
    container.path(SOURCES_LIST).write_text(f"deb [trusted=yes] file:{REPO_IN_CONTAINER} ./\n")
    apt_get(container, "update", "-o", f"Dir::Etc::sourcelist={SOURCES_LIST}",
            "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0")


def apt_get(container, *args, check=True, timeout=600):
    """Run ``apt-get -y -q ARGS`` in the container, keeping changed conffiles as edited."""
    command = ["apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
               "-o", "Dpkg::Options::=--force-confold", *args]
    return container.run(command, check=check, timeout=timeout)


def read_settings(container):
    """Return the text of the installed settings file."""
    return container.path(SETTINGS).read_text()


def set_settings(container, **values):
    """Set NAME=value lines in the installed settings file, as a technician's edit does.

    A line for NAME, commented out or not, is replaced; a name without one is appended.
    Writing in place keeps the file's owner and mode.
    """
    path = container.path(SETTINGS)
    lines = path.read_text().splitlines()
    for name, value in values.items():
        pattern = re.compile(rf"^#?{name}=")
        replaced = False
        for index, line in enumerate(lines):
            if pattern.match(line):
                lines[index] = f"{name}={value}"
                replaced = True
        if not replaced:
            lines.append(f"{name}={value}")
    path.write_text("\n".join(lines) + "\n")


def _tail(path, lines=30):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _newest_input_mtime():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *DEB_INPUTS],
        cwd=REPO, check=True, capture_output=True, text=True).stdout.split("\n")
    mtimes = [(REPO / name).stat().st_mtime for name in listed if name and (REPO / name).exists()]
    return max(mtimes, default=0.0)


def _fresh_deb_in_dist():
    """Return the .deb build-deb.sh would write to dist/ if it exists and is not stale."""
    printed = subprocess.run([str(BUILD_DEB), "--print-path"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()
    deb = pathlib.Path(printed)
    if deb.exists() and deb.stat().st_mtime > _newest_input_mtime():
        return deb
    return None


def _ensure_root_tarball():
    tarball = CACHE / nspawn.root_tarball_name()
    with cache_lock("root"):
        if not tarball.exists():
            started = time.monotonic()
            nspawn.build_root_tarball(tarball, CACHE / "debootstrap.log")
            log_timing("debootstrap", time.monotonic() - started)
    return tarball


@pytest.fixture(scope="session")
def system_prerequisites():
    """Build the .deb and the cached root; debootstrap runs while the .deb builds."""
    require_system_harness()
    outcome = {}

    def make_tarball():
        try:
            outcome["tarball"] = _ensure_root_tarball()
        except Exception as error:  # reported by the main thread below
            outcome["error"] = error

    worker = threading.Thread(target=make_tarball, name="debootstrap")
    worker.start()
    try:
        with cache_lock("deb"):
            deb = _fresh_deb_in_dist() or _run_build_deb()
    finally:
        worker.join()
    if "error" in outcome:
        pytest.fail(f"building the Debian root failed: {outcome['error']}\n"
                    f"{_tail(CACHE / 'debootstrap.log')}")
    return deb, outcome["tarball"]


@pytest.fixture(scope="session")
def bessai_deb(system_prerequisites):
    return system_prerequisites[0]


@pytest.fixture(scope="session")
def debian_root_tarball(system_prerequisites):
    return system_prerequisites[1]


@pytest.fixture(scope="session")
def apt_repo(bessai_deb, tmp_path_factory):
    return make_repo([bessai_deb], tmp_path_factory.mktemp("apt") / "repo")


@pytest.fixture(scope="session")
def boot_container(debian_root_tarball):
    """Return a context manager factory: ``with boot_container("label") as container``."""

    @contextlib.contextmanager
    def booted(label):
        name = f"bessai-{label}-{os.getpid()}-{next(_container_numbers)}"
        CACHE.mkdir(parents=True, exist_ok=True)
        workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE))
        started = time.monotonic()
        container = nspawn.boot(debian_root_tarball, workdir, name)
        log_timing(f"boot {label}", time.monotonic() - started)
        try:
            yield container
        finally:
            shutil.copy2(container.console_log, CACHE / f"console-{label}.log")
            nspawn.shutdown(container)
            shutil.rmtree(workdir, ignore_errors=True)

    return booted


@pytest.fixture(scope="session")
def installed_container(boot_container, apt_repo):
    """A booted container with bessai-edge installed from the local repository by name."""
    with boot_container("installed") as container:
        add_apt_repo(container, apt_repo)
        started = time.monotonic()
        apt_get(container, "install", "bessai-edge")
        log_timing("apt install", time.monotonic() - started)
        yield container

