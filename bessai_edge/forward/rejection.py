"""Texts for a publish that the broker rejected with an MQTT 5 PUBACK reason code.

An MQTT 5 broker acknowledges a QoS 1 PUBLISH that it will not deliver with a PUBACK
whose reason code is 0x80 or above. Mosquitto 2.0.11 sends 135 (Not authorized) when
its ACL denies the topic and 149 (Packet too large) for a payload over
``message_size_limit``, and may then close the connection. Over MQTT 3.1.1 the same broker
sends a plain PUBACK, which is why the forwarder connects with MQTT 5 by default.
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


def describe(rejection, broker, username):
    """Return the log text for ``rejection``: what the broker did and what to change there."""
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
