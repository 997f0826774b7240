"""``bessai simulate`` as a child process, for ``BESSAI_MODE=simulator``.

The child serves one profile on a free loopback port and prints ``listening on
HOST:PORT`` on stdout once it accepts connections; the parent reads that line and
polls the child over real Modbus TCP like any device. The child gets no systemd
variables (it must not send READY or WATCHDOG for the service), runs in its own
process group (Ctrl-C reaches the gateway only, which then stops the child), and ends
when the gateway does: ``stop()`` terminates it, and with ``--parent-pid`` the child
asks the kernel for SIGTERM when the gateway dies first and also watches its PID.
"""

import logging
import os
import re
import subprocess
import sys
import tempfile
import time

from bessai_edge.service.notify import child_environment

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_READY_LINE = re.compile(rb"listening on \[?([0-9A-Za-z.:]+?)\]?:(\d+)\s*$", re.MULTILINE)


class SimulatorStartError(RuntimeError):
    """The simulator child exited or stayed silent instead of printing its ready line."""


class SimulatorProcess:
    """One ``bessai simulate SOURCE_ARGS`` child on ``host`` and ``port`` (0: a free one).

    ``source_args`` are the simulate options that choose what it serves and how, e.g.
    ``["--profile", "huawei_sun2000", "--unit-id", "3"]`` or ``["--capture", FILE]``.
    """

    def __init__(self, source_args=(), host="127.0.0.1", port=0, profile=None):
        if profile is not None:  # the older form, SimulatorProcess(profile=NAME)
            source_args = ("--profile", profile, *source_args)
        self.source_args = tuple(source_args)
        self.host = host
        self.port = port  # 0: the child picks a free port
        self.process = None
        self.address = None  # (host, port) from the ready line

    def command(self):
        return [sys.executable, "-m", "bessai_edge", "simulate", *self.source_args,
                "--host", self.host, "--port", str(self.port), "--parent-pid", str(os.getpid())]

    def start(self, timeout_s=START_TIMEOUT_S):
        """Start the child and return its (host, port); raise SimulatorStartError."""
        output = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=output,
                env=child_environment(), start_new_session=True)
            self.address = self._wait_ready(output, timeout_s)
        except BaseException:
            self.stop()
            raise
        finally:
            output.close()  # the child keeps its own descriptor of the file
        logger.info("simulator (%s) running as pid %d on %s:%d",
                    " ".join(self.source_args), self.process.pid, *self.address)
        return self.address

    def _wait_ready(self, output, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            text = os.pread(output.fileno(), 65536, 0)
            match = _READY_LINE.search(text)
            if match:
                return match.group(1).decode("ascii"), int(match.group(2))
            status = self.process.poll()
            if status is not None:
                raise SimulatorStartError(
                    f"`{' '.join(self.command())}` exited with status {status} before it "
                    f"printed 'listening on HOST:PORT'; its output: {text.decode(errors='replace')!r}")
            if time.monotonic() >= deadline:
                raise SimulatorStartError(
                    f"`{' '.join(self.command())}` printed no 'listening on HOST:PORT' line "
                    f"within {timeout_s:g} s")
            time.sleep(0.02)

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """Terminate the child and wait for it; kill it when it does not end in time."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("simulator pid %d did not end %g s after SIGTERM: killing it",
                           process.pid, timeout_s)
            process.kill()
            process.wait()
