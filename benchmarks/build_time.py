#!/usr/bin/env python3
"""Build-time benchmark: the whole build of all environments (cfn-lint included) from a clean
build directory, and a no-change rebuild (templates unchanged, so the lint cache holds).

    .venv/bin/python benchmarks/build_time.py [--rounds 3]

Prints the median wall time of each over the rounds and their ratio. Runs `python build.py`
as a subprocess, exactly as `make build` does, into a scratch directory (build/ is untouched).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_build(build_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "build.py", "--build-dir", str(build_dir)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clean, rebuild = [], []
    for _ in range(args.rounds):
        build_dir = Path(tempfile.mkdtemp(prefix="bench-build-"))
        try:
            clean.append(timed_build(build_dir))
            rebuild.append(timed_build(build_dir))
        finally:
            shutil.rmtree(build_dir)
    clean_median, rebuild_median = statistics.median(clean), statistics.median(rebuild)
    print(f"full build, 3 environments, cfn-lint included: median {clean_median:.1f} s over {args.rounds} rounds "
          f"(min {min(clean):.1f}, max {max(clean):.1f})")
    print(f"no-change rebuild: median {rebuild_median:.1f} s (min {min(rebuild):.1f}, max {max(rebuild):.1f})")
    print(f"no-change rebuild / full build: {rebuild_median / clean_median:.2f}")


if __name__ == "__main__":
    main()
