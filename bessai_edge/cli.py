"""The ``bessai`` command line: one subcommand per module in ``bessai_edge.commands``.

Each command module defines ``HELP``, ``add_arguments(parser)`` and ``main(args)``,
which returns the exit status. Command modules import their heavy dependencies inside
``main`` so that ``bessai --help`` and light commands start fast.

When the reader of stdout goes away early (``bessai profiles | head -1``), the command
stops quietly and exits with 141, the status a shell reports for a program killed by
SIGPIPE (128 + 13), as ``cat`` and other filters do, so ``set -o pipefail`` scripts see
the same status for us as for them.
"""

import argparse
import difflib
import gettext
import importlib
import logging
import os
import sys

from bessai_edge import package_version
from bessai_edge.errors import EX_CONFIG, ConfigError, ProfileError, SpoolError
from bessai_edge import i18n
from bessai_edge.i18n import _

COMMANDS = ("run", "check", "simulate", "profiles", "spool", "forward")
EXIT_BROKEN_PIPE = 141
INSTALLED_ENV_FILE = "/etc/bessai/bessai.env"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C


def build_parser():
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="bessai",
        description=_("Modbus TCP edge gateway for battery energy storage systems."))
    parser.add_argument("--version", action="version", version=f"bessai-edge {package_version}",
                        help=_("show the version and exit"))
    subparsers = parser.add_subparsers(dest="command", metavar=_("COMMAND"))
    subparsers.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"bessai_edge.commands.{name}")
        subparser = subparsers.add_parser(name, help=_(module.HELP), description=_(module.HELP))
        module.add_arguments(subparser)
        subparser.set_defaults(command_main=module.main, command_parser=subparser)
    return parser


def main(argv=None):
    """Run the ``bessai`` command and return its exit status."""
    try:
        i18n.use_for_argparse()
        status = _run(argv)
        sys.stdout.flush()
    except KeyboardInterrupt:
        # Ctrl-C before the command installs its own handler (during the imports of
        # about the first 0.1 s) ends the program without a traceback.
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python flushes stdout again at exit, so point it at /dev/null to keep that
        # flush from raising a second time and printing "Exception ignored".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


def _run(argv):
    parser = build_parser()
    _suggest_command(parser, sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        # parse_args would name them under the top-level usage; the command's lists its
        # options. The message is argparse's own, from our catalog (i18n.use_for_argparse).
        args.command_parser.error(gettext.gettext("unrecognized arguments: %s")
                                  % " ".join(extras))
    try:
        return args.command_main(args)
    except (ConfigError, ProfileError) as error:
        problems = getattr(error, "problems", None) or [str(error)]
        _print_errors(problems + _installed_settings_hint(args, error))
        return EX_CONFIG
    except SpoolError as error:
        _print_errors([str(error)])
        return EX_CONFIG
    finally:
        logging.shutdown()


def _suggest_command(parser, argv):
    """Exit with a "did you mean" line when the command is a near miss of one of ours.

    argparse (Python 3.11) lists the commands but does not pick the likely one. The top
    level takes no option with a value, so the first argument without a dash is the
    command.
    """
    name = next((argument for argument in argv if not argument.startswith("-")), None)
    if name is None or name in COMMANDS:
        return
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    if close:
        parser.error(_("unknown command {name!r}; did you mean {command}?").format(
            name=name, command=close[0]))


def _installed_settings_hint(args, error):
    """Return a line pointing to the installed settings file when it was left out.

    ``bessai check`` without ``--env-file`` on an installed gateway reads only the
    shell's environment, and would report every required setting as missing.
    """
    if getattr(args, "env_file", "") is not None:
        return []  # --env-file given, or a command without that option
    if not isinstance(error, ConfigError) or not os.path.isfile(INSTALLED_ENV_FILE):
        return []
    return [_("the installed settings are in {path}, which this command reads only with "
              "--env-file {path}").format(path=INSTALLED_ENV_FILE)]


def _print_errors(lines):
    """Print error lines on stderr, marked as errors when stderr is the journal.

    journald stores plain stderr lines at info priority; a ``<3>`` prefix (syslog
    "err") makes ``journalctl -p err`` find a configuration error.
    """
    from bessai_edge.service.journal import stderr_is_journal

    prefix = "<3>" if stderr_is_journal() else ""
    for line in lines:
        print(f"{prefix}bessai: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
