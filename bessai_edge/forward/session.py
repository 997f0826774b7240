"""One MQTT connection at a time to the broker, driven by the forwarder's loop.

Each connection attempt builds a fresh paho client, so nothing from a lost connection
(packets queued in paho, packet ids) leaks into the next one: after a loss the
forwarder republishes from its last acknowledged record instead. Everything runs in
the caller's thread: ``connect`` blocks for at most ``CONNECT_TIMEOUT_S`` on TCP and
TLS, plus name resolution, and ``loop`` waits at most its timeout.

The session reports to its listener by calling four methods: ``on_connected()``,
``on_failure(failure)`` for a failed attempt or a lost connection,
``on_acknowledged(mid)`` for each PUBACK with a success reason code, and
``on_rejected(mid, code, reason)`` for each PUBACK with a failure reason code (0x80 or
above, MQTT 5 only: an MQTT 3.1.1 PUBACK has no reason code) and its name. The listener ends a
connection that stopped working without the socket noticing (no PUBACK), or that must
be retried later, with ``abandon(failure)``.

An MQTT 5 broker may announce in its CONNACK the largest packet it accepts
(``max_packet_size``): a client that sends a larger one is disconnected. The session
keeps that limit, and ``publish_packet_size`` returns the size a message needs.
"""

import dataclasses
import enum
import logging
import random
import socket
import ssl
import time

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bessai_edge.backoff import BackoffPolicy

logger = logging.getLogger(__name__)

# Bound on the blocking TCP connect and the TLS handshake, each, and on the wait for
# the broker's CONNACK. Both stay far below the unit's WatchdogSec.
CONNECT_TIMEOUT_S = 5.0
# paho's name for a connection it closed because nothing came from the broker for
# MQTT_KEEPALIVE seconds. Before the CONNACK, that is the CONNACK timeout too.
_KEEPALIVE_TIMEOUT = "Keep alive timeout"
# A connection lost sooner than this after CONNACK counts as a failed attempt, so a
# broker that keeps dropping the client (another client with the same id) gets the
# backoff instead of a reconnect at once.
STABLE_CONNECTION_S = 10.0
# Connections dropped soon after CONNACK, one after the other with no failed attempt in
# between, before the message names another client with the same id as a likely cause.
# A restarting broker usually refuses an attempt between its drops, which resets the count.
REPEATED_DROPS = 3
# paho's name for the MQTT 5 DISCONNECT reason code 0x8E: another connection with the
# same client id took over the session.
_SESSION_TAKEN_OVER = "Session taken over"
# Fraction of a reconnect delay that jitter may remove, so that gateways which lost
# the same broker together do not all come back in the same second.
RECONNECT_JITTER = 0.3

# CONNACK reason codes that mean "fix the settings", and which settings.
_CREDENTIAL_REASONS = {"Bad user name or password", "Not authorized"}
# paho's name for CONNACK reason code 0x84 of MQTT 5, and for the return code 1 that an
# MQTT 3.1.1 broker sends when it does not support the protocol level of the CONNECT.
_UNSUPPORTED_PROTOCOL = "Unsupported protocol version"
_PAHO_PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
# paho's DEBUG log line for a packet it cannot decode. paho-mqtt 2.2.0 writes it for a
# PUBACK with a reason code that MQTT 5 does not list for PUBACK, then ends the
# connection with a protocol error. Mosquitto 2.0.11 sends such a code, 149 (Packet too
# large), for a message over message_size_limit.
_MALFORMED_PACKET = "Received malformed packet"
_PUBACK = 4


def publish_packet_size(topic, payload):
    """Return the bytes of a QoS 1 PUBLISH without properties, as MQTT 5 counts them.

    MQTT 5 (OASIS standard, 3.2.2.3.6 Maximum Packet Size) counts the whole packet. That
    is the fixed header byte, the remaining length (1 to 4 bytes), the topic with its
    2-byte length, the 2-byte packet id, the property length and the payload.
    """
    remaining = 2 + len(topic.encode()) + 2 + 1 + len(payload)
    length_bytes = 1
    while remaining >= 128 ** length_bytes:   # 7 bits of the length per byte
        length_bytes += 1
    return 1 + length_bytes + remaining


def _clause(text):
    """Return ``text`` without a final period, to embed it before a semicolon or colon."""
    return str(text).rstrip(" .")


def _reason_name(code):
    """Return the MQTT 5 name of reason ``code``, whatever packet type paho allows it for."""
    names = ReasonCode.names.get(code)
    return next(iter(names)) if names else f"reason code {code}"


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"   # TCP (and TLS) up, CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why an attempt failed or a connection was lost.

    ``kind`` is a short stable name for logs and tests (``refused``, ``timeout``,
    ``no_connack``, ``dns``, ``tls_certificate``, ``tls``, ``credentials``,
    ``rejected``, ``protocol``, ``lost``, ``dropped``, ``dropped_repeatedly``,
    ``network``, ``no_puback``, ``publish_rejected``); ``message`` describes what
    happened and what to check. ``dropped`` is a connection lost soon after its CONNACK,
    and ``dropped_repeatedly`` one that, after others like it, suggests a cause.
    ``level`` is the log level of the line that reports it first.
    """

    kind: str
    message: str
    level: int = logging.WARNING


class MqttSession:
    """Connects, reconnects with capped exponential backoff and jitter, publishes at QoS 1."""

    def __init__(self, settings, listener, clock=time.monotonic, random_fraction=random.random):
        self.settings = settings
        self.listener = listener
        self.clock = clock
        self.random_fraction = random_fraction
        self.backoff = BackoffPolicy(initial_s=settings.reconnect_min_s,
                                     maximum_s=settings.reconnect_max_s,
                                     jitter=RECONNECT_JITTER)
        self.state = State.DISCONNECTED
        self.failures = 0             # consecutive failed attempts, for the backoff
        self.attempts = 0             # every attempt since start
        self.next_attempt = clock()   # monotonic time of the next allowed attempt
        self._client = None
        self.max_packet_size = None   # bytes, as the broker's CONNACK announced it
        self._connack_wait_start = 0.0
        self._connected_at = 0.0
        self._last_paho_error = ""
        self._ever_connected = False  # a CONNACK accepted a connection of this session
        self._quick_drops = 0         # connections dropped soon after CONNACK, in a row

    @property
    def connected(self):
        return self.state is State.CONNECTED

    @property
    def settled(self):
        """True once the connection has lasted STABLE_CONNECTION_S, so an outage may end."""
        return self.connected and self.clock() - self._connected_at >= STABLE_CONNECTION_S

    def retry_in(self, now=None):
        """Seconds until the next connection attempt is allowed (0 when due)."""
        now = self.clock() if now is None else now
        return max(0.0, self.next_attempt - now)

    def connect(self):
        """Open a connection and send CONNECT; the CONNACK arrives through ``loop``."""
        self.attempts += 1
        client = self._new_client()
        settings = self.settings
        logger.debug("connecting to MQTT broker %s as %s (attempt %d)",
                     settings.broker, settings.client_id, self.attempts)
        # MQTT 5: a clean start without a Session Expiry Interval property, so the broker
        # ends the session with the connection, as MQTT 3.1.1's clean session does.
        clean_start = {"clean_start": True} if settings.protocol == "5" else {}
        try:
            client.connect(settings.broker_host, settings.port, settings.keepalive_s,
                           **clean_start)
        except ssl.SSLCertVerificationError as error:
            self._fail(Failure("tls_certificate", (
                f"TLS: the certificate of broker {settings.broker} was rejected: "
                f"{_clause(error.verify_message or error.reason)}; check MQTT_TLS_CA, and that "
                f"MQTT_BROKER_HOST is a name or address the certificate was issued for")))
            return
        except ssl.SSLError as error:
            self._fail(Failure("tls", (
                f"TLS handshake with broker {settings.broker} failed: "
                f"{_clause(error.reason or error)}; check MQTT_TLS_CERT, MQTT_TLS_KEY and "
                f"MQTT_PORT (the broker's TLS listener)")))
            return
        except ConnectionRefusedError:
            self._fail(Failure("refused", (
                f"broker {settings.broker} refused the connection: check that the broker "
                f"runs and listens on port {settings.port}")))
            return
        except socket.gaierror as error:
            self._fail(Failure("dns", (
                f"cannot resolve MQTT_BROKER_HOST={settings.broker_host}: "
                f"{_clause(error.strerror)}")))
            return
        except TimeoutError:
            self._fail(Failure("timeout", (
                f"connecting to broker {settings.broker} timed out after "
                f"{CONNECT_TIMEOUT_S:.0f} s: check the network path and the firewall")))
            return
        except ConnectionResetError as error:
            # The TLS handshake (inside connect) met a listener that expects plain MQTT.
            hint = (f": check that MQTT_PORT={settings.port} is the broker's TLS listener, "
                    f"not its plain MQTT port" if settings.tls_context is not None else "")
            self._fail(Failure("network", (
                f"cannot connect to broker {settings.broker}: {error.strerror or error}"
                f"{hint}")))
            return
        except OSError as error:
            self._fail(Failure("network", (
                f"cannot connect to broker {settings.broker}: {error.strerror or error}")))
            return
        self._client = client
        self.state = State.CONNECTING
        self._connack_wait_start = self.clock()

    def loop(self, timeout):
        """Let paho send, receive and dispatch for up to ``timeout`` seconds."""
        if self._client is None:
            return
        if self.state is State.CONNECTING:
            # Wake up at the CONNACK deadline, so that it is seen before paho's own
            # keepalive check ends the connection with a vaguer reason.
            deadline = self._connack_wait_start + CONNECT_TIMEOUT_S
            timeout = max(0.0, min(timeout, deadline - self.clock()))
        rc = self._client.loop(timeout)
        if self._client is None:
            return  # a callback ended the connection
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost(mqtt.error_string(rc))
        elif (self.state is State.CONNECTING
              and self.clock() - self._connack_wait_start >= CONNECT_TIMEOUT_S):
            self._fail(self._no_connack_failure())

    def abandon(self, failure):
        """End a connection that no longer works although its socket is open.

        Counts as a failed attempt: the next one waits for the backoff.
        """
        if self._client is not None:
            self._fail(failure)

    def publish(self, topic, payload, retain=False):
        """Publish one message at QoS 1 and return its packet id."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST):
            raise RuntimeError(f"paho rejected a publish on {topic}: {mqtt.error_string(info.rc)}")
        # On a lost connection, the failed socket write inside publish() has already
        # called on_failure, or the next loop() will. The forwarder then publishes the
        # record again on the next connection.
        return info.mid

    def close(self):
        """Send DISCONNECT and close the socket, if connected."""
        client, self._client = self._client, None
        self.state = State.DISCONNECTED
        if client is not None:
            client.on_disconnect = None
            client.disconnect()
            client.loop(0.1)

    def _new_client(self):
        settings = self.settings
        protocol = _PAHO_PROTOCOLS[settings.protocol]
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                             clean_session=None if protocol == mqtt.MQTTv5 else True,
                             protocol=protocol, reconnect_on_failure=False)
        client.connect_timeout = CONNECT_TIMEOUT_S
        # The forwarder bounds its own window; paho must neither hold back nor drop.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls_context is not None:
            client.tls_set_context(settings.tls_context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_log = self._on_log
        self._last_paho_error = ""
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if client is not self._client:
            return
        if not reason_code.is_failure:
            self.state = State.CONNECTED
            self._connected_at = self.clock()
            self._ever_connected = True
            self.max_packet_size = getattr(properties, "MaximumPacketSize", None)
            self.listener.on_connected()
            return
        reason = str(reason_code)
        if reason in _CREDENTIAL_REASONS:
            user = self.settings.username
            account = f"user {user!r}" if user else "a client without a user name"
            source = self.settings.password_source or "MQTT_PASSWORD_FILE"
            self._fail(Failure("credentials", (
                f"broker {self.settings.broker} rejected the credentials of {account}: "
                f"{_clause(reason)}; "
                f"check MQTT_USERNAME and {source}, and the broker's password file and ACL")))
        elif reason == _UNSUPPORTED_PROTOCOL and self.settings.protocol == "5":
            self._fail(Failure("protocol", (
                f"broker {self.settings.broker} rejected the connection: {reason}: it does "
                f"not support MQTT 5; set MQTT_PROTOCOL=3.1.1, or upgrade the broker, since "
                f"over MQTT 3.1.1 the forwarder cannot detect a publish that the broker "
                f"refuses"), logging.ERROR))
        else:
            self._fail(Failure("rejected", (
                f"broker {self.settings.broker} rejected the connection: {_clause(reason)}; "
                f"check MQTT_CLIENT_ID and the broker's log")))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if client is not self._client:
            return
        reason = str(reason_code)
        if reason == "Unspecified error":
            # paho's name for a socket that closed or failed without a DISCONNECT packet.
            reason = "the socket was closed by the broker or the network"
        self._lost(reason)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        if client is not self._client:
            return
        # Success codes include 0x10 "No matching subscribers": the broker took the message.
        if reason_code.is_failure:
            self.listener.on_rejected(mid, reason_code.value, str(reason_code))
        else:
            self.listener.on_acknowledged(mid)

    def _on_log(self, client, userdata, level, text):
        # Keep the first socket error: paho logs "Client is not connected" after it.
        if level == mqtt.MQTT_LOG_ERR and not self._last_paho_error:
            self._last_paho_error = text
        elif level == mqtt.MQTT_LOG_DEBUG and text.startswith(_MALFORMED_PACKET):
            self._last_paho_error = self._last_paho_error or text
            if client is self._client:
                self._report_undecodable_puback(client)

    def _report_undecodable_puback(self, client):
        """Report a failure PUBACK that paho could not decode as a rejected publish.

        NOTE: this reads the packet from paho's private ``_in_packet``, which paho-mqtt
        2.2.0 still keeps while it logs the decoding error. Another paho version may
        not: the connection then only ends, and the records in flight are sent again.
        """
        packet = getattr(client, "_in_packet", None)
        if not isinstance(packet, dict):
            return
        body = packet.get("packet", b"")
        if packet.get("command", 0) >> 4 != _PUBACK or len(body) < 3 or body[2] < 0x80:
            return
        mid, code = int.from_bytes(body[:2], "big"), body[2]
        self.listener.on_rejected(mid, code, _reason_name(code))

    def _no_connack_failure(self):
        """Describe a missing CONNACK; name the port only while it has never worked.

        Once a CONNACK came from this host and port, the port is the broker's, and a
        broker that accepts TCP but stays silent is stopped, frozen or overloaded.
        """
        settings = self.settings
        waited = self.clock() - self._connack_wait_start
        if self._ever_connected:
            hint = ("the broker, which accepted connections on this port before, may be "
                    "stopped or overloaded: check the broker's log and load")
        elif settings.tls_context is not None:
            hint = (f"check that MQTT_PORT={settings.port} is the broker's MQTT port over TLS, "
                    f"and not the port of another TLS service")
        else:
            hint = (f"check that MQTT_PORT={settings.port} is the broker's MQTT port, not the "
                    f"port of another service or of a listener that expects TLS (for TLS, "
                    f"set MQTT_TLS_CA)")
        return Failure("no_connack", (
            f"no CONNACK came within {waited:.0f} s from {settings.broker}, which accepted "
            f"the {'TLS' if settings.tls_context else 'TCP'} connection: {hint}"))

    def _lost(self, reason):
        """End the current connection; a loss before CONNACK counts as a failed attempt."""
        detail = self._last_paho_error or reason
        if self.state is State.CONNECTING and reason == _KEEPALIVE_TIMEOUT:
            self._fail(self._no_connack_failure())
        elif self.state is State.CONNECTING:
            if self.settings.tls_context is not None:
                # A broker that rejects the client certificate ends the session after
                # the handshake, with a TLS alert or by just closing the socket.
                failure = Failure("tls", (
                    f"broker {self.settings.broker} closed the TLS session before accepting "
                    f"the connection ({detail}); check MQTT_TLS_CERT and MQTT_TLS_KEY: the "
                    f"broker may require a client certificate signed by a CA it trusts"))
            else:
                port = ("" if self._ever_connected else
                        f", and that MQTT_PORT={self.settings.port} is its plain MQTT port, "
                        f"not a listener that expects TLS (for TLS, set MQTT_TLS_CA)")
                failure = Failure("lost", (
                    f"broker {self.settings.broker} closed the connection before accepting "
                    f"it ({detail}); check the broker's log{port}"))
            self._fail(failure)
        elif self.state is State.CONNECTED:
            lasted = self.clock() - self._connected_at
            if lasted < STABLE_CONNECTION_S:
                self._quick_drops += 1
                self._fail(self._dropped_failure(lasted, reason, detail))
                return
            self._quick_drops = 0
            self._drop_client()
            self.failures = 0
            self.next_attempt = self.clock()  # try again at once, then back off
            self.listener.on_failure(Failure("lost", (
                f"connection to broker {self.settings.broker} lost: {_clause(detail)}")))

    def _dropped_failure(self, lasted, reason, detail):
        """Describe a connection lost soon after CONNACK; name likely causes once they fit.

        The broker names a takeover by another client with the same id (MQTT 5). Other
        causes are suggested only after ``REPEATED_DROPS`` drops in a row, since a single
        one is what a broker restart gives.
        """
        settings = self.settings
        lost = (f"connection to broker {settings.broker} lost {lasted:.1f} s after it was "
                f"accepted: {_clause(detail)}")
        if reason != _SESSION_TAKEN_OVER and self._quick_drops < REPEATED_DROPS:
            return Failure("dropped", lost)
        # Over MQTT 3.1.1 a broker cannot reject one publish, so some close the
        # connection on a publish their ACL denies.
        acl = (f", or the broker's ACL may deny publishing under "
               f"MQTT_TOPIC_PREFIX={settings.topic_prefix}: its log tells which"
               if settings.protocol == "3.1.1" else "")
        in_a_row = f", {self._quick_drops} times in a row" if self._quick_drops > 1 else ""
        return Failure("dropped_repeatedly", (
            f"{lost}{in_a_row}; another client may use "
            f"MQTT_CLIENT_ID={settings.client_id}, which the broker then disconnects{acl}"))

    def _fail(self, failure):
        if self.state is State.CONNECTED and (
                self.clock() - self._connected_at >= STABLE_CONNECTION_S):
            self.failures = 0  # the connection had worked: the backoff starts over
        if self.state is not State.CONNECTED:
            self._quick_drops = 0  # a failed attempt: the broker was away, as in a restart
        self._drop_client()
        self.failures += 1
        delay = self.backoff.delay(self.failures, self.random_fraction())
        self.next_attempt = self.clock() + delay
        self.listener.on_failure(failure)

    def _drop_client(self):
        client, self._client = self._client, None
        self.state = State.DISCONNECTED
        if client is not None:
            client.on_disconnect = None
            client.on_publish = None
            try:
                client.socket() and client.socket().close()
            except OSError:
                pass
