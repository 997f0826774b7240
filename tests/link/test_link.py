"""DeviceLink over real Modbus TCP on loopback: against ``bessai simulate`` with faults, and
against crafted servers for replies the simulator never sends."""

import logging
import socket
import time

import pytest

from bessai_edge.backoff import BackoffPolicy
from bessai_edge.errors import (
    ConnectionLost,
    ConnectionRefused,
    DeviceException,
    HostUnreachable,
    LinkError,
    LinkTimeout,
    MismatchedReply,
    ShortReply,
)
from bessai_edge.link import DeviceLink
from tests.conftest import CAPTURES, free_tcp_port
from tests.simulator.helpers import (
    CraftedServer,
    registers_pdu,
    reply,
    request_fields,
    simulator,  # noqa: F401 (fixture)
)

LUNA = str(CAPTURES / "huawei_luna2000_37760_charging_huawei_solar1403.json")
UNIT = 3
SOC_WORDS = [540, 0]             # 37760-37761 in the capture
POWER_WORDS = [0, 1297]          # 37765-37766 in the capture
FAST_BACKOFF = BackoffPolicy(initial_s=0.05, maximum_s=0.2, jitter=0.0)


def make_link(port, **options):
    options.setdefault("request_timeout_s", 1.0)
    options.setdefault("connect_timeout_s", 1.0)
    options.setdefault("backoff", FAST_BACKOFF)
    return DeviceLink("127.0.0.1", port, unit_id=UNIT, **options)


def wait_for_next_attempt(link):
    delay = link.next_attempt_monotonic - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_link_reads_capture_words(simulator):
    device = simulator("--capture", LUNA)
    with make_link(device.port) as link:
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert link.read(UNIT, 4 - 1, 37765, 2) == POWER_WORDS
        assert link.requests == 2
        assert link.connects == 1
        assert sum(link.counters.values()) == 0


def test_link_device_exception_keeps_connection(simulator):
    device = simulator("--capture", LUNA, "--busy-every", "5", "--exception", "37770-37771=4")
    with make_link(device.port) as link:
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        with pytest.raises(DeviceException) as failure:
            link.read(UNIT, "holding", 37768, 4)
        with pytest.raises(DeviceException) as illegal:
            link.read(UNIT, "holding", 37750, 4)
        with pytest.raises(DeviceException) as wrong_function:
            link.read(UNIT, "input", 37760, 2)
        # Request 5 gets exception 6 (busy); the link tries once more, and request 6 is answered.
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert link.requests == 6
        assert failure.value.code == 4
        assert illegal.value.code == 2
        assert wrong_function.value.code == 1
        assert link.counters == {"exception_6": 1, "exception_4": 1, "exception_2": 1,
                                 "exception_1": 1}
        assert link.connected
        assert link.connects == 1


def test_link_busy_twice_raises(simulator):
    device = simulator("--capture", LUNA, "--busy-every", "1")
    with make_link(device.port) as link:
        with pytest.raises(DeviceException) as busy:
            link.read(UNIT, "holding", 37760, 2)
        assert busy.value.code == 6
        assert link.requests == 2  # the request and its one retry
        assert link.counters == {"exception_6": 2}
        assert link.connected


def test_link_unknown_unit_gets_exception_11(simulator):
    device = simulator("--capture", LUNA)
    with make_link(device.port) as link:
        with pytest.raises(DeviceException) as error:
            link.read(UNIT + 1, "holding", 37760, 2)
        assert error.value.code == 11
        assert error.value.kind == "exception_11"


def test_link_refused_counts_and_backs_off():
    port = free_tcp_port()
    link = make_link(port)
    with pytest.raises(ConnectionRefused) as error:
        link.read(UNIT, "holding", 37760, 2)
    assert error.value.kind == "refused"
    assert link.counters == {"refused": 1}
    assert link.connects == 1
    assert link.retry_delay_s == pytest.approx(0.05)
    assert link.next_attempt_monotonic > time.monotonic() - 1
    # Before the next attempt is due, a read raises at once: no connect, no count.
    link.next_attempt_monotonic = time.monotonic() + 60
    with pytest.raises(ConnectionLost):
        link.read(UNIT, "holding", 37760, 2)
    assert link.connects == 1
    assert link.counters == {"refused": 1}
    assert link.requests == 0


def test_link_backoff_grows_to_cap_then_recovers(simulator):
    port = free_tcp_port()
    link = make_link(port)
    delays = []
    for _ in range(4):
        wait_for_next_attempt(link)
        with pytest.raises(ConnectionRefused):
            link.read(UNIT, "holding", 37760, 2)
        delays.append(link.retry_delay_s)
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.2])
    assert link.counters == {"refused": 4}

    simulator("--capture", LUNA, port=port)
    wait_for_next_attempt(link)
    assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
    assert link.connects == 5
    # After a reply, the next outage starts again at the first delay.
    link.close()
    assert link.read(UNIT, "holding", 37765, 2) == POWER_WORDS
    assert link.connects == 6
    link.close()


def test_link_logs_down_and_restored(simulator, caplog):
    port = free_tcp_port()
    link = make_link(port)
    caplog.set_level(logging.DEBUG, logger="bessai_edge.link")
    for _ in range(3):
        wait_for_next_attempt(link)
        with pytest.raises(ConnectionRefused):
            link.read(UNIT, "holding", 37760, 2)
    simulator("--capture", LUNA, port=port)
    wait_for_next_attempt(link)
    link.read(UNIT, "holding", 37760, 2)
    link.close()

    endpoint = f"127.0.0.1:{port}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1, "repeated failures of one kind are logged once at WARNING"
    assert endpoint in warnings[0]
    assert "unit id 3" in warnings[0]
    assert "refused" in warnings[0]
    assert len(infos) == 1
    assert "restored" in infos[0]
    assert endpoint in infos[0]
    assert "3 failed attempts" in infos[0]


def test_link_disconnect_mid_read_reconnects(simulator):
    device = simulator("--capture", LUNA, "--disconnect-every", "3")
    with make_link(device.port) as link:
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert link.read(UNIT, "holding", 37765, 2) == POWER_WORDS
        with pytest.raises(ConnectionLost):
            link.read(UNIT, "holding", 37760, 2)
        assert link.counters == {"disconnected": 1}
        assert not link.connected
        # The connection had replied, so the reconnect is due at once.
        assert link.retry_delay_s == 0
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert link.connects == 2


def test_link_silent_device_costs_one_timeout_per_request(simulator):
    device = simulator("--capture", LUNA, "--silent")
    timeout_s = 0.2
    with make_link(device.port, request_timeout_s=timeout_s) as link:
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
        # A connection that never replied stays open for one more request.
        assert link.connected
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
        # After the second timeout it is dropped and the device backs off.
        assert not link.connected
        assert link.retry_delay_s == pytest.approx(0.05)
        kinds = []
        durations = []
        for _ in range(3):
            wait_for_next_attempt(link)
            for _request in range(2):
                started = time.monotonic()
                with pytest.raises(LinkTimeout) as error:
                    link.read(UNIT, "holding", 37760, 2)
                durations.append(time.monotonic() - started)
                kinds.append(error.value.kind)
            assert not link.connected
        assert kinds == ["timeout"] * 6
        assert link.counters == {"timeout": 8}
        assert link.requests == 8
        assert link.connects == 4
        # Hang guard only: each request ends near its timeout, far below 10 timeouts.
        assert max(durations) < 10 * timeout_s


def test_link_reads_after_long_quiet_time(simulator):
    # The device ignores requests for 0.5 s after a connect; the link waits only 0.1 s.
    device = simulator("--capture", LUNA, "--quiet-after-accept", "0.5")
    with make_link(device.port, request_timeout_s=0.5, quiet_after_connect_s=0.1) as link:
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert link.connects == 1
        assert link.counters == {"timeout": 1}


def test_link_answered_connection_survives_timeouts_until_limit(simulator):
    # Replies 2-4 come 1 s after their request, served one after the other (at 1 s, 2 s,
    # 3 s); the requests time out at 0.4 s, 0.8 s and 1.2 s, so no late reply arrives
    # near a deadline.
    device = simulator("--capture", LUNA, "--latency", "1.0", "--latency-requests", "2-4")
    with make_link(device.port, request_timeout_s=0.4, timeouts_before_reconnect=3) as link:
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        for _ in range(2):
            with pytest.raises(LinkTimeout):
                link.read(UNIT, "holding", 37760, 2)
            assert link.connected
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
        assert not link.connected
        assert link.counters["timeout"] == 3
        assert link.counters["mismatched_reply"] == 1  # reply 2, read during request 4


@pytest.mark.parametrize("pause_s", [0.0, 1.0], ids=["during_next_request", "between_requests"])
def test_link_late_reply_not_decoded_as_next(simulator, pause_s):
    # The reply to request 2 comes 1.5 s late, after its 1 s timeout. It reaches the
    # socket while request 3 waits (or before request 3 is sent) and must be dropped.
    device = simulator("--capture", LUNA, "--latency", "1.5", "--latency-requests", "2")
    with make_link(device.port, request_timeout_s=1.0) as link:
        assert link.read(UNIT, "holding", 37765, 2) == POWER_WORDS
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)
        assert link.connected
        time.sleep(pause_s)
        assert link.read(UNIT, "holding", 37765, 2) == POWER_WORDS
        assert link.counters == {"timeout": 1, "mismatched_reply": 1}
        assert link.unknown_id_frames == 0  # a late reply's id was used by request 2
        assert link.connects == 1


@pytest.mark.parametrize("delay_s", [0.0, 0.05], ids=["same_segment", "later_segment"])
def test_link_unsolicited_frame_not_decoded(delay_s):
    # After each reply the server sends a frame that carries the next request's
    # transaction id and other words. It arrives before that request is sent, so it
    # cannot be its reply, although its header matches the reply's.
    def respond(frame):
        transaction_id, unit_id, function_code, _, count = request_fields(frame)
        answer = reply(transaction_id, unit_id, registers_pdu(function_code, [7] * count))
        unsolicited = reply(transaction_id + 1, unit_id,
                            registers_pdu(function_code, [0xBAD] * count))
        return [(0, answer), (delay_s, unsolicited)]

    with CraftedServer(respond) as server:
        link = make_link(server.port)
        try:
            assert link.read(UNIT, "holding", 100, 2) == [7, 7]
            time.sleep(0.2)  # the unsolicited frame is in the socket now
            assert link.read(UNIT, "holding", 100, 2) == [7, 7]
            assert link.counters == {"mismatched_reply": 1}
            assert link.connects == 1
        finally:
            link.close()


@pytest.mark.parametrize("offset", [1, -1], ids=["next_id", "id_zero"])
def test_link_reply_with_unknown_id_named(offset):
    # The reply comes at once with an id that no request used (the next one, or 0 for
    # the first request): the timeout names it instead of claiming that nothing came.
    def respond(frame):
        transaction_id, unit_id, function_code, _, count = request_fields(frame)
        pdu = registers_pdu(function_code, [7] * count)
        return [(0, reply(transaction_id + offset, unit_id, pdu))]

    with CraftedServer(respond) as server:
        link = make_link(server.port, request_timeout_s=0.3)
        try:
            with pytest.raises(LinkTimeout) as raised:
                link.read(UNIT, "holding", 100, 2)
            assert "no reply with transaction id 1 before the request timeout" in str(raised.value)
            assert f"1 frame with transaction id {1 + offset}" in str(raised.value)
            assert "does not copy the request's transaction id" in str(raised.value)
            assert link.counters == {"timeout": 1, "mismatched_reply": 1}
            assert link.unknown_id_frames == 1
        finally:
            link.close()


def test_link_waits_quiet_time_after_connect(simulator):
    device = simulator("--capture", LUNA, "--quiet-after-accept", "0.5")
    waits = []

    def wait_until(deadline):
        waits.append(deadline)
        time.sleep(max(0.0, deadline - time.monotonic()))

    with make_link(device.port, quiet_after_connect_s=0.8, wait_until=wait_until) as link:
        assert link.read(UNIT, "holding", 37760, 2) == SOC_WORDS
        assert waits == [link.ready_monotonic]
        assert link.read(UNIT, "holding", 37765, 2) == POWER_WORDS
        assert len(waits) == 1, "the quiet time applies only after a connect"
    # Without the quiet time the device drops the first request.
    with make_link(device.port, request_timeout_s=0.2) as link:
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 37760, 2)


def test_link_spaces_requests(simulator):
    device = simulator("--capture", LUNA)
    waits = []

    def wait_until(deadline):
        waits.append(deadline)
        time.sleep(max(0.0, deadline - time.monotonic()))

    with make_link(device.port, min_request_interval_s=0.3, wait_until=wait_until) as link:
        start_of_first = time.monotonic()
        link.read(UNIT, "holding", 37760, 2)
        end_of_first = time.monotonic()
        link.read(UNIT, "holding", 37765, 2)
        assert len(waits) == 1
        # The second request waits until 0.3 s after the first one ended.
        assert start_of_first + 0.3 <= waits[0] <= end_of_first + 0.3


def test_link_connect_timeout_when_backlog_full():
    # A listener that never accepts, with its backlog full: the kernel drops further
    # SYNs, so connect() runs into its timeout as with a host that drops packets.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        link = make_link(port, connect_timeout_s=0.3)
        try:
            with pytest.raises(LinkTimeout) as error:
                link.connect()
            assert error.value.kind == "timeout"
            assert link.counters == {"timeout": 1}
        finally:
            for filler in fillers:
                filler.close()


def _answer(transform):
    """Build a CraftedServer responder that answers each read with transform(fields)."""
    def respond(frame):
        return transform(*request_fields(frame))
    return respond


CRAFTED_CASES = [
    # (case, reply chunks for (tid, unit, fc, address, count), expected error, counters)
    ("short_reply",
     lambda t, u, f, a, c: [(0, reply(t, u, registers_pdu(f, [1] * (c - 1))))],
     ShortReply, {"short_reply": 1}),
    ("too_many_registers",
     lambda t, u, f, a, c: [(0, reply(t, u, registers_pdu(f, [1] * (c + 1))))],
     MismatchedReply, {"mismatched_reply": 1}),
    ("wrong_unit_id",
     lambda t, u, f, a, c: [(0, reply(t, u + 1, registers_pdu(f, [1] * c)))],
     MismatchedReply, {"mismatched_reply": 1}),
    ("wrong_function",
     lambda t, u, f, a, c: [(0, reply(t, u, registers_pdu(f + 1, [1] * c)))],
     MismatchedReply, {"mismatched_reply": 1}),
    ("byte_count_disagrees_with_length",
     lambda t, u, f, a, c: [(0, reply(t, u, bytes((f, 2 * c + 2)) + b"\x00\x01" * c))],
     ShortReply, {"short_reply": 1}),
    ("exception_reply_too_long",
     lambda t, u, f, a, c: [(0, reply(t, u, bytes((f | 0x80, 2, 0))))],
     ShortReply, {"short_reply": 1}),
    ("invalid_protocol_id",
     lambda t, u, f, a, c: [(0, reply(t, u, registers_pdu(f, [1] * c), protocol_id=7))],
     MismatchedReply, {"mismatched_reply": 1}),
    ("trickled_reply_within_deadline",
     lambda t, u, f, a, c: [(0.05, bytes([b])) for b in reply(t, u, registers_pdu(f, [7] * c))],
     None, {}),
    ("trickled_reply_past_deadline",
     lambda t, u, f, a, c: [(0.15, bytes([b])) for b in reply(t, u, registers_pdu(f, [7] * c))],
     LinkTimeout, {"timeout": 1}),
    ("stale_frames_flood",
     lambda t, u, f, a, c: [(0, reply(t - 1, u, registers_pdu(f, [9] * c)))] * 20,
     LinkTimeout, {"timeout": 1, "mismatched_reply": 16}),
    ("stale_frame_then_answer",
     lambda t, u, f, a, c: [(0, reply(t - 1, u, registers_pdu(f, [9] * c))),
                            (0, reply(t, u, registers_pdu(f, [7] * c)))],
     None, {"mismatched_reply": 1}),
]


@pytest.mark.parametrize("transform,expected,counters", [case[1:] for case in CRAFTED_CASES],
                         ids=[case[0] for case in CRAFTED_CASES])
def test_link_classifies_crafted_reply(transform, expected, counters):
    with CraftedServer(_answer(transform)) as server:
        link = make_link(server.port, request_timeout_s=1.5)
        try:
            if expected is None:
                assert link.read(UNIT, "holding", 100, 2) == [7, 7]
            else:
                with pytest.raises(expected):
                    link.read(UNIT, "holding", 100, 2)
            assert link.counters == counters
            assert link.requests == 1
        finally:
            link.close()


@pytest.mark.parametrize("case, closed", [
    # The byte count and the MBAP length disagree: the next frame's start is unknown.
    ("byte_count_disagrees_with_length", True),
    # The frame is whole, only its content is wrong: the next frame starts after it.
    ("short_reply", False),
    ("wrong_function", False),
])
def test_link_malformed_reply_connection(case, closed):
    transform = next(entry[1] for entry in CRAFTED_CASES if entry[0] == case)
    with CraftedServer(_answer(transform)) as server:
        link = make_link(server.port)
        try:
            with pytest.raises((ShortReply, MismatchedReply)) as error:
                link.read(UNIT, "holding", 100, 2)
            assert link.connected is not closed
            assert str(error.value).endswith("; connection closed") is closed
        finally:
            link.close()


def test_link_mid_frame_timeout_drops_connection():
    def respond(frame):
        transaction_id, unit_id, function_code, _, count = request_fields(frame)
        whole = reply(transaction_id, unit_id, registers_pdu(function_code, [1] * count))
        return [(0, whole[:5])]

    with CraftedServer(respond) as server:
        link = make_link(server.port, request_timeout_s=0.3)
        with pytest.raises(LinkTimeout):
            link.read(UNIT, "holding", 100, 2)
        assert not link.connected


@pytest.mark.parametrize("arguments", [
    (UNIT, "coils", 0, 1),
    (256, "holding", 0, 1),
    (UNIT, "holding", 0, 0),
    (UNIT, "holding", 0, 126),
    (UNIT, "holding", 65535, 2),
    (UNIT, "holding", -1, 1),
])
def test_link_rejects_request_no_frame_can_carry(arguments):
    link = make_link(free_tcp_port())
    with pytest.raises(ValueError):
        link.read(*arguments)
    assert link.connects == 0


def test_host_unreachable_is_link_error_with_kind():
    # NOTE: no test resolves a bad name or routes to a dead network: both would send
    # traffic beyond loopback. The class is checked here; link.connect raises it.
    error = HostUnreachable("cannot resolve 'inverter.example'")
    assert isinstance(error, LinkError)
    assert isinstance(error, OSError)
    assert error.kind == "unreachable"
