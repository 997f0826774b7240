"""The spool directory as the services' user sees it: mode bits, with real files and users."""

import os
import pathlib
import pwd
import shutil
import tempfile

import pytest

from bessai_edge.service import sandbox
from tests.conftest import skip_unless_ci

USER = "nobody"  # a user every Debian system has, not root and not in the root group


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        skip_unless_ci("needs root to give directories to another user")


@pytest.fixture
def open_dir():
    """A directory that every user may pass, unlike pytest's tmp_path (under a 0700 one)."""
    path = pathlib.Path(tempfile.mkdtemp(dir="/var/tmp", prefix="bessai-sandbox-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("owner, mode, writable", [
    ("root", 0o750, False),     # the case a root shell passed: root may write anywhere
    ("root", 0o777, True),
    (USER, 0o700, True),
    (USER, 0o500, False),
])
def test_writable_by_user_follows_mode_bits(open_dir, as_root, owner, mode, writable):
    directory = open_dir / "spool"
    directory.mkdir()
    os.chown(directory, pwd.getpwnam(owner).pw_uid, 0)
    directory.chmod(mode)
    assert sandbox.writable_by_user(str(directory), USER) is writable


def test_writable_by_user_needs_every_parent(open_dir, as_root):
    # The directory is the user's, but its parent lets only root pass.
    locked = open_dir / "locked"
    spool = locked / "spool"
    spool.mkdir(parents=True)
    os.chown(spool, pwd.getpwnam(USER).pw_uid, 0)
    locked.chmod(0o700)
    assert sandbox.writable_by_user(str(spool), USER) is False
    locked.chmod(0o711)
    assert sandbox.writable_by_user(str(spool), USER) is True


@pytest.mark.parametrize("directory, hidden", [
    ("/tmp/spool", ("/tmp", "PrivateTmp=yes")),
    ("/var/tmp/bessai", ("/var/tmp", "PrivateTmp=yes")),
    ("/home/site/spool", ("/home", "ProtectHome=yes")),
    ("/srv/spool", None),
])
def test_sandbox_hidden_directories_named(directory, hidden):
    # The warning itself needs installed units: tests/system checks it.
    assert sandbox._hidden_by_sandbox(directory) == hidden


def test_spool_default_not_hidden():
    assert sandbox._hidden_by_sandbox("/var/spool/bessai") is None


def test_missing_user_or_directory_left_to_other_checks(tmp_path):
    assert sandbox.writable_by_user(str(tmp_path / "absent"), USER) is True
    assert sandbox.writable_by_user(str(tmp_path), "no-such-user-bessai") is True


def test_no_unit_no_sandbox_problem(tmp_path):
    # No bessai unit is installed where the tests run (tests/system covers the unit).
    assert sandbox.unit_writable_paths("bessai-no-such-unit") is None
    assert sandbox._inside_any(str(tmp_path), None)


def test_inside_any_resolves_paths(tmp_path):
    inside = tmp_path / "spool" / "site"
    inside.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(inside)
    assert sandbox._inside_any(str(link), [str(tmp_path / "spool")])
    assert not sandbox._inside_any(str(tmp_path), [str(tmp_path / "spool")])
    assert not sandbox._inside_any(str(tmp_path / "spoolish"), [str(tmp_path / "spool")])


@pytest.mark.parametrize("mode, parent_mode, readable", [
    (0o600, 0o755, False),    # a root shell read it, and the service could not
    (0o644, 0o755, True),
    (0o644, 0o700, False),    # a directory above it that only root may enter
])
def test_readable_by_user_file_and_parents(open_dir, as_root, mode, parent_mode, readable):
    profiles = open_dir / "profiles"
    profiles.mkdir()
    profile = profiles / "site.json"
    profile.write_text("{}")
    profile.chmod(mode)
    profiles.chmod(parent_mode)
    assert sandbox.readable_by_user(str(profile), USER) is readable
