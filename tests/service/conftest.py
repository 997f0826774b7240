"""Fixtures for the service tests: a real sd_notify socket to listen on."""

import collections
import os
import select
import socket
import struct
import time
import uuid

import pytest

Message = collections.namedtuple("Message", "time text pid")
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


class NotifyListener:
    """An AF_UNIX datagram socket that plays systemd's side of NOTIFY_SOCKET.

    ``address`` is the value to put in NOTIFY_SOCKET: a path, or ``@name`` for a socket
    in the abstract namespace. Like systemd's socket, it has SO_PASSCRED set, so the
    kernel attaches the sender's credentials and each message records the sender's PID.
    ``messages`` holds ``Message(time, text, pid)`` in arrival order.
    """

    def __init__(self, address, bind_address):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(bind_address)
        self.messages = []

    def receive(self, timeout=0.0):
        """Collect the datagrams that arrive within ``timeout`` seconds and return all so far."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if not readable:
                return self.messages
            data, ancillary, _flags, _address = self.sock.recvmsg(
                65536, socket.CMSG_SPACE(_UCRED.size))
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(payload[:_UCRED.size])[0]
            self.messages.append(Message(time.monotonic(), data.decode("utf-8"), pid))

    def wait_for(self, predicate, timeout):
        """Receive until ``predicate(messages)`` is true; return the messages or fail at timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                pytest.fail(f"sd_notify messages never matched; received: {self.texts()}")
            self.receive(0.05)
        return self.messages

    def texts(self):
        return [message.text for message in self.messages]

    def close(self):
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_listener(request, tmp_path):
    """A NotifyListener on a path socket and, as a second case, an abstract one."""
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        listener = NotifyListener(path, path)
    else:
        name = f"bessai-test-notify-{os.getpid()}-{uuid.uuid4().hex}"
        listener = NotifyListener("@" + name, "\0" + name)
    yield listener
    listener.close()


def assignments(text):
    """Return the KEY=VALUE lines of one sd_notify datagram as a dict."""
    return dict(line.split("=", 1) for line in text.split("\n") if line)
