"""A register rejected with exception 2 for a while is read again, over real Modbus TCP.

The first simulator rejects one address of the Huawei profile with exception 2. A second
one on the same port, started after it, serves the address again, as a device does
once it leaves the mode in which it rejected it. The last cycle is given a start time
``RELEARN_AFTER_S`` ahead of the clock, so the re-read interval passes at once.
"""

import time

from bessai_edge import poller as poller_module
from tests.conftest import free_tcp_port
from tests.loop.conftest import make_poller
from tests.loop.conftest import simulator
from tests.loop.test_run_faults import hole_target

PROFILE = "huawei_sun2000"


def poll_until_ok(poller, ahead_s=0.0, attempts=50):
    """Poll until the device state is ok (the link reconnects on its backoff)."""
    for _ in range(attempts):
        result = poller.poll(time.monotonic() + ahead_s)
        if result.state == "ok":
            return result
        time.sleep(0.1)
    raise AssertionError(f"device not ok after {attempts} polls: {result.error}")


def test_poller_reads_rejected_address_again(tmp_path, caplog):
    caplog.set_level("INFO", logger="bessai_edge.poller")
    address, field, _others = hole_target(PROFILE)
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, PROFILE)
    try:
        with simulator("--profile", PROFILE, "--exception", f"{address}=2", port=port):
            poller.prepare()
            first = poller.poll(time.monotonic())  # learns the rejection, reads the rest again
            assert first.state == "ok"
            assert first.quality[field] == "not_available"
            assert poller.poll(time.monotonic()).quality[field] == "not_available"
        with simulator("--profile", PROFILE, port=port):
            assert poll_until_ok(poller).quality[field] == "not_available"
            poll_until_ok(poller, ahead_s=poller_module.RELEARN_AFTER_S)  # read alone here
            later = poll_until_ok(poller, ahead_s=poller_module.RELEARN_AFTER_S)
            assert later.quality[field] == "ok"
    finally:
        link.close()
    assert "(unit id 1, function 3) are served again after exception 2" in caplog.text


def test_poller_permanent_hole_keeps_cycle_intact(tmp_path):
    # Forgetting a hole put the whole request back: every re-read failed it with
    # exception 2, so its other points were lost and the device went degraded.
    address, field, others = hole_target(PROFILE)
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, PROFILE)
    try:
        with simulator("--profile", PROFILE, "--exception", f"{address}=2", port=port):
            poller.prepare()
            poller.poll(time.monotonic())                      # the rejection is learned
            requests = link.requests
            later = poller.poll(time.monotonic() + poller_module.RELEARN_AFTER_S)
            again = poller.poll(time.monotonic() + 2 * poller_module.RELEARN_AFTER_S)
    finally:
        link.close()
    assert later.state == "ok", later.error
    assert later.quality[field] == "not_available"
    assert [later.quality[other] for other in others] == ["ok"] * len(others)
    assert link.requests > requests + len(poller.plan.requests)  # the hole was read alone
    assert again.state == "ok", again.error   # the next re-read is due again, still intact


def test_poller_takes_back_served_part_of_hole(tmp_path):
    # Two adjacent points are rejected, so their learned ranges merge into one hole. The
    # device then serves the first again but still rejects the second: reading the merged
    # hole alone fails, so each learned range in it must be read alone as well.
    address, field, _others = hole_target(PROFILE)
    next_address = address + 1
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, PROFILE)
    try:
        with simulator("--profile", PROFILE, "--exception", f"{address}-{next_address}=2",
                       port=port):
            poller.prepare()
            poller.poll(time.monotonic())                      # both rejections are learned
            learned = poller.plan.learned_holes()
        with simulator("--profile", PROFILE, "--exception", f"{next_address}=2", port=port):
            poll_until_ok(poller)
            during = poll_until_ok(poller, ahead_s=poller_module.RELEARN_AFTER_S)
            later = poll_until_ok(poller, ahead_s=poller_module.RELEARN_AFTER_S)
    finally:
        link.close()
    assert learned == [(1, 3, address, next_address)]
    assert during.state == "ok", during.error
    assert later.quality[field] == "ok"
    assert poller.plan.learned_holes() == [(1, 3, next_address, next_address)]
