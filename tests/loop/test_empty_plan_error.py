"""A device that replies but has no register the profile reads gets an error naming the cause.

Two ways leave a plan with no request: every address of the profile rejected with
exception 2 (the plan regroups to nothing after the first cycle), and a SunSpec map that
has none of the profile's models. Both must give an error text over real Modbus TCP,
not a null error that the cycle line shows as "device down (no answer)".
"""

import time

from bessai_edge import settings as settings_module
from bessai_edge.devices import load_device_profiles
from bessai_edge.link import DeviceLink
from bessai_edge.poller import DevicePoller
from tests.conftest import CAPTURES, free_tcp_port
from tests.loop.conftest import simulator

SUNSPEC_CAPTURE = CAPTURES / "sunspec_pysunspec2_suns_walk_m1_m126.json"  # models 1 and 126


def make_poller(tmp_path, port, profile_name):
    """Return (link, poller) for ``profile_name`` at 127.0.0.1:``port``, from real settings."""
    loaded = settings_module.load_settings({
        "SITE_ID": "t", "INVERTER_IP": "127.0.0.1", "INVERTER_PORT": str(port),
        "DRIVER_PROFILE_PATH": profile_name, "SPOOL_DIR": str(tmp_path)})
    device, = loaded.devices
    profile = load_device_profiles(loaded.devices)[device.name]
    link = DeviceLink.for_profile(profile, "127.0.0.1", port=port, unit_id=device.unit_id,
                                  connect_timeout_s=1.0)
    return link, DevicePoller(device, profile, link, loaded.limits, f"127.0.0.1:{port}")


def test_sunspec_map_without_profile_models(tmp_path):
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, "fronius_gen24")
    try:
        with simulator("--capture", str(SUNSPEC_CAPTURE), port=port):
            poller.prepare()
            result = poller.poll(time.monotonic())
    finally:
        link.close()
    assert result.state == "down"
    assert result.error is not None
    assert result.error.startswith("no_registers: ")
    assert "SunSpec map has none of the models profile fronius_gen24 reads" in result.error
    assert "DRIVER_PROFILE_PATH" in result.error


def test_every_address_rejected(tmp_path):
    port = free_tcp_port()
    link, poller = make_poller(tmp_path, port, "huawei_sun2000")
    try:
        with simulator("--capture", str(SUNSPEC_CAPTURE), port=port):
            poller.prepare()
            # Cycle 1 learns the rejected addresses and reads the regrouped plan again,
            # which has no request left; so does every later cycle.
            results = [poller.poll(time.monotonic()) for _cycle in range(2)]
    finally:
        link.close()
    for result in results:
        assert result.state == "down"
        assert result.error is not None
        assert result.error.startswith("no_registers: ")
        assert "rejects every address of profile huawei_sun2000" in result.error
