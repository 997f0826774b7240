"""The messages of Python 3.11's argparse, for tools/update-po.sh to extract.

argparse translates its own texts (usage, option groups, errors) through the global
gettext domain, which bessai_edge.i18n points at our catalog, so the catalog must hold
them. The list was generated with
``xgettext --language=Python --keyword=_ --keyword=ngettext:1,2 argparse.py``;
tests/i18n/test_argparse_catalog.py fails when the running Python's argparse has
messages missing here. This file is never imported.
"""


_("usage: ")
_("argument %(argument_name)s: %(message)s")
_(".__call__() not defined")
_("conflicting subparser: %s")
_("conflicting subparser alias: %s")
_("unknown parser %(parser_name)r (choices: %(choices)s)")
_("argument \"-\" with mode %r")
_("can't open '%(filename)s': %(error)s")
_("cannot merge actions - two groups are named %r")
_("'required' is an invalid argument for positionals")
_("invalid option string %(option)r: must start with a character %(prefix_chars)r")
_("dest= is required for options like %r")
_("invalid conflict_resolution value: %r")
ngettext("conflicting option string: %s", "conflicting option strings: %s", 2)
_("mutually exclusive arguments must be optional")
_("positional arguments")
_("options")
_("show this help message and exit")
_("cannot have multiple subparser arguments")
_("unrecognized arguments: %s")
_("not allowed with argument %s")
_("ignored explicit argument %r")
_("the following arguments are required: %s")
_("one of the arguments %s is required")
_("expected one argument")
_("expected at most one argument")
_("expected at least one argument")
ngettext("expected %s argument", "expected %s arguments", 2)
_("ambiguous option: %(option)s could match %(matches)s")
_("unexpected option string: %s")
_("%r is not callable")
_("invalid %(type)s value: %(value)r")
_("invalid choice: %(value)r (choose from %(choices)s)")
_("%(prog)s: error: %(message)s\n")
