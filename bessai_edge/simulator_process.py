"""``bessai simulate`` as a child process, for ``BESSAI_MODE=simulator``.

The child serves one profile on a free loopback port and prints ``listening on
HOST:PORT`` on stdout once it accepts connections; the parent reads that line and
polls the child over real Modbus TCP like any device. The child gets no systemd
variables (it must not send READY or WATCHDOG for the service), runs in its own
process group (Ctrl-C reaches the gateway only, which then stops the child), and ends
when the gateway does: ``stop()`` terminates it, and with ``--parent-pid`` the child
asks the kernel for SIGTERM when the gateway dies first and also watches its PID.

The gateway calls ``check()`` once per cycle. It costs one ``waitpid(WNOHANG)`` while
the child runs. A child that died is logged once at ERROR with its exit status,
reaped, and restarted on the same port after a capped backoff, without waiting for it:
later checks read its ready line, or notice that it exited again (for instance because
another program took the port meanwhile) and schedule the next attempt.
"""

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from bessai_edge.backoff import BackoffPolicy
from bessai_edge.errors import EX_CONFIG
from bessai_edge.service.notify import child_environment

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
RESTART_BACKOFF = BackoffPolicy(initial_s=1.0, maximum_s=30.0, jitter=0.0)
_READY_LINE = re.compile(rb"listening on \[?([0-9A-Za-z.:]+?)\]?:(\d+)\s*$", re.MULTILINE)


class SimulatorStartError(RuntimeError):
    """The simulator child exited or stayed silent instead of printing its ready line."""


class SimulatorProcess:
    """One ``bessai simulate SOURCE_ARGS`` child on ``host`` and ``port`` (0: a free one).

    ``source_args`` are the simulate options that choose what it serves and how, e.g.
    ``["--profile", "huawei_sun2000", "--unit-id", "3"]`` or ``["--capture", FILE]``.
    """

    def __init__(self, source_args=(), host="127.0.0.1", port=0, profile=None,
                 restart_backoff=RESTART_BACKOFF):
        if profile is not None:  # the older form, SimulatorProcess(profile=NAME)
            source_args = ("--profile", profile, *source_args)
        self.source_args = tuple(source_args)
        self.host = host
        self.port = port  # 0: the child picks a free port
        self.process = None
        self.address = None  # (host, port) from the ready line
        self.restart_backoff = restart_backoff
        self.restarts = 0             # children started by check()
        self.restart_at = None        # monotonic time of the next restart, while it is dead
        self._failed_restarts = 0     # restarted children that died before their ready line
        self._pending_output = None   # stdout file of a restarted child not yet ready
        self._stopped = False

    def command(self, port=None):
        port = self.port if port is None else port
        return [sys.executable, "-m", "bessai_edge", "simulate", *self.source_args,
                "--host", self.host, "--port", str(port), "--parent-pid", str(os.getpid())]

    def _spawn(self, output, port=None):
        self.process = subprocess.Popen(
            self.command(port), stdin=subprocess.DEVNULL, stdout=output,
            env=child_environment(), start_new_session=True)

    def start(self, timeout_s=START_TIMEOUT_S):
        """Start the child and return its (host, port); raise SimulatorStartError."""
        output = tempfile.TemporaryFile()
        try:
            self._spawn(output)
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

    def check(self, now=None):
        """Notice a dead child, reap it and restart it when due; never waits for the child.

        Return True while a child runs. Call it once per cycle, after ``start()``.
        """
        if self.address is None or self._stopped:
            return False
        now = time.monotonic() if now is None else now
        if self.restart_at is None:
            status = self.process.poll()  # waitpid(WNOHANG): reaps a dead child
            if status is None:
                self._read_pending_ready_line()
                return True
            self._note_exit(status, now)
            return False
        if now < self.restart_at:
            return False
        return self._restart()

    def _note_exit(self, status, now):
        host, port = self.address
        restarting = self._pending_output is not None
        self._close_pending_output()
        if restarting:
            self._failed_restarts += 1
        delay = self.restart_backoff.delay(self._failed_restarts + 1, 0.0)
        self.restart_at = now + delay
        # A child that keeps failing to restart is logged at WARNING once, then at DEBUG.
        level = logging.WARNING if self._failed_restarts == 1 else logging.DEBUG
        if restarting and status == EX_CONFIG:
            logger.log(level, "simulator (%s) cannot listen on %s:%d again, probably because "
                           "another program took the port; next attempt in %.1f s",
                           " ".join(self.source_args), host, port, delay)
        elif restarting:
            logger.log(level, "restarted simulator (%s) pid %d %s before it was ready; "
                           "next attempt in %.1f s", " ".join(self.source_args),
                           self.process.pid, describe_status(status), delay)
        else:
            logger.error("simulator (%s) pid %d on %s:%d %s; restarting it in %.1f s",
                         " ".join(self.source_args), self.process.pid, host, port,
                         describe_status(status), delay)

    def _restart(self):
        """Start a new child on the same port; return False when it could not be started."""
        self.restart_at = None
        self.restarts += 1
        output = tempfile.TemporaryFile()
        try:
            self._spawn(output, port=self.address[1])
        except OSError as error:  # fork or exec failed: count it as a failed restart
            output.close()
            self._failed_restarts += 1
            delay = self.restart_backoff.delay(self._failed_restarts + 1, 0.0)
            self.restart_at = time.monotonic() + delay
            logger.warning("cannot restart the simulator (%s): %s; next attempt in %.1f s",
                           " ".join(self.source_args), error, delay)
            return False
        self._pending_output = output
        logger.debug("restarting the simulator (%s) as pid %d",
                     " ".join(self.source_args), self.process.pid)
        return True

    def _read_pending_ready_line(self):
        output = self._pending_output
        if output is None:
            return
        if _READY_LINE.search(os.pread(output.fileno(), 65536, 0)):
            self._close_pending_output()
            self._failed_restarts = 0
            logger.info("simulator (%s) restarted as pid %d on %s:%d",
                        " ".join(self.source_args), self.process.pid, *self.address)

    def _close_pending_output(self):
        if self._pending_output is not None:
            self._pending_output.close()
            self._pending_output = None

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """Terminate the child and wait for it; kill it when it does not end in time."""
        self._stopped = True
        self._close_pending_output()
        self.restart_at = None
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


def describe_status(status):
    """Return ``exited with status N`` or ``was killed by signal N (NAME)`` for a returncode."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = "unknown signal"
    return f"was killed by signal {-status} ({name})"
