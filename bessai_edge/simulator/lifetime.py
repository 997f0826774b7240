"""The simulator's ready line and its exit with the process that started it.

The parent (``bessai_edge.simulator_process`` for ``BESSAI_MODE=simulator``, and the
tests) starts ``bessai simulate --port 0 --parent-pid PID`` and reads the ready line
from its stdout to learn the port. The simulator prints nothing else on stdout.
"""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def ready_line(host, port):
    """Return the line printed once connections are accepted; never translated."""
    if ":" in host:
        host = f"[{host}]"
    return f"listening on {host}:{port}"


def die_with_parent(parent_pid):
    """Ask the kernel for SIGTERM when the parent dies; return False if it is gone already.

    PR_SET_PDEATHSIG is Linux-only; polling ``parent_alive`` on a timer covers the rest.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    return parent_alive(parent_pid)


def parent_alive(parent_pid):
    """Return True while the process ``parent_pid`` is still this process's parent."""
    return os.getppid() == parent_pid
