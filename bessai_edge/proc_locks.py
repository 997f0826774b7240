"""Find the process that holds a ``flock``, from /proc/locks, without taking the lock.

Taking the lock to test it, even for a moment, would make a bessai process that starts
in that moment exit, because bessai's processes lock without waiting (LOCK_NB).
"""

import os

LOCKS_FILE = "/proc/locks"


def lock_holder(path):
    """Return the PID of the process that holds a flock on ``path``, or None.

    Reads /proc/locks, whose lines read ``1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0
    EOF`` (proc(5)), with the device numbers in hex. None also comes when the file
    cannot be read, as under a systemd unit's ProcSubset=pid, which hides it.
    """
    try:
        status = os.stat(path)
        with open(LOCKS_FILE, encoding="ascii", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    expected = (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue  # another kind of lock, or a waiter ("->")
        major, _sep, rest = fields[5].partition(":")
        minor, _sep, inode = rest.partition(":")
        try:
            if (int(major, 16), int(minor, 16), int(inode)) == expected:
                return int(fields[4])
        except ValueError:
            continue
    return None
