"""The forwarder's loop: spool records to MQTT at QoS 1, at least once.

One thread does everything. Each turn of its loop feeds the systemd watchdog,
connects when disconnected and the backoff allows it, and publishes spool records
while the window has room. It then lets paho send and receive for a bounded time and
takes the unbroken run of acknowledged records off the window. Last, it saves the
checkpoint when due and deletes the sealed segments the saved checkpoint has passed.

Guarantees, and what makes them hold:

* Nothing is lost to a crash or an outage: the checkpoint only ever covers records
  the broker acknowledged, and a sealed segment is deleted only once a saved
  checkpoint lies at its end or beyond.
* Duplicates are bounded by the window: records are published only while fewer than
  ``MQTT_INFLIGHT`` of them lie past the saved checkpoint, and after a lost
  connection publishing starts again at the last acknowledged record.
* Order per device: records are published in spool order on one connection, which
  MQTT keeps; after a reconnect the resent records come again in the same order.
* No stall on a broker that stops acknowledging: when the oldest message in flight
  waits longer than ``MQTT_ACK_TIMEOUT_S`` for its PUBACK, the connection is dropped
  and the records in flight are sent again on the next one.
* A publish the broker rejects (MQTT 5 PUBACK reason code 0x80 or above) is not
  delivered: its record stays pending in the window, the connection is dropped after
  the loop turn that saw the PUBACK, and the next attempt waits for the reconnect
  backoff. Mosquitto 2.0.11 keeps the connection open in its default configuration,
  but closes it itself with ``max_queued_messages 0`` (checked on loopback). Until the
  broker accepts that record, only one record is in flight at a time, so records
  behind it are neither sent again and again nor accepted before it.
* After a connection ends with records waiting for their PUBACK, the next connection
  sends the oldest of them alone first. A broker that sends a rejecting PUBACK and then
  closes the connection (Mosquitto 2.0.11 with ``max_queued_messages 0``) would
  otherwise reset a connection with more publishes unread, and that PUBACK, with the
  reason code, would be lost.
* The retained alarm message of a device carries the ``alarms`` of its newest
  forwarded record: a record gets an alarm message whenever its alarms differ from
  those of the newest one published (``messages_for``), as after a restart of
  ``bessai run`` or of the forwarder.
* The retained alarm state survives a broker restart without persistence: every new
  connection starts with the newest acknowledged alarm message of each device
  (``RetainedAlarms``).
* One forwarder per spool: ``SpoolLock`` keeps a second one from starting. The lock
  is taken again when its file was deleted, checked every ``LOCK_CHECK_INTERVAL_S``.
* The scan loop's files are only read; the forwarder writes its own checkpoint file,
  creates its lock file in the spool directory, and deletes whole sealed segments
  through ``SpoolReader.delete_sealed``.
"""

import errno
import logging
import time

from bessai_edge.errors import EX_CONFIG, SpoolError
from bessai_edge.forward.checkpoint import Checkpoint
from bessai_edge.forward.cursor import SpoolCursor
from bessai_edge.forward.messages import BadRecord, TopicBuilder, messages_for, parse_record
from bessai_edge.forward.outage import OutageLog
from bessai_edge.forward.rejection import PACKET_TOO_LARGE, HoldBack, Rejection, describe
from bessai_edge.forward.retained import RetainedAlarms
from bessai_edge.forward.sequence import SequenceCheck
from bessai_edge.forward.skipped import SkippedLines
from bessai_edge.forward.stamp import stamp_of
from bessai_edge.forward.status import status_text
from bessai_edge.forward.session import Failure, MqttSession, State, publish_packet_size
from bessai_edge.forward.window import InflightWindow
from bessai_edge.ratelimit import RateLimitedLog
from bessai_edge.spool import stats

logger = logging.getLogger(__name__)

# How often the spool is asked for new records once the forwarder has caught up. The
# scan loop appends one record per device per second by default.
SPOOL_POLL_S = 0.5
# Maximum wait of one loop turn, which bounds how late a stop request is seen.
IDLE_WAIT_S = 0.25
# Time given to the acknowledgements of records in flight when stopping.
STOP_GRACE_S = 2.0
STATUS_INTERVAL_S = 5.0
# Deleting a segment lists the spool directory. While a backlog drains through many
# small segments, they are deleted in batches, at most once per this interval (and
# once more at start and at stop).
DELETE_INTERVAL_S = 1.0
# How often the forwarder checks that its spool lock file is still in place.
LOCK_CHECK_INTERVAL_S = 5.0


class Forwarder:
    """Ships the spool in ``reader`` to the broker of ``settings``.

    ``lock`` is the acquired ``SpoolLock`` of the spool, or None to run without one.
    The forwarder releases it when it stops.
    """

    def __init__(self, settings, reader, checkpoint_file, notifier, clock=time.monotonic,
                 sleep=time.sleep, lock=None):
        self.settings = settings
        self.reader = reader
        self.checkpoint_file = checkpoint_file
        self.lock = lock
        self.notifier = notifier
        self.clock = clock
        self.sleep = sleep
        self.saved = checkpoint_file.load()   # the checkpoint on disk, None for none yet
        checkpoint_file.reserve()   # the space of the next save, taken while there is some
        self._spool_id, self._spool_id_first_seq = stats.load_identity(settings.spool_dir)
        self.replaced_checkpoint = None       # a loaded checkpoint of a replaced spool
        if self._belongs_to_replaced_spool(self.saved):
            self.replaced_checkpoint, self.saved = self.saved, None
        self.acknowledged = self.saved        # may be ahead of ``saved`` until the next save
        self.window = InflightWindow(settings.inflight)
        self.cursor = SpoolCursor(reader, self._position(self.acknowledged), SPOOL_POLL_S, clock)
        self.session = MqttSession(settings, self, clock)
        self.outage = OutageLog(settings.broker, clock)
        self.topics = TopicBuilder(settings.topic_prefix)
        self.retained = RetainedAlarms()
        self._republish_due = False   # set on connect: publish the retained alarm state
        self._republished = {}        # mid -> Message republished on this connection
        self.hold_back = HoldBack(single=settings.protocol == "5")
        self.rate_limited = RateLimitedLog(logger, clock=clock)
        self.stop_requested = False
        self.stop_reason = ""
        self.exit_status = 0
        self.delivered = 0            # records the broker acknowledged since start
        self.skipped = SkippedLines(reader)
        self.sequence = SequenceCheck(reader, self.saved.seq if self.saved else None,
                                      self.saved.stamp if self.saved else None)
        self._ever_connected = False
        self._last_save = clock()
        self._last_delete = clock()
        self._last_lock_check = clock()
        self._segments_to_delete = False
        self._last_status = None
        self._failure_kind = None     # kind of the newest Failure, for the status line

    def request_stop(self, reason="stop requested"):
        """Ask the loop to stop at the end of its current turn (safe in a signal handler)."""
        self.stop_reason = reason
        self.stop_requested = True

    def run(self):
        """Forward until ``request_stop``; return the exit status.

        The status is 0, or ``EX_CONFIG`` when another forwarder took the spool's lock.
        """
        settings = self.settings
        logger.info(
            "forwarding spool %s to MQTT broker %s as client %s (MQTT %s, %s, %s): topics "
            "%s/<site>/<device>/telemetry and .../alarms, QoS 1, window %d records, %s",
            settings.spool_dir, settings.broker, settings.client_id, settings.protocol,
            "TLS" if settings.tls_context else "no TLS",
            f"user {settings.username}" if settings.username else "no user name",
            settings.topic_prefix, settings.inflight, self._describe_start(),
            extra={"BESSAI_EVENT": "startup"})
        if settings.protocol != "5":
            # Mosquitto 2.0.11 with its default max_queued_messages acknowledges such a
            # publish over 3.1.1 (tests/forward/test_publish_rejected.py checks it).
            logger.warning("MQTT 3.1.1 cannot report a rejected publish: a broker that "
                           "acknowledges a publish it rejects (ACL, message_size_limit) makes "
                           "the record count as delivered, and the record is lost. Mosquitto "
                           "does so in its default configuration. Set MQTT_PROTOCOL=5, the "
                           "default, if broker %s supports it: the broker then reports the "
                           "rejection (reason code 135 for a topic its ACL denies) and the "
                           "record stays in the spool", settings.broker,
                           extra={"BESSAI_EVENT": "startup"})
        if self.replaced_checkpoint is not None:
            self._log_replaced_spool(self.replaced_checkpoint)
        segments = self._list_segments()
        if segments:
            # A checkpoint without a spool id (saved by an older version) shows a reset
            # spool only by its segment number. Check before deleting, because deleting
            # "delivered" segments would then delete undelivered ones.
            self._restart_if_spool_reset(segments)
        if self.saved is not None:
            self._delete_delivered_segments()
        self.notifier.ready(self._status_text(segments))
        try:
            while not self.stop_requested:
                self.step()
        finally:
            self._stop()
        return self.exit_status

    def step(self):
        """Run one turn of the loop; it waits at most about ``IDLE_WAIT_S``."""
        self.notifier.watchdog()
        session = self.session
        if session.state is State.DISCONNECTED:
            wait = session.retry_in()
            if wait > 0:
                self.sleep(min(wait, IDLE_WAIT_S))
            else:
                session.connect()
        elif session.state is State.CONNECTING:
            session.loop(IDLE_WAIT_S)
        else:
            if self._republish_due:
                self._republish_alarm_state()
            self._publish_available()
            busy = self.window.has_room() and not self.cursor.idle
            session.loop(0.0 if busy else IDLE_WAIT_S)
            self._take_acknowledged()
            self._drop_if_rejected()
            self._check_acknowledgement_wait()
            if session.connected and not len(self.window) and self.cursor.caught_up:
                self.outage.caught_up(settled=session.settled)
        self._save_if_due()
        self._delete_if_due()
        self._check_lock_if_due()
        self._report_status()

    # Listener of MqttSession: called from inside session.connect(), loop() or publish().

    def on_connected(self):
        self.outage.connected()
        if not self._ever_connected:
            self._ever_connected = True
            logger.info("connected to MQTT broker %s", self.settings.broker)
        else:
            logger.debug("connected to MQTT broker %s again", self.settings.broker)
        self._republish_due = True
        self._last_status = None

    def on_failure(self, failure):
        rejection = self.hold_back.take_pending()
        if rejection is not None and failure.kind != "publish_rejected":
            # The broker closed the connection after its PUBACK rejected a record.
            failure = self._hold(rejection)
        # Records in flight may or may not have reached the broker: send them again.
        self.hold_back.single = self.hold_back.single or len(self.window) > 0
        self.window.clear()
        self.retained.rewind()
        self._republish_due = False
        self._republished.clear()
        self.cursor.rewind(self._position(self.acknowledged))
        acknowledged = self.acknowledged
        self.sequence.rewind(acknowledged.seq if acknowledged else None,
                             acknowledged.stamp if acknowledged else None)
        self._last_status = None
        if failure.kind == "publish_rejected":
            # The broker is reachable, so this is no outage: the ERROR line is the report.
            self.outage.held_back()
            self.rate_limited.log("publish_rejected", logging.ERROR,
                                  "%s; the record and those after it stay in the spool, "
                                  "next attempt in %.1f s", failure.message,
                                  self.session.retry_in(),
                                  extra={"BESSAI_EVENT": "publish_rejected"})
            return
        self._failure_kind = failure.kind
        self.outage.failed(failure, self.session.retry_in())

    def on_acknowledged(self, mid):
        if not self.window.acknowledge(mid):
            self._republished.pop(mid, None)

    def on_rejected(self, mid, code, reason):
        """Note a PUBACK with a failure reason code; ``_drop_if_rejected`` acts on it."""
        rejected = self.window.reject(mid)
        if rejected is None:
            self._log_rejected_republish(self._republished.pop(mid, None), code, reason)
            return
        self.hold_back.note(rejected, code, reason)

    # Publishing and acknowledgements.

    def _republish_alarm_state(self):
        """Publish the newest acknowledged alarm message of each device again, retained.

        They go out before any record of this connection, so the records resent after
        them can only bring a newer state. Their PUBACKs are not tracked: a connection
        lost before them republishes on the next one.
        """
        self._republish_due = False
        messages = self.retained.messages()
        limit = self.session.max_packet_size
        for message in messages:
            if limit is not None and publish_packet_size(message.topic, message.payload) > limit:
                self._log_too_large_republish(message, limit)
                continue
            mid = self.session.publish(message.topic, message.payload, retain=True)
            if not self.session.connected:
                return
            self._republished[mid] = message
        if messages:
            logger.debug("published the retained alarm state of %d devices again", len(messages))

    def _publish_available(self):
        while self.window.has_room() and self.session.connected:
            if self.hold_back.one_at_a_time() and len(self.window):
                return   # one record in flight until the broker acknowledges it
            try:
                item = self.cursor.next()
            except OSError as error:   # SpoolError is an OSError too
                if error.errno == errno.EACCES:
                    self._stop_unreadable(error)
                    return
                self.rate_limited.log("read", logging.WARNING,
                                      "cannot read the spool: %s; trying again", error)
                return
            if item is None:
                return
            self._publish_line(*item)

    def _stop_unreadable(self, error):
        """Stop on a spool file this user may not read: waiting would not fix its owner."""
        logger.error("%s; stopping, since the records from there on cannot be forwarded",
                     error)
        self.exit_status = EX_CONFIG
        self.request_stop("a spool segment cannot be read")

    def _publish_line(self, position, line):
        try:
            record = parse_record(line)
        except BadRecord as error:
            self.skipped.passed(position, damaged=True)
            self.sequence.damaged_line()
            self.rate_limited.log("bad_line", logging.ERROR,
                                  "spool segment %d: skipping the line that ends at offset %d: %s",
                                  position[0], position[1], error)
            self.window.add(position, None, ())
            return
        self.skipped.passed(position)
        seq = record["seq"]
        if self.sequence.check(seq, position, stamp_of(record)):
            # Delivered before: it moves the checkpoint on without a publish, which
            # keeps the newest delivered record as its seq.
            mark = self.sequence.mark
            self.window.add(position, mark.seq, (), stamp=mark)
            return
        mids = []
        messages = messages_for(record, line, self.topics, self.retained.latest_alarms)
        messages = self.hold_back.messages_to_send(position, messages)
        if self._hold_if_too_large(position, seq, messages):
            return
        for message in messages:
            mids.append(self.session.publish(message.topic, message.payload, message.retain))
            if not self.session.connected:
                return  # lost while sending: on_failure rewound the cursor before this record
        self.window.add(position, seq, mids, self.clock(), messages, self.sequence.mark)
        for message in messages:
            if message.retain:
                self.retained.published(position, message)

    def _hold_if_too_large(self, position, seq, messages):
        """Hold back a record with a message over the broker's maximum packet size.

        Sending it would make the broker close the connection without a PUBACK, on every
        attempt, and the log would show only lost connections.
        """
        limit = self.session.max_packet_size
        if limit is None:
            return False
        oversized = [(publish_packet_size(message.topic, message.payload), message.topic)
                     for message in messages]
        oversized = [(size, topic) for size, topic in oversized if size > limit]
        if not oversized:
            return False
        size, topic = oversized[0]
        rejection = Rejection(seq=seq, position=position, topic=topic, size=size,
                              code=PACKET_TOO_LARGE, reason="Packet too large", limit=limit)
        self.hold_back.note_unsent(rejection, [message.topic for message in messages])
        self._drop_if_rejected()
        return True

    def _take_acknowledged(self):
        acknowledged_run = self.window.take_acknowledged()
        if acknowledged_run is None:
            return
        count, (segment, offset), seq, stamp = acknowledged_run
        if seq is None and self.acknowledged is not None:
            stamp = self.acknowledged.stamp   # the run ended on a skipped line
            seq = self.acknowledged.seq
        boot_id, mono_s = (stamp.boot_id, stamp.mono_s) if stamp is not None else (None, None)
        self.acknowledged = Checkpoint(segment, offset, seq, self._spool_id, boot_id, mono_s)
        if seq is not None:
            self.sequence.acknowledged(seq)
        self.retained.acknowledged((segment, offset))
        self.delivered += count
        self.outage.delivered(count)
        rejections = self.hold_back.rejections
        accepted = self.hold_back.acknowledged((segment, offset))
        if accepted is not None:
            logger.info("broker %s accepted record %s on topic %s, which it had rejected "
                        "%d %s: forwarding goes on", self.settings.broker,
                        accepted.seq if accepted.seq is not None else "-", accepted.topic,
                        rejections, "time" if rejections == 1 else "times",
                        extra={"BESSAI_EVENT": "publish_accepted"})
            self.rate_limited.forget("publish_rejected")
            self._last_status = None

    def _drop_if_rejected(self):
        """Drop the connection after a rejected publish; the next attempt waits for the backoff.

        Reconnecting rewinds to the last acknowledged record, which is the rejected one
        or an older one still waiting for its PUBACK. Records after it that the broker
        took on this connection are sent again after it, in spool order.
        """
        rejection = self.hold_back.take_pending()
        if rejection is None or not self.session.connected:
            return
        self.session.abandon(self._hold(rejection))

    def _hold(self, rejection):
        """Send ``rejection``'s record alone from now on; return the Failure that reports it."""
        self.hold_back.hold(rejection)
        return Failure("publish_rejected", describe(rejection, self.settings.broker,
                                                    self.settings.username))

    def _log_rejected_republish(self, message, code, reason):
        """Report a rejected retained alarm message that was published again after connecting.

        It had been acknowledged before, so its record is delivered: nothing is sent again
        for it before the next connection.
        """
        topic = message.topic if message is not None else "-"
        self.rate_limited.log("republish_rejected", logging.ERROR,
                              "broker %s rejected the retained alarm message on topic %s, "
                              "which it had accepted before and was sent again after "
                              "connecting: PUBACK reason code %d %s; the broker may hold no "
                              "alarm state for this device until it accepts a newer one; "
                              "check the broker's ACL and log", self.settings.broker, topic,
                              code, reason)

    def _log_too_large_republish(self, message, limit):
        """Report a retained alarm message that exceeds a maximum packet size lowered since."""
        self.rate_limited.log("republish_too_large", logging.ERROR,
                              "did not publish the retained alarm message on topic %s again "
                              "after connecting: it needs a PUBLISH packet of %d bytes, and "
                              "broker %s accepts at most %d (its maximum packet size); the "
                              "broker may hold no alarm state for this device until a newer "
                              "one fits; raise the broker's max_packet_size", message.topic,
                              publish_packet_size(message.topic, message.payload),
                              self.settings.broker, limit)

    def _check_acknowledgement_wait(self):
        """Drop a connection whose oldest message waits too long for its PUBACK.

        The socket may be healthy (the broker replies to PINGREQ) while the broker no longer
        acknowledges publishes; without this the full window would stall for good.
        """
        oldest = self.window.oldest_unacknowledged()
        if oldest is None or not self.session.connected:
            return
        seq, sent_at = oldest
        waited = self.clock() - sent_at
        if waited <= self.settings.ack_timeout_s:
            return
        record = f"record {seq}" if seq is not None else "a record"
        self.session.abandon(Failure("no_puback", (
            f"broker {self.settings.broker} sent no PUBACK for {record} within "
            f"{waited:.0f} s (MQTT_ACK_TIMEOUT_S={self.settings.ack_timeout_s:g}); dropped "
            f"the connection, the {len(self.window)} records in flight are sent again "
            f"after reconnecting; check the broker's log and load")))

    # Checkpoint and segment deletion.

    def _save_if_due(self, force=False):
        window = self.window
        if not window.unsaved:
            return
        now = self.clock()
        # Saving costs two fsyncs, so it waits until the window is full (a backlog
        # drains), the interval has passed (records trickle in) or the loop stops.
        due = (force or not window.has_room()
               or now - self._last_save >= self.settings.checkpoint_interval_s)
        if not due:
            return
        try:
            in_place = self.checkpoint_file.save(self.acknowledged)
        except OSError as error:
            self.rate_limited.log("checkpoint", logging.WARNING,
                                  "cannot save the checkpoint %s: %s; publishing pauses "
                                  "while the window is full", self.checkpoint_file.path, error,
                                  extra={"BESSAI_EVENT": "checkpoint"})
            return
        self.rate_limited.forget("checkpoint")
        if in_place:
            self.rate_limited.log("checkpoint_in_place", logging.WARNING,
                                  "the file system of %s is full: saved the checkpoint over "
                                  "the old one in place, so that delivered segments can be "
                                  "deleted; free space there (df -h %s)",
                                  self.checkpoint_file.path, self.checkpoint_file.directory,
                                  extra={"BESSAI_EVENT": "checkpoint"})
        self.saved = self.acknowledged
        window.mark_saved()
        self._last_save = now
        self._segments_to_delete = True

    def _delete_if_due(self):
        if self._segments_to_delete and self.clock() - self._last_delete >= DELETE_INTERVAL_S:
            self._delete_delivered_segments()

    def _list_segments(self):
        """Return the spool's segments, or None (logged) when the directory cannot be listed."""
        try:
            return self.reader.segments()
        except SpoolError as error:
            self.rate_limited.log("segments", logging.WARNING, "cannot list the spool: %s", error)
            return None

    def _delete_delivered_segments(self):
        """Delete the sealed segments that the saved checkpoint has wholly passed.

        That is every sealed segment before the checkpoint's, and the checkpoint's own
        once it is sealed and the checkpoint is at its end. Reading from a checkpoint
        whose segment is gone goes on with the next segment.
        """
        self._segments_to_delete = False
        self._last_delete = self.clock()
        segments = self._list_segments()
        if not segments or self.saved is None:
            return
        if segments[-1].first_seq < self.saved.segment:
            return  # the spool was reset: _restart_if_spool_reset starts over
        for segment in segments:
            passed = segment.first_seq < self.saved.segment or (
                segment.first_seq == self.saved.segment and self.saved.offset >= segment.size)
            if not segment.sealed or not passed:
                break
            try:
                self.reader.delete_sealed(segment)
            except (SpoolError, OSError) as error:
                self.rate_limited.log("delete", logging.WARNING,
                                      "cannot delete delivered spool segment %s: %s",
                                      segment.path.name, error)
                return

    # The spool lock.

    def _check_lock_if_due(self):
        """Lock the lock file again when it was deleted; stop when another forwarder holds it."""
        if self.lock is None or self.clock() - self._last_lock_check < LOCK_CHECK_INTERVAL_S:
            return
        self._last_lock_check = self.clock()
        if not self.lock.file_replaced():
            return
        try:
            locked = self.lock.take_again()
        except OSError as error:
            self.rate_limited.log("lock", logging.WARNING,
                                  "the lock file %s was deleted and cannot be created again: "
                                  "%s; trying again in %.0f s", self.lock.path, error,
                                  LOCK_CHECK_INTERVAL_S)
            return
        self.rate_limited.forget("lock")
        if locked:
            logger.warning("the lock file %s was deleted or replaced while the forwarder ran: "
                           "locked the new one", self.lock.path)
            return
        logger.error("the lock file %s was deleted or replaced, and another bessai forward "
                     "process holds the new one: stopping, so that one forwarder ships spool %s",
                     self.lock.path, self.settings.spool_dir)
        self.exit_status = EX_CONFIG
        self.request_stop("another bessai forward process locked the spool")

    # Status and stop.

    def _report_status(self):
        now = self.clock()
        if self._last_status is not None and now - self._last_status < STATUS_INTERVAL_S:
            return
        self._last_status = now
        self._restart_if_spool_replaced()
        segments = self._list_segments()
        if segments and self.cursor.caught_up:
            self._restart_if_spool_reset(segments)
        self.notifier.status(self._status_text(segments))

    def _belongs_to_replaced_spool(self, checkpoint):
        """Return True when ``checkpoint`` was saved for another spool than SPOOL_DIR's.

        The writer gives a spool a new id when its state file is missing. A spool whose
        numbering under the new id starts after the checkpoint's record carries on the
        same numbering (only its state file was lost), so its checkpoint still holds.
        """
        if checkpoint is None or checkpoint.spool_id is None or self._spool_id is None:
            return False
        return (checkpoint.spool_id != self._spool_id
                and self._spool_id_first_seq <= (checkpoint.seq or 0))

    def _restart_if_spool_replaced(self):
        """Start again from the oldest record when the spool's id changed under the checkpoint."""
        spool_id, first_seq = stats.load_identity(self.settings.spool_dir)
        if spool_id is None or spool_id == self._spool_id:
            return
        self._spool_id, self._spool_id_first_seq = spool_id, first_seq
        checkpoint = self.acknowledged
        if not self._belongs_to_replaced_spool(checkpoint):
            return
        self._log_replaced_spool(checkpoint)
        self._start_again()

    def _log_replaced_spool(self, checkpoint):
        logger.warning("the checkpoint after record %s belongs to spool id %s, but spool %s now "
                       "has id %s and numbers its records from %d: the spool was emptied or "
                       "replaced; starting again from its oldest record",
                       checkpoint.seq if checkpoint.seq is not None else "-",
                       checkpoint.spool_id, self.settings.spool_dir, self._spool_id,
                       self._spool_id_first_seq, extra={"BESSAI_EVENT": "sequence_reset"})

    def _restart_if_spool_reset(self, segments):
        """Start again from the oldest record when the checkpoint lies beyond the spool.

        The newest segment is the one the writer appends to, so it always starts at or
        after the checkpoint's segment, unless the spool was emptied and numbering
        started again at 1. Then the reader would skip every new segment as already
        delivered, and deleting "delivered" segments would delete undelivered ones.
        """
        position = self.cursor.position
        if position is None or segments[-1].first_seq >= position[0]:
            return
        logger.warning("the spool's newest segment starts at record %d, before the checkpoint's "
                       "segment %d: the spool was emptied or replaced; starting again from its "
                       "oldest record", segments[-1].first_seq, position[0],
                       extra={"BESSAI_EVENT": "sequence_reset"})
        self._start_again()

    def _start_again(self):
        """Forget the checkpoint and what is in flight, and read from the oldest record."""
        self.saved = self.acknowledged = None
        self.hold_back.forget()
        self.window.clear()
        self.window.mark_saved()
        self.retained.rewind()
        self._segments_to_delete = False
        self.sequence.start_again()
        self.cursor.rewind(None)

    def _status_text(self, segments=None):
        return status_text(self.settings, delivered=self.delivered,
                           acknowledged=self.acknowledged, rejection=self.hold_back.rejection,
                           connected=self.session.connected, outage=self.outage.active,
                           failure_kind=self._failure_kind, retry_in=self.session.retry_in(),
                           segments=segments, waiting_for_repair=self.reader.waiting_for_repair)

    def _describe_start(self):
        if self.replaced_checkpoint is not None:
            return ("starting at the oldest record in the spool (the checkpoint belongs to a "
                    "replaced spool)")
        if self.saved is None:
            return "starting at the oldest record in the spool (no checkpoint yet)"
        return f"resuming after record {self.saved.seq} (checkpoint {self.checkpoint_file.path})"

    def _stop(self):
        logger.info("stopping: %s", self.stop_reason or "loop ended")
        self.notifier.stopping()
        deadline = self.clock() + STOP_GRACE_S
        while self.session.connected and len(self.window) and self.clock() < deadline:
            self.session.loop(0.1)
            self._take_acknowledged()
        self._save_if_due(force=True)
        if self._segments_to_delete:
            self._delete_delivered_segments()
        self.session.close()
        self.cursor.close()
        self.checkpoint_file.close()
        if self.lock is not None:
            self.lock.release()   # last: a forwarder started now finds the checkpoint saved
        seq = self.saved.seq if self.saved else None
        if seq is None:
            checkpoint = "no checkpoint yet"
        else:
            checkpoint = f"checkpoint after record {seq}"
        skipped = self.skipped.count
        if skipped:
            checkpoint = (f"{skipped} damaged spool {'line' if skipped == 1 else 'lines'} "
                          f"skipped, {checkpoint}")
        logger.info("forwarder stopped: %d records delivered since start, %s", self.delivered,
                    checkpoint, extra={"BESSAI_EVENT": "shutdown"})

    @staticmethod
    def _position(checkpoint):
        return checkpoint.position if checkpoint is not None else None


