"""Run every benchmark module (``benchmarks/bench_*.py``) or the ones named.

Each module defines ``main(argv)``, which prints one JSON object per figure on stdout.
``python -m benchmarks core spool`` runs ``bench_core`` and ``bench_spool`` only.
"""

import importlib
import pathlib
import sys


def main(argv):
    here = pathlib.Path(__file__).parent
    names = argv or sorted(path.stem[len("bench_"):] for path in here.glob("bench_*.py"))
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
