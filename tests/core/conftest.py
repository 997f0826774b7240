"""Fixtures of the core tests: the C library built on its own and loaded through cffi."""

import subprocess
from types import SimpleNamespace

import pytest

from tests.core import clib


@pytest.fixture(scope="session")
def c_core(tmp_path_factory):
    """The C core compiled with gcc -Werror and loaded with cffi."""
    try:
        library = clib.build(tmp_path_factory.mktemp("c_core"))
    except subprocess.CalledProcessError as error:
        pytest.fail(f"gcc failed to build native/bessai_core.c:\n{error.stderr}")
    ffi, lib, libc, defines = clib.load(library)
    # Allocate with the C library's malloc, so AddressSanitizer checks exact-size buffers.
    allocator = ffi.new_allocator(alloc=libc.malloc, free=libc.free)
    return SimpleNamespace(ffi=ffi, lib=lib, defines=defines, new=allocator)
