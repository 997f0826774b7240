"""User and group names for advice when file permissions keep a user out of the gateway's files.

The Debian package creates the system user and group ``bessai``. The spool directory is
0750 bessai:bessai and ``/etc/bessai/bessai.env`` is 0640 root:bessai, so members of
group bessai may read both without root.
"""

import grp
import os
import pwd

SERVICE_USER = "bessai"


def user_name():
    """Return the name of the effective user, or its uid as text when it has no name."""
    return owner_name(os.geteuid())


def owner_name(uid):
    """Return the name of user ``uid``, or the uid as text when it has no name."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    """Return the name of group ``gid``, or None when it has no name."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def is_in_group(gid):
    """Return True when the process has ``gid`` as its effective or a supplementary group."""
    return gid == os.getegid() or gid in os.getgroups()


def is_service_user(directory):
    """Return True when the process runs as the bessai user or owns ``directory``.

    A root run of ``bessai run`` or ``bessai forward`` has switched to the owner of the
    spool directory, so it counts as the services' user too.
    """
    if user_name() == SERVICE_USER:
        return True
    try:
        return os.stat(directory).st_uid == os.geteuid()
    except OSError:
        return False
