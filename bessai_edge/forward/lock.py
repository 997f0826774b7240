"""The forwarder's lock on a spool directory, so that one ``bessai forward`` ships it.

Two forwarders on one spool share the MQTT client id, so the broker keeps dropping
one for the other. Each deletes the segments it delivered, which the other then
reports as a false sequence gap, and receivers get records twice.

The lock is an exclusive ``flock`` on ``forward.lock`` in the spool directory, taken
at start and held until the process ends. ``bessai run`` locks the directory itself
(``spool.writer``), which is another open file, so the two locks never conflict. The
file is created at the first start and never deleted, because a process that opened
it before the delete would lock a file that no later process can open by its path.
For the same reason the forwarder checks that the file it locked is still the one at
the path (``file_replaced``), because ``rm`` of the spool's files deletes it too.
"""

import errno
import fcntl
import os

from bessai_edge import access
from bessai_edge.errors import SpoolError
from bessai_edge.i18n import _
from bessai_edge.proc_locks import lock_holder
from bessai_edge.settings import read_only_spool_problem

FILE_NAME = "forward.lock"
UNIT = "bessai-forward"   # the systemd unit that runs bessai forward


class SpoolLock:
    """Exclusive ``flock`` on ``FILE_NAME`` in the spool directory ``spool_dir``."""

    def __init__(self, spool_dir):
        self.spool_dir = os.fspath(spool_dir)
        self.path = os.path.join(self.spool_dir, FILE_NAME)
        self._fd = None

    def acquire(self):
        """Take the lock, or raise ``SpoolError`` when another process holds it.

        Also raises ``SpoolError`` when the spool directory is read-only or the lock
        file cannot be created or opened.
        """
        # A lock file made before the file system became read-only still opens, but
        # the forwarder could not delete delivered segments, so the check comes first.
        if _is_read_only(self.spool_dir):
            raise SpoolError(read_only_spool_problem(self.spool_dir, UNIT))
        try:
            fd = self._open_locked()
        except OSError as error:
            if error.errno == errno.EROFS:
                raise SpoolError(read_only_spool_problem(self.spool_dir, UNIT)) from None
            raise SpoolError(_(
                "cannot open the lock file {path} ({error}): {user} (uid {uid}) needs read "
                "access to this file and write access to the spool directory, where the "
                "forwarder also deletes delivered segments").format(
                    path=self.path, error=error, user=access.user_name(),
                    uid=os.geteuid())) from None
        if fd is None and os.environ.get("INVOCATION_ID"):
            # The service lost to a forwarder started by hand, which must end first.
            raise SpoolError(_(
                "spool directory {directory} is in use by another bessai forward process "
                "(it holds the lock file {path}), probably one started by hand: end it "
                "(pgrep -af 'bessai(_edge)? forward'), then start the service again (systemctl "
                "start bessai-forward)").format(directory=self.spool_dir, path=self.path))
        holder = lock_holder(self.path) if fd is None else None
        if holder is not None:
            raise SpoolError(_(
                "spool directory {directory} is in use by another bessai forward process, "
                "PID {pid} (it holds the lock file {path}): stop the service first "
                "(systemctl stop bessai-forward), or end that process (kill {pid})").format(
                    directory=self.spool_dir, pid=holder, path=self.path))
        if fd is None:
            raise SpoolError(_(
                "spool directory {directory} is in use by another bessai forward process "
                "(it holds the lock file {path}): stop the service first (systemctl stop "
                "bessai-forward), or find the other process with pgrep -af 'bessai(_edge)? "
                "forward' and end it").format(directory=self.spool_dir, path=self.path))
        self._fd = fd

    def file_replaced(self):
        """Return True when the path no longer names the file this lock holds.

        That is the case after the file was deleted, or replaced together with the
        spool directory.
        """
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return True
        except OSError:
            return False   # The state is unknown, so the next check tries again.
        locked = os.fstat(self._fd)
        return (current.st_dev, current.st_ino) != (locked.st_dev, locked.st_ino)

    def take_again(self):
        """Lock the file now at the path, creating it if needed, and release the old one.

        Returns False, keeping the old lock, when another process holds the new file's
        lock. Raises ``OSError`` when the file cannot be created, for example while the
        spool directory is missing.
        """
        fd = self._open_locked()
        if fd is None:
            return False
        os.close(self._fd)
        self._fd = fd
        return True

    def release(self):
        """Release the lock; the file stays for the next start."""
        if self._fd is not None:
            os.close(self._fd)    # closing the only descriptor releases the flock
            self._fd = None

    def _open_locked(self):
        """Return a descriptor of the lock file with the lock taken, or None when it is held.

        The file is opened read-only, which ``flock`` allows, so a lock file that
        another user created (a manual run as root) can still be locked when readable.
        """
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        return fd


def _is_read_only(directory):
    """Return True when ``directory`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False    # opening the lock file then reports the error
