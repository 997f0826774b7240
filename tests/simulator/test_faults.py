"""Fault settings and capture images as plain data: parsing and lookups."""

import argparse
import shlex

import pytest

from bessai_edge.commands import simulate
from bessai_edge.errors import ConfigError
from bessai_edge.simulator.capture import image_from_capture
from bessai_edge.simulator.faults import (
    AddressException,
    Faults,
    parse_address_range,
    parse_exception_spec,
    parse_request_range,
)
from bessai_edge.simulator.image import RegisterImage


@pytest.mark.parametrize("text,expected", [
    ("32064=2", AddressException(32064, 32064, 2)),
    ("100-110=4", AddressException(100, 110, 4)),
    (" 0=11 ", AddressException(0, 0, 11)),
    ("65535=6", AddressException(65535, 65535, 6)),
])
def test_parse_exception_spec_valid(text, expected):
    assert parse_exception_spec(text) == expected


@pytest.mark.parametrize("text", ["", "32064", "=2", "a=2", "10-5=2", "70000=2", "5=0",
                                  "5=256", "5=2=3"])
def test_parse_exception_spec_invalid(text):
    with pytest.raises(ValueError, match="ADDRESS=CODE|0 to 65535|1 to 255"):
        parse_exception_spec(text)


@pytest.mark.parametrize("text,expected", [("2", (2, 2)), ("2-5", (2, 5)), ("1-1", (1, 1))])
def test_parse_request_range_valid(text, expected):
    assert parse_request_range(text) == expected


@pytest.mark.parametrize("text", ["0", "5-2", "x", "1-", ""])
def test_parse_request_range_invalid(text):
    with pytest.raises(ValueError, match="N-M"):
        parse_request_range(text)


@pytest.mark.parametrize("text,expected", [("0", (0, 0)), ("30803", (30803, 30803)),
                                           ("100-110", (100, 110)), ("65535", (65535, 65535))])
def test_parse_address_range_valid(text, expected):
    assert parse_address_range(text) == expected


@pytest.mark.parametrize("text", ["", "x", "5-2", "65536", "1-", "-3"])
def test_parse_address_range_invalid(text):
    with pytest.raises(ValueError, match="FIRST-LAST from 0 to 65535"):
        parse_address_range(text)


@pytest.mark.parametrize("address,count,closes", [
    (90, 10, False), (90, 11, True), (110, 5, True), (111, 5, False), (30803, 2, True),
])
def test_faults_closes_at_touching_reads(address, count, closes):
    faults = Faults(disconnect_at=((100, 110), (30804, 30804)))
    assert faults.closes_at(address, count) is closes


@pytest.mark.parametrize("address,count,expected", [
    (90, 10, None),     # ends at 99, just before the range
    (90, 11, 4),        # touches 100
    (110, 5, 4),        # starts at the last address
    (111, 5, None),
    (105, 1, 4),
])
def test_faults_exception_for_touching_reads(address, count, expected):
    faults = Faults(exceptions=(AddressException(100, 110, 4),))
    assert faults.exception_for(address, count) == expected


@pytest.mark.parametrize("latency_requests,number,expected", [
    ((), 1, 0.5), ((), 99, 0.5), ((2, 3), 1, 0.0), ((2, 3), 2, 0.5), ((2, 3), 3, 0.5),
    ((2, 3), 4, 0.0),
])
def test_faults_latency_for_request_numbers(latency_requests, number, expected):
    faults = Faults(latency_s=0.5, latency_requests=latency_requests)
    assert faults.latency_for(number) == expected


CAPTURE = {"unit_id": 3, "functions": ["holding", "input"],
           "registers": {"30775": 0, "30776": 83, "30778": 7}}


@pytest.mark.parametrize("unit_id,function_code,address,count,expected", [
    (3, 3, 30775, 2, [0, 83]),
    (3, 4, 30775, 2, [0, 83]),
    (3, 4, 30775, 3, 2),          # 30777 is not in the image
    (3, 3, 30778, 1, [7]),
    (3, 3, 30774, 1, 2),
    (4, 3, 30775, 2, 11),         # unit id the image does not serve
])
def test_capture_image_read(unit_id, function_code, address, count, expected):
    image = image_from_capture(CAPTURE)
    assert image.read(unit_id, function_code, address, count) == expected


def test_capture_image_unlisted_function_is_illegal():
    image = image_from_capture({**CAPTURE, "functions": ["holding"]})
    assert image.read(3, 4, 30775, 2) == 1


@pytest.mark.parametrize("unknown_unit,expected", [
    ("exception11", 11), ("ffff", [0xFFFF, 0xFFFF]), ("none", None)])
def test_register_image_unknown_unit_reply(unknown_unit, expected):
    image = RegisterImage(unknown_unit)
    image.set_words(1, 3, 0, [1, 2])
    assert image.read(2, 3, 0, 2) == expected


def test_capture_image_serves_other_unit_id():
    image = image_from_capture(CAPTURE, unit_id=9)
    assert image.read(9, 3, 30775, 2) == [0, 83]
    assert image.read(3, 3, 30775, 2) == 11


@pytest.mark.parametrize("document,named", [
    ({**CAPTURE, "unit_id": 300}, "unit_id=300"),
    ({**CAPTURE, "unit_id": "3"}, "unit_id='3'"),
    ({key: value for key, value in CAPTURE.items() if key != "unit_id"},
     "unit_id is missing: add the unit id the device was read on"),
    ({**CAPTURE, "functions": ["coils"]}, "'coils'"),
    ({**CAPTURE, "registers": {}}, "registers is missing"),
    ({**CAPTURE, "registers": {"x": 1}}, "'x'"),
    ({**CAPTURE, "registers": {"70000": 1}}, "'70000'"),
    ({**CAPTURE, "registers": {"5": 70000}}, "register 5 = 70000"),
    ({**CAPTURE, "registers": {"5": -1}}, "register 5 = -1"),
])
def test_capture_image_rejects_invalid_document(document, named):
    with pytest.raises(ConfigError) as error:
        image_from_capture(document, "bad.json")
    assert any(named in problem and "bad.json" in problem for problem in error.value.problems)


@pytest.mark.parametrize("faults", [
    Faults(),
    Faults(latency_s=0.25, latency_requests=(2, 5), quiet_after_accept_s=1.5),
    Faults(exceptions=(AddressException(32064, 32064, 2), AddressException(100, 110, 4)),
           busy_every=10, disconnect_every=7, silent=True),
    Faults(disconnect_at=((30803, 30803), (100, 110))),
])
def test_faults_options_parse_back_to_the_same_faults(faults):
    # The banner lists the options; given to `bessai simulate` they set the same faults.
    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    args = parser.parse_args(["--profile", "huawei_sun2000",
                              *shlex.split(" ".join(faults.options()))])
    parsed = simulate.faults_from_args(args)
    assert parsed == faults
    assert bool(faults.options()) == (faults != Faults())
