"""The spool directory as the installed services will see it, for ``bessai check``.

``bessai check`` runs in a technician's shell, often as root, outside the units'
sandbox. A spool directory that passes there can still stop the services: the units
may write only to their ``ReadWritePaths=``, and they run as the ``bessai`` user.
"""

import grp
import os
import pwd
import shutil
import stat
import subprocess

from bessai_edge.i18n import _, ngettext

SERVICE_USER = "bessai"
UNITS = ("bessai", "bessai-forward")
SYSTEMCTL_TIMEOUT_S = 10


def service_spool_problems(directory):
    """Return the problems the services would meet with spool directory ``directory``."""
    problems = []
    outside = [unit for unit in UNITS if not _inside_any(directory, unit_writable_paths(unit))]
    if outside:
        problems.append(ngettext(
            "spool directory {directory} is outside the paths the {units} unit may write "
            "to: add it with ReadWritePaths= in a drop-in (systemctl edit {edit}), or set "
            "SPOOL_DIR=/var/spool/bessai",
            "spool directory {directory} is outside the paths the {edit} and {second} units "
            "may write to: add it with ReadWritePaths= in a drop-in for each (systemctl edit {edit}, "
            "then systemctl edit {second}), or set SPOOL_DIR=/var/spool/bessai",
            len(outside)).format(directory=directory, units=outside[0], edit=outside[0],
                                 second=outside[-1]))
    if os.geteuid() == 0 and not writable_by_user(directory, SERVICE_USER):
        problems.append(_(
            "spool directory {directory} is not writable by the {user} user, which the "
            "services run as: chown {user}: {directory}").format(
                directory=directory, user=SERVICE_USER))
    return problems


def unit_writable_paths(unit):
    """Return the ReadWritePaths= of an installed, loaded unit, or None when unknown.

    None means that there is no systemd to ask, or that the unit is not installed.
    """
    systemctl = shutil.which("systemctl")
    if systemctl is None or not os.path.isdir("/run/systemd/system"):
        return None
    try:
        result = subprocess.run(
            [systemctl, "show", "--property=LoadState,ReadWritePaths", unit],
            capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    properties = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if result.returncode != 0 or properties.get("LoadState") != "loaded":
        return None
    # A leading "-" marks a path that may be missing, "+" one relative to RootDirectory=.
    return [path.lstrip("-+") for path in properties.get("ReadWritePaths", "").split()]


def writable_by_user(directory, user):
    """Return True when ``user`` may create files in ``directory`` by its mode bits.

    A user that does not exist, or a directory that cannot be read, counts as
    writable: other checks report those.
    """
    try:
        account = pwd.getpwnam(user)
        status = os.stat(directory)
    except (KeyError, OSError):
        return True
    groups = {account.pw_gid} | {group.gr_gid for group in grp.getgrall()
                                 if user in group.gr_mem}
    if status.st_uid == account.pw_uid:
        needed = stat.S_IWUSR | stat.S_IXUSR
    elif status.st_gid in groups:
        needed = stat.S_IWGRP | stat.S_IXGRP
    else:
        needed = stat.S_IWOTH | stat.S_IXOTH
    return status.st_mode & needed == needed


def _inside_any(directory, paths):
    if paths is None:
        return True  # no unit to ask: nothing to report
    real = os.path.realpath(directory)
    return any(os.path.commonpath([real, os.path.realpath(path)]) == os.path.realpath(path)
               for path in paths if path)
