"""Build native/bessai_core.c into a shared library and load it through cffi (ABI mode).

The tests in test_c_library.py use this to check the C library on its own, with no
Cython in between. BESSAI_CORE_SANITIZE=address builds it with AddressSanitizer and
UndefinedBehaviorSanitizer; the process must then preload the ASan runtime (see
test_sanitized.py).
"""

import os
import pathlib
import re
import subprocess

from cffi import FFI

NATIVE = pathlib.Path(__file__).resolve().parents[2] / "native"
HEADER = NATIVE / "bessai_core.h"
SOURCE = NATIVE / "bessai_core.c"
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer"]


def header_declarations():
    """Return the header's C declarations without preprocessor lines, for ffi.cdef."""
    lines = []
    skipping = False
    for line in HEADER.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#ifdef __cplusplus"):
            skipping = True
        elif skipping and stripped.startswith("#endif"):
            skipping = False
        elif not skipping and not stripped.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


def header_defines():
    """Return the integer #define constants of the header as a dict."""
    defines = {}
    pattern = re.compile(r"#define\s+(BESSAI_\w+)\s+\(?(-?(?:0x)?[0-9A-Fa-f]+)u?\)?\s*$")
    for line in HEADER.read_text().splitlines():
        match = pattern.match(line.strip())
        if match:
            defines[match.group(1)] = int(match.group(2), 0)
    return defines


def build(directory, sanitize=None):
    """Compile the library into directory and return its path."""
    sanitize = os.environ.get("BESSAI_CORE_SANITIZE") if sanitize is None else sanitize
    flags = ["-std=c99", "-O1", "-g", "-fPIC", "-shared", *WARNINGS]
    if sanitize == "address":
        flags += SANITIZE
    library = pathlib.Path(directory) / ("libbessai_core_asan.so" if sanitize else
                                         "libbessai_core.so")
    subprocess.run(["gcc", *flags, "-o", str(library), str(SOURCE), "-lm"], check=True,
                   capture_output=True, text=True)
    return library


def load(library):
    """Return (ffi, lib, libc, defines) for a built library."""
    ffi = FFI()
    ffi.cdef(header_declarations())
    ffi.cdef("void *malloc(size_t size); void free(void *pointer);")
    return ffi, ffi.dlopen(str(library)), ffi.dlopen(None), header_defines()
