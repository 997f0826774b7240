"""``bessai spool stats|tail|check``: inspect and validate the spool directory."""

import argparse
import datetime
import logging
import os
import sys
import time

from bessai_edge.i18n import _, ngettext

HELP = "inspect the telemetry spool: statistics, last records, validation"
DEFAULT_DIR = "/var/spool/bessai"
FOLLOW_INTERVAL_S = 1.0


def add_arguments(parser):
    """Add the ``stats``, ``tail`` and ``check`` subcommands, each with ``--dir``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", metavar="DIR",
        help=_("spool directory (default: $SPOOL_DIR, else /var/spool/bessai)"))
    actions = parser.add_subparsers(dest="spool_action", metavar=_("ACTION"))
    actions.required = True

    stats = actions.add_parser(
        "stats", parents=[common],
        help=_("segments, records, bytes, record times, dropped and evicted counts"))
    stats.add_argument("--json", action="store_true", help=_("print one JSON object"))

    tail = actions.add_parser(
        "tail", parents=[common],
        help=_("print the last records; damaged lines are reported on stderr and skipped, "
               "and the exit status is then 1"))
    tail.add_argument("-n", "--lines", type=_non_negative_int, default=10, metavar="N",
                      help=_("number of records to print (default: 10)"))
    tail.add_argument("-f", "--follow", action="store_true",
                      help=_("keep printing new records until Ctrl-C"))

    check = actions.add_parser(
        "check", parents=[common],
        help=_("validate every line: each must be a JSON record with the keys and value "
               "types of the record layout and a rising sequence number; exit 1 if a line "
               "is bad or a set-aside .corrupt file remains (sequence gaps alone give 0)"))
    check.add_argument("--repair", action="store_true",
                       help=_("first repair the spool as at start-up, checking every segment "
                              "(the gateway must be stopped)"))
    check.add_argument("--json", action="store_true", help=_("print one JSON object"))


def main(args):
    """Run the chosen action and return the exit status."""
    directory = args.dir or os.environ.get("SPOOL_DIR") or DEFAULT_DIR
    if not os.path.isdir(directory):
        _missing_directory(directory, args.dir)
    if args.spool_action == "stats":
        return _stats(directory, args.json)
    if args.spool_action == "tail":
        return _tail(directory, args.lines, args.follow)
    return _check(directory, args.repair, args.json)


def _missing_directory(directory, dir_option):
    """Raise the SpoolError for a missing directory or a file; name the source of its name."""
    from bessai_edge.errors import SpoolError

    if dir_option:
        where = _("check --dir")
    elif os.environ.get("SPOOL_DIR"):
        where = _("check SPOOL_DIR in the environment")
    else:
        where = _("name the spool with --dir DIR or SPOOL_DIR; the gateway's is SPOOL_DIR "
                  "in /etc/bessai/bessai.env")
    if os.path.lexists(directory):
        raise SpoolError(_("spool directory {directory} is not a directory: {where}").format(
            directory=directory, where=where))
    raise SpoolError(_("spool directory {directory} does not exist: {where}").format(
        directory=directory, where=where))


def _stats(directory, as_json):
    from bessai_edge.spool import SpoolReader, stats

    SpoolReader(directory).segments()   # raises SpoolError for a missing directory
    figures = stats.summarize(directory)
    if as_json:
        import orjson
        sys.stdout.buffer.write(orjson.dumps(figures, option=orjson.OPT_APPEND_NEWLINE))
        return 0
    none = _("none")
    rows = [
        (_("directory"), figures["directory"]),
        (_("segments"), _segment_count(figures)),
        (_("writer"), _writer(figures)),
        (_("records"), _record_count(figures)),
        (_("damaged lines"), _damaged_count(figures)),
        (_("bytes"), str(figures["bytes"])),
        (_("oldest record"), _record_time(figures, "oldest_time_ms")),
        (_("newest record"), _record_time(figures, "newest_time_ms")),
        (_("dropped records"), str(figures["lifetime_records_dropped"])),
        (_("evicted"), _("{records} in {segments}").format(
            records=_records(figures["lifetime_records_evicted"]),
            segments=_segments(figures["lifetime_segments_evicted"]))),
        (_("set aside"), ", ".join(figures["set_aside"]) or none),
    ]
    width = max(len(label) for label, _value in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _tail(directory, count, follow):
    """Print the last ``count`` records, reporting damaged lines on stderr.

    Returns 1 when a damaged line was seen, as ``bessai spool check`` does, else 0.
    With ``follow`` it prints new records until Ctrl-C.
    """
    from bessai_edge.spool import SpoolReader

    reader = SpoolReader(directory)
    # One record more than printed gives the position to follow from, even for -n 0.
    items = reader.last_scanned(count + 1)
    position = items[-1][0] if items else None
    records = [index for index, item in enumerate(items) if item[2] is None]
    if len(records) > count:
        items = items[records[0] + 1:]
    damaged = _print_scanned(items)
    if not follow:
        return 1 if damaged else 0
    while True:
        time.sleep(FOLLOW_INTERVAL_S)
        items = list(reader.scan(position))
        _print_scanned(items)
        if items:
            position = items[-1][0]


def _print_scanned(items):
    """Print records on stdout and damaged lines on stderr; return True if any was damaged."""
    out = sys.stdout.buffer
    damaged = False
    for _position, line, damage in items:
        if damage is None:
            out.write(line + b"\n")
            continue
        out.flush()     # keeps the report in order with the records in a terminal
        print(_("bessai: damaged line skipped: {segment} offset {offset}: {reason}").format(
            segment=damage.segment, offset=damage.offset, reason=damage.reason),
            file=sys.stderr, flush=True)
        damaged = True
    out.flush()
    return damaged


def _check(directory, repair, as_json):
    from bessai_edge.spool import SpoolReader, check

    if repair:
        _repair(directory)
    SpoolReader(directory).segments()   # raises SpoolError for a missing directory
    report = check.check_spool(directory)
    if as_json:
        import dataclasses
        import orjson
        figures = dataclasses.asdict(report)
        figures["ok"] = report.ok
        sys.stdout.buffer.write(orjson.dumps(figures, option=orjson.OPT_APPEND_NEWLINE))
        return 0 if report.ok else 1
    for bad in report.bad_lines:
        print(_("{segment} offset {offset}: {reason}").format(
            segment=bad.segment, offset=bad.offset, reason=bad.reason))
    for name in report.set_aside:
        print(_("{name}: damaged lines set aside by the repair at start-up or by check "
                "--repair; inspect the file, then delete it").format(name=name))
    if report.incomplete_tail:
        tail = report.incomplete_tail
        print(_("{segment} offset {offset}: incomplete last line ({reason}), being written "
                "now or cut at the next start").format(
                    segment=tail.segment, offset=tail.offset, reason=tail.reason))
    for (first, last), cause in zip(report.gaps, report.gap_causes):
        print(_gap_text(first, last, cause))
    print(_("checked {records} in {segments} ({bytes}): {bad}, {aside}").format(
        records=_records(report.records), segments=_segments(report.segments),
        bytes=_bytes(report.bytes),
        bad=ngettext("{count} bad line", "{count} bad lines", len(report.bad_lines)).format(
            count=len(report.bad_lines)),
        aside=_set_aside_text(report.set_aside)))
    return 0 if report.ok else 1


def _gap_text(first, last, cause):
    """Return the line for one sequence gap, naming where its records are when known."""
    count = last - first + 1
    if cause.bad_lines:
        places = ", ".join(_("{segment} offset {offset}").format(
            segment=bad.segment, offset=bad.offset) for bad in cause.bad_lines)
        return ngettext("sequence number {first} is missing: it is on a bad line listed above "
                        "({places})",
                        "sequence numbers {first}-{last} are missing: they are on bad lines "
                        "listed above ({places})", count).format(
                            first=first, last=last, places=places)
    if cause.set_aside:
        return ngettext("sequence number {first} is missing: the repair set it aside in "
                        "{files}",
                        "sequence numbers {first}-{last} are missing: the repair set them "
                        "aside in {files}", count).format(
                            first=first, last=last, files=", ".join(cause.set_aside))
    return ngettext("sequence number {first} is missing (dropped on a full disk or lost)",
                    "sequence numbers {first}-{last} are missing (dropped on a full disk "
                    "or lost)", count).format(first=first, last=last)


def _set_aside_text(names):
    """Return the summary's part on set-aside files, which give exit status 1 while they exist."""
    if not names:
        return _("no set-aside files")
    return ngettext("{count} set-aside file remains ({names}): inspect it, then delete it "
                    "to clear exit status 1",
                    "{count} set-aside files remain ({names}): inspect them, then delete "
                    "them to clear exit status 1", len(names)).format(
                        count=len(names), names=", ".join(names))


def _records(count):
    return ngettext("{count} record", "{count} records", count).format(count=count)


def _segments(count):
    return ngettext("{count} segment", "{count} segments", count).format(count=count)


def _bytes(count):
    return ngettext("{count} byte", "{count} bytes", count).format(count=count)


def _repair(directory):
    from bessai_edge.spool import Spool

    # The repair's log lines (English, as in the journal) name the segment and offset it
    # changed. The prefix marks them as this command's, beside the summary printed below.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="bessai spool: %(levelname)s %(message)s")
    spool = Spool(directory).open(check_all=True)
    figures = spool.stats()
    spool.close()
    print(_("recovery: cut {bytes} of torn tails; segments set aside: {segments}").format(
        bytes=_bytes(figures["bytes_cut"]), segments=figures["segments_set_aside"]))


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            _("expected a whole number of at least 0, got {value!r}").format(value=text))
    return value


def _segment_count(figures):
    """Return the segments row, which calls the newest segment open only while a writer runs."""
    if figures["writer_running"]:
        return _("{count} ({sealed} sealed, open: {open})").format(
            count=figures["segments"], sealed=figures["sealed_segments"],
            open=figures["open_segment"] or _("none"))
    return _("{count} ({sealed} sealed, newest: {newest})").format(
        count=figures["segments"], sealed=figures["sealed_segments"],
        newest=figures["newest_segment"] or _("none"))


def _writer(figures):
    if figures["writer_running"] is None:
        return _("unknown (/proc/locks cannot be read)")
    if figures["writer_running"]:
        return _("PID {pid} (holds the spool's lock)").format(pid=figures["writer_pid"])
    return _("none (no process holds the spool's lock)")


def _record_count(figures):
    if not figures["records"]:
        return "0"
    return _("{count} (sequence numbers {first}-{last})").format(
        count=figures["records"], first=figures["first_seq"], last=figures["last_seq"])


def _damaged_count(figures):
    if not figures["damaged_lines"]:
        return "0"
    return _("{count} (bessai spool check lists them)").format(count=figures["damaged_lines"])


def _record_time(figures, key):
    if not figures["records"]:
        return _("none yet (the spool holds no records)")
    return _format_time(figures[key])


def _format_time(time_ms):
    if not isinstance(time_ms, int | float):
        return _("unknown (no time_ms in the record)")
    moment = datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
