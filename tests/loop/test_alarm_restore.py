"""``alarm_restore.previous_alarms`` over a real spool: the newest matching record wins."""

import os

import orjson

from bessai_edge.alarm_restore import PreviousAlarms, previous_alarms
from bessai_edge.spool import Spool, SpoolReader


def record(device, alarms, site="site-1", profile="huawei_sun2000", number=0):
    return {"v": 1, "site": site, "device": device, "profile": profile,
            "time_ms": 1_800_000_000_000 + number, "alarms": alarms, "alarm_changes": []}


def append_all(directory, records):
    with Spool(directory, segment_max_bytes=600) as spool:
        for item in records:
            spool.append(item)


DEVICES = {"inverter": "huawei_sun2000", "battery": "victron_multiplus"}


def test_previous_alarms_newest_record_per_device(tmp_path):
    append_all(tmp_path, [
        record("inverter", ["soc_pct:low_warn"], number=1),
        record("battery", ["battery_temp_c:high_warn"], profile="victron_multiplus", number=2),
        record("inverter", ["soc_pct:low_trip", "soc_pct:low_warn"], number=3),
        record("meter", ["grid_frequency_hz:high_warn"], number=4),   # no longer configured
    ])
    assert len(SpoolReader(tmp_path).segments()) > 1  # the records span segments
    found = previous_alarms(tmp_path, "site-1", DEVICES)
    assert found == {
        "inverter": PreviousAlarms(("soc_pct:low_trip", "soc_pct:low_warn"), 3,
                                   1_800_000_000_003),
        "battery": PreviousAlarms(("battery_temp_c:high_warn",), 2, 1_800_000_000_002),
    }


def test_previous_alarms_newest_record_decides(tmp_path):
    # The older records match, but the newest one of each device decides.
    append_all(tmp_path, [
        record("inverter", ["soc_pct:low_warn"], number=1),
        record("battery", ["soc_pct:low_warn"], profile="victron_multiplus", number=2),
        record("inverter", ["soc_pct:low_warn"], site="site-2", number=3),
        record("battery", ["soc_pct:stale"], profile="sma_sunny_tripower", number=4),
    ])
    assert previous_alarms(tmp_path, "site-1", DEVICES) == {}


def test_previous_alarms_skips_lines_that_are_not_records(tmp_path):
    append_all(tmp_path, [record("inverter", ["soc_pct:low_warn"], number=1)])
    path = SpoolReader(tmp_path).segments()[-1].path
    with open(path, "ab") as stream:
        for line in (b"not json", b"[1, 2]", orjson.dumps({**record("inverter", []),
                                                            "alarms": "soc_pct:low_warn"}),
                     orjson.dumps({**record("inverter", []), "seq": "7"})):
            stream.write(line + b"\n")
    found = previous_alarms(tmp_path, "site-1", DEVICES)
    assert found["inverter"].alarms == ("soc_pct:low_warn",)
    assert found["inverter"].seq == 1


def test_previous_alarms_reads_only_the_tail(tmp_path, caplog):
    caplog.set_level("INFO", logger="bessai_edge.alarm_restore")
    append_all(tmp_path, [record("inverter", ["soc_pct:low_warn"], number=1)]
               + [record("other", [], number=n) for n in range(2, 40)])
    assert previous_alarms(tmp_path, "site-1", DEVICES, tail_bytes=2048) == {}
    assert (f"no record of inverter, battery in the last 2 KiB of spool {tmp_path}, so their "
            "limits start cleared") in caplog.text
    assert "inverter" in previous_alarms(tmp_path, "site-1", DEVICES, tail_bytes=1 << 20)


def test_previous_alarms_unreadable_spool_warns(tmp_path, caplog):
    missing = tmp_path / "missing"
    assert previous_alarms(missing, "site-1", DEVICES) == {}
    assert f"cannot read the newest records of spool {missing}" in caplog.text
    assert "every limit starts cleared" in caplog.text
    assert not os.path.exists(missing)
