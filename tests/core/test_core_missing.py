"""Without the compiled core, importing bessai_edge.core prints what is missing and exits.

The package is copied without its extension module and run with ``python -S``: without
site-packages the editable install's import hook cannot find the real ``_core`` in the
source tree, so the copy is what a broken installation looks like.
"""

import importlib.machinery
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

EX_SOFTWARE = 70


def package_copy(tmp_path, core_file_bytes=None):
    """Copy bessai_edge's Python files to tmp_path; optionally add a corrupt _core."""
    target = tmp_path / "bessai_edge"
    shutil.copytree(REPO / "bessai_edge", target,
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    if core_file_bytes is not None:
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        (target / f"_core{suffix}").write_bytes(core_file_bytes)
    return tmp_path


def import_core(path):
    code = f"import sys; sys.path.insert(0, {str(path)!r}); import bessai_edge.core"
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


def test_core_missing_exits_with_message(tmp_path):
    result = import_core(package_copy(tmp_path))
    assert result.returncode == EX_SOFTWARE
    assert "bessai_edge._core cannot be imported" in result.stderr
    assert "make build" in result.stderr
    assert "reinstall the bessai-edge package" in result.stderr
    assert "Traceback" not in result.stderr


def test_core_corrupt_exits_with_loader_error(tmp_path):
    result = import_core(package_copy(tmp_path, core_file_bytes=b"not an ELF file"))
    assert result.returncode == EX_SOFTWARE
    assert "bessai_edge._core cannot be imported" in result.stderr
    assert f"_core{importlib.machinery.EXTENSION_SUFFIXES[0]}" in result.stderr


@pytest.mark.parametrize("name", ["DecodeTable", "LimitTable", "encode", "not_available_words",
                                  "PointSpec", "LimitSpec", "QUALITY_NAMES"])
def test_core_exports_contract_names(name):
    import bessai_edge.core
    assert hasattr(bessai_edge.core, name)
