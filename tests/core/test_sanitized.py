"""Run the C library's tests again with the library built under AddressSanitizer and UBSan.

The child pytest preloads the ASan runtime (CPython itself is not instrumented) and sets
PYTHONMALLOC=malloc, so every buffer the tests pass to C is an exact-size malloc block
with red zones: a read one word past a buffer fails the run.
"""

import os
import pathlib
import subprocess
import sys

from tests.conftest import REPO, require_commands, skip_unless_ci


def asan_runtime():
    """Return the path of gcc's ASan runtime, or None when it is not installed."""
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return path if os.path.isabs(path) and pathlib.Path(path).exists() else None


def test_c_library_tests_pass_under_address_sanitizer(tmp_path):
    require_commands("gcc")
    runtime = asan_runtime()
    if runtime is None:
        skip_unless_ci("gcc's AddressSanitizer runtime libasan.so is not installed")
    env = dict(os.environ, BESSAI_CORE_SANITIZE="address", LD_PRELOAD=runtime,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", PYTHONMALLOC="malloc")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--basetemp", str(tmp_path / "pytest"), "tests/core/test_c_library.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert "AddressSanitizer" not in output, output[-6000:]
    assert "runtime error" not in output, output[-6000:]
    assert result.returncode == 0, output[-6000:]
    assert " passed" in result.stdout
