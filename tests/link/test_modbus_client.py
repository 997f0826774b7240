"""The register replies registered with pymodbus: same registers as its stock decode."""

import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from bessai_edge.modbus_client import HoldingRegistersReply, InputRegistersReply
from tests.link.test_link import LUNA, SOC_WORDS, UNIT, make_link
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_register_reply_decodes_like_pymodbus(words):
    data = bytes([2 * len(words)]) + b"".join(word.to_bytes(2, "big") for word in words)
    stock = ReadHoldingRegistersResponse()
    stock.decode(data)
    for reply_class in (HoldingRegistersReply, InputRegistersReply):
        reply = reply_class()
        reply.decode(data)
        assert isinstance(reply.registers, array.array)
        assert reply.registers.tolist() == stock.registers == words


@pytest.mark.parametrize("data", [
    b"\x04\x00\x01",          # byte count 4, 2 bytes of data
    b"\x03\x00\x01\x02",      # odd byte count
    b"",                       # no byte count at all
], ids=["short", "odd", "empty"])
def test_register_reply_rejects_bad_byte_count(data):
    with pytest.raises(ModbusIOException, match="byte count"):
        HoldingRegistersReply().decode(data)


def test_read_checked_returns_array(simulator):
    device = simulator("--capture", LUNA)
    with make_link(device.port) as link:
        words = link.read_checked(UNIT, 3, 37760, 2)
        assert isinstance(words, array.array)
        assert words.typecode == "H"
        assert words.tolist() == SOC_WORDS
        listed = link.read(UNIT, "holding", 37760, 2)
        assert type(listed) is list
        assert listed == SOC_WORDS


def test_register_reply_text_counts_registers_without_listing_them():
    # pymodbus builds str(reply) on every reply for its debug log; it must stay short.
    reply = InputRegistersReply()
    reply.decode(bytes([80]) + bytes(range(80)))
    reply.transaction_id = 7
    text = str(reply)
    assert text == "InputRegistersReply(dev_id=0, transaction_id=7, registers=40)"
    assert str(HoldingRegistersReply()).startswith("HoldingRegistersReply(")
