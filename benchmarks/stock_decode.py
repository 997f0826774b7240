"""``bessai`` with pymodbus's stock register decode, for ``bench_instructions --stock-decode``.

The link's reply classes decode registers into an ``array('H')`` in one call. This
entry point puts pymodbus's own per-register decode back (then converts its list, as
the poller needs an array), so the benchmark can show what that one change saves.
"""

import array
import sys

from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from bessai_edge import modbus_client
from bessai_edge.cli import main


def _stock_decode(reply, data):
    ReadHoldingRegistersResponse.decode(reply, data)
    reply.registers = array.array("H", reply.registers)


modbus_client.HoldingRegistersReply.decode = _stock_decode
modbus_client.InputRegistersReply.decode = _stock_decode

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
