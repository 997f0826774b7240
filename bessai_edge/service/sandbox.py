"""The spool directory and profiles as the installed services will see them, for ``bessai check``.

``bessai check`` runs in a technician's shell, often as root, outside the units'
sandbox. A spool directory that passes there can still stop the services: the units
may write only to their ``ReadWritePaths=``, and they run as the ``bessai`` user.
"""

import grp
import os
import pwd
import stat

from bessai_edge.i18n import _, ngettext
from bessai_edge.service.installed import unit_properties

SERVICE_USER = "bessai"
UNITS = ("bessai", "bessai-forward")
# Directories the units replace with their own (PrivateTmp=yes) or hide (ProtectHome=yes).
HIDDEN_TOPS = (("/tmp", "PrivateTmp=yes"), ("/var/tmp", "PrivateTmp=yes"),
               ("/home", "ProtectHome=yes"), ("/root", "ProtectHome=yes"),
               ("/run/user", "ProtectHome=yes"))


def service_spool_problems(directory):
    """Return the problems the services would meet with spool directory ``directory``."""
    problems = []
    writable = {unit: unit_writable_paths(unit) for unit in UNITS}
    if all(paths is None for paths in writable.values()):
        writable = {}  # no installed unit to ask: only the user's access is checked
    outside = [unit for unit, paths in writable.items() if not _inside_any(directory, paths)]
    if outside:
        problems.append(ngettext(
            "spool directory {directory} is outside the paths the {units} unit may write "
            "to: add it with ReadWritePaths= in a drop-in (systemctl edit {edit}), or set "
            "SPOOL_DIR=/var/spool/bessai",
            "spool directory {directory} is outside the paths the {edit} and {second} units "
            "may write to: add it with ReadWritePaths= in a drop-in for each (systemctl "
            "edit {edit}, then systemctl edit {second}), or set SPOOL_DIR=/var/spool/bessai",
            len(outside)).format(directory=directory, units=outside[0], edit=outside[0],
                                 second=outside[-1]))
    hidden = _hidden_by_sandbox(directory) if writable else None
    if hidden:
        problems.append(_(
            "spool directory {directory} is under {top}, which the units' {setting} hides "
            "from the services: ReadWritePaths= cannot give it back, so choose a directory "
            "elsewhere, such as /var/spool/bessai").format(
                directory=directory, top=hidden[0], setting=hidden[1]))
    if os.geteuid() == 0 and not writable_by_user(directory, SERVICE_USER):
        problems.append(_(
            "spool directory {directory} is not writable by the {user} user, which the "
            "services run as: chown -R {user}: {directory}").format(
                directory=directory, user=SERVICE_USER))
    return problems


def service_profile_problems(path):
    """Return the problems the services would meet reading profile file ``path``."""
    installed = any(unit_writable_paths(unit) is not None for unit in UNITS)
    hidden = _hidden_by_sandbox(path) if installed else None
    if hidden:
        return [_("profile {path} is under {top}, which the units' {setting} hides from the "
                  "services: keep profiles in /etc/bessai/profiles").format(
                      path=path, top=hidden[0], setting=hidden[1])]
    if os.geteuid() == 0 and not readable_by_user(path, SERVICE_USER):
        return [_("profile {path} is not readable by the {user} user, which the services "
                  "run as: the file needs mode 0644 and each directory above it mode 0755, "
                  "as in /etc/bessai/profiles").format(path=path, user=SERVICE_USER)]
    return []


def unit_writable_paths(unit):
    """Return the ReadWritePaths= of an installed, loaded unit, or None when unknown.

    None means that there is no systemd to ask, or that the unit is not installed.
    """
    properties = unit_properties(unit, ("ReadWritePaths",))
    if properties is None:
        return None
    # A leading "-" marks a path that may be missing, "+" one relative to RootDirectory=.
    return [path.lstrip("-+") for path in properties.get("ReadWritePaths", "").split()]


def writable_by_user(directory, user):
    """Return True when ``user`` may create files in ``directory`` by its mode bits.

    Every directory above it must let the user pass (execute bit) as well. A user that
    does not exist, or a directory that cannot be read, counts as writable: other
    checks report those.
    """
    return _accessible_by_user(directory, user, (stat.S_IXUSR | stat.S_IWUSR,
                                                 stat.S_IXGRP | stat.S_IWGRP,
                                                 stat.S_IXOTH | stat.S_IWOTH))


def readable_by_user(path, user):
    """Return True when ``user`` may read file ``path`` by the mode bits, as above."""
    return _accessible_by_user(path, user, (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH))


def _accessible_by_user(path, user, needed):
    """Return True when the mode bits give ``user`` the access ``needed`` to ``path``.

    ``needed`` contains the bits for the owner, the group and others.
    """
    try:
        account = pwd.getpwnam(user)
        status = os.stat(path)
    except (KeyError, OSError):
        return True
    groups = {account.pw_gid} | {group.gr_gid for group in grp.getgrall()
                                 if user in group.gr_mem}
    if not _permits(status, account.pw_uid, groups, needed):
        return False
    search = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    parent = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            if not _permits(os.stat(parent), account.pw_uid, groups, search):
                return False
        except OSError:
            return True
        if parent == os.path.dirname(parent):
            return True
        parent = os.path.dirname(parent)


def _permits(status, uid, groups, needed):
    """Return True when the mode bits give ``uid`` the owner's, group's or others' ``needed``."""
    if status.st_uid == uid:
        bits = needed[0]
    elif status.st_gid in groups:
        bits = needed[1]
    else:
        bits = needed[2]
    return status.st_mode & bits == bits


def _hidden_by_sandbox(directory):
    """Return (top directory, unit setting) when the units cannot see ``directory``."""
    real = os.path.realpath(directory)
    for top, setting in HIDDEN_TOPS:
        if os.path.commonpath([real, top]) == top:
            return top, setting
    return None


def _inside_any(directory, paths):
    if paths is None:
        return True  # no unit to ask: nothing to report
    real = os.path.realpath(directory)
    return any(os.path.commonpath([real, os.path.realpath(path)]) == os.path.realpath(path)
               for path in paths if path)
