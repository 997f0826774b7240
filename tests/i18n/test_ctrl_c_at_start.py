"""Ctrl-C while the CLI is still importing its commands stops it quietly with status 130."""

import subprocess
import sys

from bessai_edge.cli import EXIT_INTERRUPTED

# The child sends itself a real SIGINT while build_parser imports the command modules,
# the window before `bessai run` installs its own handler. Sending it from outside at a
# fixed delay would land in that window only on a machine of the right speed.
CHILD = """
import importlib, os, signal, sys
from bessai_edge import cli
real_import = importlib.import_module
def import_module(name, *args):
    if name == "bessai_edge.commands.run":
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args)
importlib.import_module = import_module
sys.exit(cli.main(["run", "--cycles", "1"]))
"""


def test_ctrl_c_during_imports_exits_quietly():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert "Traceback" not in result.stderr
    assert result.stderr == ""
    assert result.returncode == EXIT_INTERRUPTED
