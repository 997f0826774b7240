"""Where the bundled profiles live, and how a profile name or path becomes a file.

The registry is the first of these directories that exists:

1. ``$BESSAI_REGISTRY_DIR``, when set;
2. ``registry/`` beside the ``bessai_edge`` package (a source tree or editable install);
3. ``/usr/share/bessai/registry`` (the Debian package).
"""

import difflib
import errno
import os
import pathlib

from bessai_edge.access import SERVICE_USER, user_name
from bessai_edge.errors import ProfileError
from bessai_edge.i18n import _, os_error_text

ENVIRONMENT_VARIABLE = "BESSAI_REGISTRY_DIR"
SOURCE_REGISTRY = pathlib.Path(__file__).resolve().parent.parent.parent / "registry"
INSTALLED_REGISTRY = pathlib.Path("/usr/share/bessai/registry")
SCHEMA_FILE = "profile.schema.json"


def registry_dir():
    """Return the directory of the bundled profiles."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if configured:
        return pathlib.Path(configured)
    if SOURCE_REGISTRY.is_dir():
        return SOURCE_REGISTRY
    return INSTALLED_REGISTRY


def sunspec_dir():
    """Return the directory of the bundled SunSpec model definitions."""
    return registry_dir() / "sunspec"


def bundled_profiles():
    """Return the names of the bundled profiles, sorted."""
    return sorted(path.stem for path in registry_dir().glob("*.json")
                  if path.name != SCHEMA_FILE)


def unreadable_profile_text(path, error):
    """Return the message for a profile file that the process cannot read."""
    text = _("{path}: cannot read the profile: {error}").format(
        path=path, error=os_error_text(error))
    if error.errno != errno.EACCES:
        return text
    if user_name() == SERVICE_USER:
        return text + _("; user {user}, which the services run as, needs read access to the "
                        "file (mode 0644) and to every directory above it (mode 0755), as in "
                        "/etc/bessai/profiles").format(user=SERVICE_USER)
    return text + _("; user {user} needs read access to the file (mode 0644) and to every "
                    "directory above it (mode 0755), and so does user {service}, which the "
                    "services run as").format(user=user_name(), service=SERVICE_USER)


def _in_private_tmp(path):
    """Return True for a path under /tmp or /var/tmp, which PrivateTmp=yes replaces."""
    absolute = os.path.abspath(path)
    return any(os.path.commonpath([absolute, top]) == top for top in ("/tmp", "/var/tmp"))


def _directory_text(name, directory):
    """Return the problem of a profile path that names a directory, with its JSON files."""
    try:
        files = sorted(entry.name for entry in directory.glob("*.json") if entry.is_file())
    except OSError:
        files = []
    if not files:
        return _("profile {name!r}: {path} is a directory without JSON files: give the path "
                 "of a profile JSON file or a bundled profile name").format(
                     name=name, path=directory)
    return _("profile {name!r}: {path} is a directory: give the path of a profile JSON "
             "file in it ({files}) or a bundled profile name").format(
                 name=name, path=directory, files=", ".join(files[:5]))


def resolve_profile_path(name_or_path):
    """Return the file of a profile given by bare name, ``registry/NAME.json`` or path.

    A path that exists is used as it is. Otherwise a bare name (``huawei_sun2000``) or
    a relative path starting with ``registry/`` is looked up in the bundled registry, so
    ``DRIVER_PROFILE_PATH=registry/huawei_sun2000.json`` works from any directory.
    """
    text = str(name_or_path).strip()
    if not text:
        raise ProfileError(_("profile: the name is empty: give a bundled profile name such as "
                             "huawei_sun2000 or the path of a profile JSON file"))
    given = pathlib.Path(text)
    try:
        is_file, is_dir = given.is_file(), given.is_dir()
    except OSError as error:   # a directory above it that the user may not enter
        raise ProfileError(unreadable_profile_text(given, error)) from error
    if is_file:
        return given
    if is_dir:
        raise ProfileError(_directory_text(text, given))
    candidate = _bundled_candidate(given)
    candidates = [] if candidate is None else [candidate]
    if candidate is not None and candidate.is_file():
        return candidate
    bundled = bundled_profiles()
    close = closest_profile(given.stem, bundled)
    hint = _("; did you mean {name}?").format(name=close) if close else ""
    if os.environ.get("INVOCATION_ID") and _in_private_tmp(given):
        hint += _("; the service has a private /tmp (PrivateTmp=yes), where the file is not "
                  "found: keep profiles in /etc/bessai/profiles")
    raise ProfileError(_("profile {name!r}: file not found (looked in {paths}); bundled "
                         "profiles in {registry}: {names}").format(
                             name=text, paths=", ".join(str(path) for path in [given] + candidates),
                             registry=registry_dir(), names=", ".join(bundled) or _("none found"))
                       + hint)


def _bundled_candidate(path):
    """Return the bundled file that a bare name or a ``registry/`` path names, or None."""
    if path.parent == pathlib.Path(".") and path.suffix in ("", ".json"):
        return registry_dir() / f"{path.stem}.json"
    if not path.is_absolute() and path.parts[0] == "registry":
        return registry_dir().joinpath(*path.parts[1:])
    return None


def found_through_working_directory(name_or_path):
    """Return True when the profile is found only relative to the current directory.

    ``resolve_profile_path`` takes a relative path that exists as it is, so a program
    started in another directory, such as a systemd service (which runs in /), does
    not find the same file.
    """
    path = pathlib.Path(str(name_or_path).strip())
    if path.is_absolute() or not path.is_file():
        return False
    candidate = _bundled_candidate(path)
    return candidate is None or not candidate.is_file()


def closest_profile(name, bundled):
    """Return the bundled profile ``name`` probably means, or None.

    A make alone (``huawei``, ``victron_gx``) means the bundled profile of that make
    when there is one; otherwise the closest spelling.
    """
    name = name.lower()
    make = name.split("_")[0]
    same_make = [profile for profile in bundled if profile.split("_")[0] == make]
    if len(same_make) == 1:
        return same_make[0]
    close = difflib.get_close_matches(name, bundled, n=1, cutoff=0.6)
    return close[0] if close else None
