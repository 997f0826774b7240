"""A short libFuzzer run of the decode core under AddressSanitizer and UBSan."""

import os
import re
import subprocess

import pytest

from tests.conftest import REPO, require_commands, skip_unless_ci

FUZZ_SECONDS = 20
CORPUS = REPO / "tests" / "fuzz" / "corpus"


@pytest.mark.slow
def test_fuzz_decode_short_run(tmp_path):
    require_commands("clang")
    seeds_before = sorted(path.name for path in CORPUS.iterdir())
    env = dict(os.environ, BESSAI_FUZZ_DIR=str(tmp_path))
    result = subprocess.run([str(REPO / "tests" / "fuzz" / "run.sh"), str(FUZZ_SECONDS)],
                            env=env, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    output = result.stdout + result.stderr
    if not (tmp_path / "fuzz_decode").exists() and "clang_rt" in output:
        skip_unless_ci("clang's libFuzzer runtime is missing (Debian package libclang-rt-14-dev)")
    assert result.returncode == 0, output[-6000:]
    assert list((tmp_path / "artifacts").iterdir()) == []
    executed = re.search(r"stat::number_of_executed_units:\s+(\d+)", output)
    assert executed is not None, output[-3000:]
    assert int(executed.group(1)) > len(seeds_before)
    assert sorted(path.name for path in CORPUS.iterdir()) == seeds_before


def test_fuzz_corpus_matches_generator():
    from tests.fuzz import make_corpus
    for name, data in make_corpus.SEEDS.items():
        assert (CORPUS / name).read_bytes() == data, name
