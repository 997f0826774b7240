#!/bin/sh
# /usr/bin/bessai: run the gateway's command line in the package's private Python
# environment. -I keeps the working directory and PYTHON* variables out of the
# module search path. exec keeps the PID, so systemd's Type=notify tracks the Python
# process as the service's main process.
exec /usr/lib/bessai-edge/bin/python3 -I -m bessai_edge "$@"
