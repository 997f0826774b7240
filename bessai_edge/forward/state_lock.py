"""The forwarder's lock on its state directory, so that one spool's checkpoint lives there.

The checkpoint file has a fixed name, so two forwarders of different spools that share
``FORWARD_STATE_DIR`` overwrite each other's checkpoint. Each then finds a checkpoint
of another spool at its next start and sends its whole spool again.

The lock is an exclusive ``flock`` on ``forward-state.lock`` in the state directory,
taken after the spool's lock and held until the process ends. The holder writes its
``SPOOL_DIR`` into the file, so that a second forwarder's message can name it. As
with the spool's lock file, the file is never deleted (see ``forward.lock``).
"""

import fcntl
import os

from bessai_edge.errors import ConfigError
from bessai_edge.forward.lock import lock_holder
from bessai_edge.i18n import _

FILE_NAME = "forward-state.lock"
# A SPOOL_DIR longer than this is not read back in full: the message shows its start.
MAX_SPOOL_DIR_BYTES = 4096


class StateDirLock:
    """Exclusive ``flock`` on ``FILE_NAME`` in ``state_dir`` for the forwarder of ``spool_dir``."""

    def __init__(self, state_dir, spool_dir):
        self.state_dir = os.fspath(state_dir)
        self.spool_dir = os.fspath(spool_dir)
        self.path = os.path.join(self.state_dir, FILE_NAME)
        self._fd = None

    def acquire(self):
        """Take the lock, or raise ``ConfigError`` when another forwarder holds it.

        Also raises ``ConfigError`` when the lock file cannot be opened.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o640)
        except OSError as error:
            raise ConfigError([_(
                "cannot open the lock file {path} ({error}): the user that runs the "
                "forwarder needs write access to FORWARD_STATE_DIR").format(
                    path=self.path, error=error.strerror)]) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_spool_dir(fd)
            os.close(fd)
            raise ConfigError([self._in_use_message(owner)]) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._write_spool_dir()

    def release(self):
        """Release the lock; the file stays for the next start."""
        if self._fd is not None:
            os.close(self._fd)    # closing the only descriptor releases the flock
            self._fd = None

    def _write_spool_dir(self):
        data = os.fsencode(self.spool_dir) + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:
            pass    # only the message of a second forwarder loses the spool's name

    def _in_use_message(self, owner):
        spool = owner or "?"
        holder = lock_holder(self.path)
        if holder is not None:
            return _(
                "FORWARD_STATE_DIR {state_dir} is in use by the forwarder of another spool, "
                "{spool}, PID {pid} (it holds the lock file {path}): give each forwarder its "
                "own FORWARD_STATE_DIR, because forwarders that share one overwrite each "
                "other's checkpoint").format(state_dir=self.state_dir, spool=spool,
                                             pid=holder, path=self.path)
        return _(
            "FORWARD_STATE_DIR {state_dir} is in use by the forwarder of another spool, "
            "{spool} (it holds the lock file {path}): give each forwarder its own "
            "FORWARD_STATE_DIR, because forwarders that share one overwrite each other's "
            "checkpoint").format(state_dir=self.state_dir, spool=spool, path=self.path)


def _read_spool_dir(fd):
    """Return the SPOOL_DIR that the lock's holder wrote into the file, or None."""
    try:
        data = os.pread(fd, MAX_SPOOL_DIR_BYTES, 0)
    except OSError:
        return None
    return os.fsdecode(data.rstrip(b"\n")) or None
