"""Translation of user-facing CLI messages with gettext.

The language comes from LANGUAGE, LC_ALL, LC_MESSAGES or LANG, as gettext reads them,
so ``LANG=es_CL.UTF-8`` selects the Spanish catalog. Log lines stay English because
journald users grep them; only text written for a person at a terminal is translated.
"""

import errno
import gettext
import os

DOMAIN = "bessai"
LOCALE_DIR = os.path.join(os.path.dirname(__file__), "locale")

_translation = gettext.translation(DOMAIN, LOCALE_DIR, fallback=True)


def _(message):
    """Translate a message into the user's language."""
    return _translation.gettext(message)


def ngettext(singular, plural, count):
    """Translate a message with a plural form."""
    return _translation.ngettext(singular, plural, count)


def os_error_text(error):
    """Return the reason of an OSError in the user's language, for a CLI message.

    ``strerror`` comes from the C library in English, because Python does not set the
    C library's LC_MESSAGES. The errors a technician meets with files and ports are
    translated here, and the others keep ``strerror``.
    """
    texts = {
        errno.ENOENT: _("no such file or directory"),
        errno.EACCES: _("permission denied"),
        errno.EISDIR: _("is a directory"),
        errno.ENOTDIR: _("not a directory"),
        errno.EROFS: _("read-only file system"),
        errno.ENOSPC: _("no space left on the device"),
        errno.EADDRINUSE: _("address already in use"),
        errno.EADDRNOTAVAIL: _("the address is not on this machine"),
    }
    return texts.get(error.errno) or error.strerror or str(error)


def use_for_argparse():
    """Make our catalog the global gettext domain, so argparse's own texts are translated.

    argparse (Python 3.11) calls ``gettext.gettext``, which reads the global domain,
    for "usage:", "options", "show this help message and exit" and its error messages.
    The catalog holds those messages because tools/update-po.sh extracts them from
    tools/argparse_msgids.py.
    """
    gettext.bindtextdomain(DOMAIN, LOCALE_DIR)
    gettext.textdomain(DOMAIN)


def reload():
    """Reload the catalog after the language variables changed (used by tests)."""
    global _translation
    _translation = gettext.translation(DOMAIN, LOCALE_DIR, fallback=True)
