"""Spool directories that ``bessai run`` cannot write, for the settings and check tests."""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile

from tests.conftest import require_commands

NOBODY = 65534  # the uid and gid of nobody and nogroup on Debian


@contextlib.contextmanager
def read_only_spool_dir(tmp_path, file_names=()):
    """Yield a directory on a tmpfs remounted read-only, and unmount it afterwards.

    The directory contains an empty file for each of ``file_names``. Needs root (use
    the ``needs_root`` fixture).
    """
    require_commands("mount", "umount")
    mount_point = tmp_path / "read-only"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                    str(mount_point)], check=True)
    try:
        (mount_point / "spool").mkdir()
        for name in file_names:
            (mount_point / "spool" / name).touch()
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
        yield mount_point / "spool"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@contextlib.contextmanager
def spool_and_state_dirs(spool_owner):
    """Yield (spool dir, state dir) under /tmp, the spool owned by ``spool_owner``.

    The user nobody can reach /tmp, unlike pytest's tmp_path under /tmp/pytest-of-root.
    """
    parent = tempfile.mkdtemp(prefix="bessai-forward-", dir="/tmp")
    spool_dir = os.path.join(parent, "spool")
    state_dir = os.path.join(parent, "state")
    try:
        os.chmod(parent, 0o755)
        os.mkdir(spool_dir)
        os.chown(spool_dir, spool_owner, spool_owner)
        os.mkdir(state_dir, 0o755)
        yield spool_dir, state_dir
    finally:
        shutil.rmtree(parent)


def call_as_nobody(function, *arguments):
    """Return ``function(*arguments)``, called in a child process that runs as nobody.

    The function and what it imports must be imported before the call, and its result
    must be JSON. Needs root.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with os.fdopen(write_end, "w") as stream:
                json.dump(function(*arguments), stream)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        output = stream.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the child failed: {status}"
    return json.loads(output)
