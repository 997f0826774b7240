"""The retained alarm message of each device, kept to publish it again after a reconnect.

The broker keeps the newest alarm message of each device as a retained message. A
broker that restarts without persistence loses it, and receivers that subscribe later
would see no alarm state until the next alarm message. So after every connection the
forwarder publishes again, for each device, the newest alarm message that the broker
had acknowledged: the same topic and payload, ``seq`` included, so receivers that
remove duplicates by ``seq`` see a duplicate.

Only acknowledged messages count. Messages published but not acknowledged when a
connection ends are sent again, in spool order, after the republished ones, so the
retained state never goes back to an older one.

``latest_alarms`` gives the active alarms of the newest message published on a topic,
which decides whether a record without alarm changes still needs an alarm message
(``messages.messages_for``). After a lost connection it falls back to the acknowledged
message, because that is what the next connection republishes, and the records read
again after it then publish whatever differs from it.

The forwarder keeps these messages in memory only. A restarted forwarder starts with
no published state, so the first record of each device that it forwards publishes the
device's alarm state again.
"""

import collections


class RetainedAlarms:
    """Newest acknowledged alarm message per topic, and the ones still in flight."""

    def __init__(self):
        self._acknowledged = {}                # topic -> Message
        self._in_flight = collections.deque()  # (spool position, Message), in spool order
        self._latest_alarms = {}               # topic -> active alarms of the newest Message

    def published(self, position, message):
        """Note a retained message of the record that ends at spool ``position``."""
        self._in_flight.append((position, message))
        self._latest_alarms[message.topic] = message.active

    def acknowledged(self, position):
        """Note that the records up to spool ``position`` (inclusive) are acknowledged."""
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] <= position:
            message = in_flight.popleft()[1]
            self._acknowledged[message.topic] = message

    def rewind(self):
        """Forget the messages in flight: the connection that carried them is gone."""
        self._in_flight.clear()
        self._latest_alarms = {topic: message.active
                               for topic, message in self._acknowledged.items()}

    def latest_alarms(self, topic):
        """Return the active alarms of the newest message on ``topic``, or None for none.

        That is the newest message published since the last lost connection, else the
        newest acknowledged one.
        """
        return self._latest_alarms.get(topic)

    def messages(self):
        """Return the newest acknowledged message of each topic."""
        return list(self._acknowledged.values())
