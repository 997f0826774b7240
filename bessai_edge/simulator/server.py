"""A Modbus TCP server on asyncio that serves a register source and injects faults.

Only what a monitoring gateway sends is served: read holding registers (function 3)
and read input registers (function 4). Every other function gets exception 1. Each connection is served in order, one request at a time, as small
devices do, so a delayed reply also delays the requests queued behind it.

A register source has one method, ``read(unit_id, function_code, address, count)``,
returning the list of words, an exception code (int), or None for "no reply".
"""

import asyncio
import logging
import struct

from bessai_edge.simulator.faults import BUSY_EXCEPTION, Faults

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
READ_FUNCTIONS = (3, 4)
_MBAP = struct.Struct(">HHHB")


def reply_frame(transaction_id, unit_id, function_code, result):
    """Build the MBAP reply frame to a read: the words, or an exception code."""
    if isinstance(result, int):
        pdu = bytes((function_code | 0x80, result))
    else:
        pdu = bytes((function_code, 2 * len(result))) + struct.pack(f">{len(result)}H", *result)
    return _MBAP.pack(transaction_id, 0, len(pdu) + 1, unit_id) + pdu


class ModbusServer:
    """Serve ``source`` on a TCP port until ``stop()``; ``requests`` counts what arrived."""

    def __init__(self, source, faults=Faults()):
        self.source = source
        self.faults = faults
        self.requests = 0
        self.connections = 0
        self._server = None
        self._writers = set()

    async def start(self, host, port):
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        self._server = await asyncio.start_server(self._serve_connection, host, port,
                                                  reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self):
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(self, reader, writer):
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        peer = writer.get_extra_info("peername")
        self.connections += 1
        self._writers.add(writer)
        log.info("connection from %s", peer)
        try:
            while True:
                header = await reader.readexactly(_MBAP.size)
                transaction_id, protocol_id, length, unit_id = _MBAP.unpack(header)
                if protocol_id != 0 or not 2 <= length <= 254:
                    log.warning("closing %s: invalid MBAP header %s", peer, header.hex())
                    return
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                frame = await self._answer(self.requests, loop.time() - accepted,
                                           transaction_id, unit_id, pdu)
                if frame is _CLOSE:
                    log.info("closing %s on request %d (disconnect fault)", peer, self.requests)
                    return
                if frame is not None:
                    writer.write(frame)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            log.info("connection from %s closed", peer)

    async def _answer(self, number, since_accept_s, transaction_id, unit_id, pdu):
        """Return the reply frame for one request, None for no reply, or _CLOSE."""
        faults = self.faults
        function_code = pdu[0]
        if faults.silent or since_accept_s < faults.quiet_after_accept_s:
            log.debug("request %d ignored (silent or quiet period)", number)
            return None
        if faults.disconnect_every and number % faults.disconnect_every == 0:
            return _CLOSE
        if faults.disconnect_at and len(pdu) == 5 and faults.closes_at(
                *struct.unpack(">HH", pdu[1:5])):
            return _CLOSE
        result = self._result(number, unit_id, pdu)
        if result is None:
            return None
        delay = faults.latency_for(number)
        if delay:
            await asyncio.sleep(delay)
        return reply_frame(transaction_id, unit_id, function_code, result)

    def _result(self, number, unit_id, pdu):
        function_code = pdu[0]
        if function_code not in READ_FUNCTIONS:
            return ILLEGAL_FUNCTION
        if len(pdu) != 5:
            return ILLEGAL_DATA_VALUE
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            return ILLEGAL_DATA_VALUE
        if address + count > 65536:
            return ILLEGAL_DATA_ADDRESS
        if self.faults.busy_every and number % self.faults.busy_every == 0:
            return BUSY_EXCEPTION
        injected = self.faults.exception_for(address, count)
        if injected is not None:
            return injected
        return self.source.read(unit_id, function_code, address, count)


_CLOSE = object()
