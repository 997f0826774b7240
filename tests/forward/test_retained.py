"""RetainedAlarms: only acknowledged alarm messages are published again, newest per topic,
and the alarm list that a record's alarm state is compared with.
"""

import pytest

from bessai_edge.forward.messages import Message
from bessai_edge.forward.retained import RetainedAlarms


def alarm(device, seq):
    return Message(f"bessai/SITE/{device}/alarms", f"seq {seq}".encode(), retain=True,
                   active=(f"seq {seq}",))


def retained_after(steps):
    """Return a RetainedAlarms after ``steps``, in the format that CASES describes."""
    retained = RetainedAlarms()
    for step in steps:
        if step[0] == "publish":
            retained.published((1, step[2]), alarm(step[1], step[2]))
        elif step[0] == "ack":
            retained.acknowledged((1, step[1]))
        else:
            retained.rewind()
    return retained


# (steps, expected payloads of messages()); a step is ("publish", device, seq),
# ("ack", seq) for the records up to that seq, or ("rewind",). Record seq N ends at (1, N).
CASES = [
    pytest.param([], [], id="nothing-yet"),
    pytest.param([("publish", "inverter", 5)], [], id="published-not-acknowledged"),
    pytest.param([("publish", "inverter", 5), ("ack", 5)], [b"seq 5"], id="acknowledged"),
    pytest.param([("publish", "inverter", 5), ("publish", "inverter", 9), ("ack", 7)],
                 [b"seq 5"], id="newer-still-in-flight"),
    pytest.param([("publish", "inverter", 5), ("publish", "inverter", 9), ("ack", 9)],
                 [b"seq 9"], id="newest-per-topic"),
    pytest.param([("publish", "inverter", 5), ("publish", "battery", 6), ("ack", 6)],
                 [b"seq 5", b"seq 6"], id="one-per-device"),
    pytest.param([("publish", "inverter", 5), ("rewind",), ("ack", 5)], [],
                 id="rewound-before-ack"),
    pytest.param([("publish", "inverter", 5), ("ack", 5), ("publish", "inverter", 9),
                  ("rewind",), ("ack", 9)], [b"seq 5"], id="rewind-keeps-acknowledged"),
]


@pytest.mark.parametrize("steps, expected", CASES)
def test_retained_alarms_cases(steps, expected):
    retained = retained_after(steps)
    messages = retained.messages()
    assert sorted(message.payload for message in messages) == expected
    assert all(message.retain for message in messages)


# (steps as above, expected latest_alarms of the inverter's topic)
LATEST_CASES = [
    pytest.param([], None, id="nothing-yet"),
    pytest.param([("publish", "inverter", 5)], ("seq 5",), id="in-flight-counts"),
    pytest.param([("publish", "inverter", 5), ("publish", "battery", 6)], ("seq 5",),
                 id="other-device-ignored"),
    pytest.param([("publish", "inverter", 5), ("rewind",)], None, id="rewound-to-nothing"),
    pytest.param([("publish", "inverter", 5), ("ack", 5), ("publish", "inverter", 9)],
                 ("seq 9",), id="newest-published"),
    # The records read again after a lost connection compare with what the next
    # connection republishes: the acknowledged message.
    pytest.param([("publish", "inverter", 5), ("ack", 5), ("publish", "inverter", 9),
                  ("rewind",)], ("seq 5",), id="rewound-to-acknowledged"),
]


@pytest.mark.parametrize("steps, expected", LATEST_CASES)
def test_retained_alarms_latest(steps, expected):
    retained = retained_after(steps)
    assert retained.latest_alarms("bessai/SITE/inverter/alarms") == expected
