"""A device that replies but has no register the profile reads gets an error naming the cause.

Two ways leave a plan with no request: every address of the profile rejected with
exception 2 (the plan regroups to nothing after the first cycle), and a SunSpec map that
has none of the profile's models. Both must give an error text over real Modbus TCP,
not a null error that the cycle line shows as "device down (no answer)".
"""

import time

from tests.conftest import CAPTURES, free_tcp_port
from tests.loop.conftest import make_poller, simulator

SUNSPEC_CAPTURE = CAPTURES / "sunspec_pysunspec2_suns_walk_m1_m126.json"  # models 1 and 126


def poll_capture(tmp_path, profile_name, cycles):
    """Serve the SunSpec capture and return ``cycles`` poll results of ``profile_name``."""
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, profile_name)
    try:
        with simulator("--capture", str(SUNSPEC_CAPTURE), port=port):
            poller.prepare()
            return [poller.poll(time.monotonic()) for _cycle in range(cycles)]
    finally:
        link.close()


def test_sunspec_map_without_profile_models(tmp_path):
    result, = poll_capture(tmp_path, "fronius_gen24", 1)
    assert result.state == "down"
    assert result.error is not None
    assert result.error.startswith("no_registers: ")
    assert "SunSpec map has none of the models profile fronius_gen24 reads" in result.error
    assert "DRIVER_PROFILE_PATH" in result.error


def test_every_address_rejected(tmp_path):
    # Cycle 1 learns the rejected addresses and reads the regrouped plan again, which
    # has no request left. So does every later cycle.
    for result in poll_capture(tmp_path, "huawei_sun2000", 2):
        assert result.state == "down"
        assert result.error is not None
        assert result.error.startswith("no_registers: ")
        assert "rejects every address of profile huawei_sun2000" in result.error
