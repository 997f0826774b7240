"""``records.layout_problem``, the record layout check of ``bessai spool check``."""

import pytest

from bessai_edge.records import layout_problem
from tests.spool.helpers import layout_record


def test_layout_record_has_no_problem():
    assert layout_problem({**layout_record(1), "seq": 1}) is None


def test_layout_allows_extra_key():
    assert layout_problem({**layout_record(1), "seq": 1, "new_key": 3}) is None


def test_layout_allows_integer_as_number():
    assert layout_problem({**layout_record(1), "seq": 1, "mono_s": 100}) is None


@pytest.mark.parametrize(("changes", "expected"), [
    ({"seq": None}, "key seq is a JSON null, expected integer"),
    ({"time_ms": 1.7e12}, "key time_ms is a JSON number, expected integer"),
    ({"cycle": True}, "key cycle is a JSON boolean, expected integer"),
    ({"mono_s": "1.5"}, "key mono_s is a JSON string, expected number"),
    ({"clock_synced": 1}, "key clock_synced is a JSON integer, expected boolean or null"),
    ({"values": []}, "key values is a JSON array, expected object"),
    ({"alarms": {}}, "key alarms is a JSON object, expected array"),
    ({"v": 2}, "key v is 2, expected 1"),
    ({"state": "gone"}, "key state is 'gone', expected one of ok, degraded, down"),
])
def test_layout_wrong_value(changes, expected):
    record = {**layout_record(1), "seq": 1, **changes}
    assert layout_problem(record) == expected


def test_layout_missing_key():
    record = {**layout_record(1), "seq": 1}
    del record["boot_id"]
    assert layout_problem(record) == "key boot_id is missing"
