"""A publish that the broker rejected with an MQTT 5 PUBACK reason code.

``describe`` words the ERROR line, and ``HoldBack`` keeps the rejected record and the
records behind it from going out in the wrong order.

An MQTT 5 broker acknowledges a QoS 1 PUBLISH that it will not deliver with a PUBACK
whose reason code is 0x80 or above. Mosquitto 2.0.11 sends 135 (Not authorized) when
its ACL denies the topic and 149 (Packet too large) for a payload over
``message_size_limit``, and may then close the connection. Over MQTT 3.1.1 the same
broker sends a plain PUBACK, which is why the forwarder connects with MQTT 5 by default.

A record with a message larger than the maximum packet size that the broker announced
is not sent, because the broker would close the connection without a PUBACK. The
forwarder treats it as rejected and keeps it back in the same way.
"""

import dataclasses

# PUBACK reason codes with a remedy of their own. MQTT 5 does not list 149 among the
# PUBACK codes, but Mosquitto 2.0.11 sends it.
NOT_AUTHORIZED = 0x87
PACKET_TOO_LARGE = 0x95
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
TOPIC_NAME_INVALID = 0x90
QUOTA_EXCEEDED = 0x97


@dataclasses.dataclass(frozen=True)
class Rejection:
    """The oldest record of a connection that the broker rejected, and why."""

    seq: int | None      # the record's sequence number
    position: tuple      # spool position just after the record's line
    topic: str
    size: int            # payload bytes of the rejected message
    code: int            # the PUBACK reason code
    reason: str          # paho's name for the code, e.g. "Not authorized"
    limit: int | None = None   # the broker's maximum packet size, for a record too large to send


def describe(rejection, broker, username):
    """Return the log text for ``rejection``: what the broker did and what to change there."""
    if rejection.limit is not None:
        return (f"record {_seq_text(rejection.seq)} on topic {rejection.topic} needs a "
                f"PUBLISH packet of {rejection.size} bytes, and broker {broker} accepts "
                f"at most {rejection.limit} (its maximum packet size): not sent; raise "
                f"the broker's max_packet_size well above {rejection.size} bytes (records "
                f"differ in size), or remove it")
    return (f"broker {broker} rejected record {_seq_text(rejection.seq)} on topic "
            f"{rejection.topic} ({rejection.size} bytes): PUBACK reason code "
            f"{rejection.code} {rejection.reason}; {_remedy(rejection, username)}")


def _remedy(rejection, username):
    account = f"user {username!r}" if username else "clients without a user name"
    if rejection.code == NOT_AUTHORIZED:
        return (f"the broker's ACL must allow publishing to this topic for {account} "
                f"(Mosquitto: acl_file, reloaded on SIGHUP)")
    if rejection.code == PACKET_TOO_LARGE:
        return (f"raise the broker's message_size_limit well above {rejection.size} bytes "
                f"(records differ in size), or remove it")
    if rejection.code == IMPLEMENTATION_SPECIFIC_ERROR:
        # The mosquitto.conf manual of 2.0.11 names this code for message_size_limit,
        # although that version sends 149.
        return (f"check the broker's log; if it dropped the message as too large, raise "
                f"its message_size_limit above {rejection.size} bytes")
    if rejection.code == TOPIC_NAME_INVALID:
        return "the broker does not accept this topic name: check MQTT_TOPIC_PREFIX"
    if rejection.code == QUOTA_EXCEEDED:
        return "the broker limits the messages of this client: check its limits and log"
    return "check the broker's log"


def _seq_text(seq):
    return str(seq) if seq is not None else "-"


class HoldBack:
    """The record the broker rejected, and how many records may be in flight.

    While the broker rejects a record, that record goes alone on each connection, and
    only its rejected messages. ``single`` also requests one record alone after a
    connection ended with records in flight, and at the start of a run over MQTT 5. So
    a record rejected before a restart goes again before those behind it.
    """

    def __init__(self, single):
        self.single = single          # send one record alone until a PUBACK comes
        self.rejection = None         # the Rejection whose record is held back until accepted
        self.rejections = 0           # how often the broker rejected that record
        self._pending = None          # the oldest Rejection of this connection, to act on
        self._pending_topics = set()  # topics of that record the broker rejected
        self._held_topics = set()     # topics to send again for the held record

    def one_at_a_time(self):
        return self.single or self.rejection is not None

    def note(self, entry, code, reason):
        """Note that the broker rejected a message of the window ``entry``."""
        message = entry.message
        topic = message.topic if message else "-"
        pending = self._pending
        if pending is not None and pending.position == entry.position:
            self._pending_topics.add(topic)   # another message of the same record
            return
        if pending is not None and pending.position < entry.position:
            return   # a record after the oldest rejected one of this connection
        self._pending_topics = {topic}
        self._pending = Rejection(seq=entry.seq, position=entry.position, topic=topic,
                                  size=len(message.payload) if message else 0,
                                  code=code, reason=reason)

    def note_unsent(self, rejection, topics):
        """Note a record too large to send; ``topics`` are those of all its messages."""
        self._pending_topics = set(topics)
        self._pending = rejection

    def take_pending(self):
        """Return the oldest rejection of this connection, or None, and forget it."""
        pending, self._pending = self._pending, None
        return pending

    def hold(self, rejection):
        """Send ``rejection``'s record alone from now on, only its rejected messages."""
        if self.rejection is None or rejection.position != self.rejection.position:
            self.rejections = 0
            self._held_topics = set()
        self._held_topics |= self._pending_topics
        self.rejection = rejection
        self.rejections += 1

    def messages_to_send(self, position, messages):
        """Return the messages of the record at ``position`` to publish.

        The held record's other messages were taken: sending them on every attempt
        would repeat them without bound while only one topic is denied.
        """
        if self.rejection is None or position != self.rejection.position:
            return messages
        return [message for message in messages if message.topic in self._held_topics] or (
            messages)

    def acknowledged(self, position):
        """Take acknowledgements up to ``position``; return the held Rejection they end."""
        rejection = self.rejection
        if rejection is not None and position < rejection.position:
            return None
        self.single = False
        self.forget()
        return rejection

    def forget(self):
        """Forget the held record, as when the spool is read again from its start."""
        self.rejection = None
        self.rejections = 0
        self._held_topics = set()
