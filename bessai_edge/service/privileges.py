"""Commands run by hand as root take the user that owns the spool directory.

The services run as the bessai user. ``bessai run`` or ``bessai forward`` started by
hand from a root shell created spool segments, spool state and checkpoints owned by
root, which the services could not read afterwards: the forwarder stopped at such a
segment until someone changed its owner. So, as root, these commands switch to the
user and groups that own the spool directory before they open any file, and then meet
the same permissions as the services. They also take the units' umask, so the files
they create get the services' modes.
"""

import logging
import os
import pwd

logger = logging.getLogger(__name__)

# The units' UMask=: the bessai group may read the spool, others nothing.
SERVICE_UMASK = 0o027


def switch_to_spool_owner(spool_dir):
    """Switch a root process to the owner of ``spool_dir``; return that user's name, or None.

    Nothing changes for a process that is not root, for a directory owned by root, or
    for a directory that cannot be read (the spool checks report that).
    """
    if os.geteuid() != 0:
        return None
    try:
        status = os.stat(spool_dir)
    except OSError:
        return None
    if status.st_uid == 0:
        return None
    try:
        account = pwd.getpwuid(status.st_uid)
    except KeyError:
        name, gid, groups = str(status.st_uid), status.st_gid, [status.st_gid]
    else:
        name, gid = account.pw_name, account.pw_gid
        groups = os.getgrouplist(name, gid)
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(status.st_uid)
    os.umask(SERVICE_UMASK)
    return name


def log_switch(name, spool_dir):
    """Log the switch that ``switch_to_spool_owner`` made, if any, once logging is set up."""
    if name is not None:
        logger.info("running as root: switched to user %s (uid %d), the owner of spool "
                    "directory %s, so that the files this command creates stay readable by "
                    "the services", name, os.getuid(), spool_dir)
