"""Shared test helpers: root and CI gates, free ports, paths."""

import os
import pathlib
import shutil
import socket
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
CAPTURES = REPO / "tests" / "captures"
IN_CI = os.environ.get("CI") == "true"


def skip_unless_ci(reason):
    """Skip with a reason on a developer's laptop; fail instead when CI=true."""
    if IN_CI:
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def needs_root():
    """Fixture for tests that need root (mounts, systemd-nspawn, apt)."""
    if os.geteuid() != 0:
        skip_unless_ci("needs root")


def require_commands(*names):
    """Skip (or fail in CI) unless every named program is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        skip_unless_ci(f"missing programs: {', '.join(missing)} (run tools/install-deps.sh test)")


def free_tcp_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bessai_command():
    """Return the argv prefix that runs the installed ``bessai`` CLI of this virtualenv."""
    script = pathlib.Path(sys.executable).parent / "bessai"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "bessai_edge"]
