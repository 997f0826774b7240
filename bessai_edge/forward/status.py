"""The forwarder's status line, which ``systemctl status bessai-forward`` shows.

One line: the connection or the outage in a few words, a damaged line that delivery
waits at, the records delivered since start with the last acknowledged seq, and the
bytes of spool still to send. The journal has the details of each failure.
"""

# The status line's words for each Failure.kind of session.py.
_OUTAGE_TEXTS = {
    "refused": "broker {broker} unreachable: connection refused",
    "timeout": "broker {broker} unreachable: connection timed out",
    "dns": "broker {broker} unreachable: cannot resolve {host}",
    "network": "broker {broker} unreachable: network error",
    "credentials": "broker {broker} rejected the credentials of {account}",
    "rejected": "broker {broker} rejected the connection",
    "tls_certificate": "TLS certificate of broker {broker} rejected",
    "tls": "TLS session with broker {broker} failed",
    "no_connack": "broker {broker} sent no CONNACK",
    "lost": "connection to broker {broker} lost",
    "dropped": "connection to broker {broker} dropped soon after it was accepted",
    "dropped_repeatedly": ("connection to broker {broker} dropped again and again soon "
                           "after it was accepted"),
    "no_puback": "broker {broker} stopped acknowledging messages (no PUBACK)",
    "protocol": "broker {broker} does not support MQTT 5: set MQTT_PROTOCOL=3.1.1",
}


def status_text(settings, *, delivered, acknowledged, rejection, connected, outage,
                failure_kind, retry_in, segments, waiting_for_repair=None):
    """Return the status line.

    ``acknowledged`` is the newest acknowledged Checkpoint or None, ``rejection`` the
    held-back Rejection or None, ``outage`` True during an outage whose newest failure
    has kind ``failure_kind``, and ``segments`` the spool's segments or None when they
    could not be listed. ``waiting_for_repair`` is the ``(segment name, offset)`` of a
    damaged line where delivery waits for ``bessai run``, or None.
    """
    backlog = backlog_bytes(segments, acknowledged)
    if backlog is None:
        backlog_text = "backlog unknown"
    else:
        backlog_text = f"backlog {backlog / 1024:.0f} KiB"
    seq = acknowledged.seq if acknowledged else None
    done = f"{delivered} records delivered, last seq {seq if seq is not None else '-'}"
    if waiting_for_repair is not None:
        name, offset = waiting_for_repair
        done = (f"waiting for bessai run to repair NUL bytes in spool segment {name} at "
                f"offset {offset}; {done}")
    broker = settings.broker
    if rejection is not None:
        seq_text = rejection.seq if rejection.seq is not None else "-"
        if rejection.limit is not None:
            reason = f"over its maximum packet size of {rejection.limit} bytes"
        else:
            reason = f"{rejection.code} {rejection.reason}"
        return (f"broker {broker} rejects record {seq_text} ({reason}), see the journal; "
                f"{done}; {backlog_text}")
    if connected:
        return f"connected to {broker}; {done}; {backlog_text}"
    if outage:
        return (f"{_outage_text(settings, failure_kind)}; next attempt in {retry_in:.0f} s; "
                f"{done}; {backlog_text}")
    return f"connecting to {broker}; {done}; {backlog_text}"


def backlog_bytes(segments, acknowledged):
    """Return the bytes in ``segments`` after the ``acknowledged`` position, None when unknown."""
    if segments is None:
        return None
    total = 0
    for segment in segments:
        if acknowledged is None or segment.first_seq > acknowledged.segment:
            total += segment.size
        elif segment.first_seq == acknowledged.segment:
            total += max(0, segment.size - acknowledged.offset)
    return total


def _outage_text(settings, failure_kind):
    """Return the newest failure of the outage in a few words."""
    template = _OUTAGE_TEXTS.get(failure_kind, "broker {broker} not connected")
    if settings.username:
        account = f"user {settings.username!r}"
    else:
        account = "a client without a user name"
    return template.format(broker=settings.broker, host=settings.broker_host, account=account)
