#!/usr/bin/env python3
"""Build-time benchmark: the whole build against the cfn-lint it has to run.

    .venv/bin/python benchmarks/build_time.py [--rounds 5]

Each round times, in an order that alternates between rounds (the machine is noisy, so the
three share its moods and the medians are compared):
  cli       the cfn-lint CLI alone, one process, on the templates the build writes, with the
            build's options (informational rules on: -c I; no check ignored);
  cold      `python build.py` (all environments, cfn-lint included) into a fresh directory;
  rebuild   the same command again on that directory: nothing changed, every template is in
            the lint cache.
Targets: cold / cli <= 1.0 and rebuild <= 1 s. Runs build.py as a subprocess, as `make build`
does, into scratch directories (build/ is untouched).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
COLD_BUILD_TARGET = 1.0  # cold build / cfn-lint CLI
REBUILD_TARGET_S = 1.0


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def build_command(build_dir: Path) -> list[str]:
    return [sys.executable, "build.py", "--build-dir", str(build_dir)]


def cli_command(build_dir: Path) -> list[str]:
    """cfn-lint over every template of every environment in one process. The build lints each
    template for its stack's region; the CLI takes one region list for all its files, so it
    gets the region most stacks use (linting for two regions would double its work)."""
    templates, regions = [], Counter()
    for manifest_file in sorted(build_dir.glob("*/manifest.json")):
        for stack in json.loads(manifest_file.read_text())["stacks"]:
            templates.append(str(manifest_file.parent / stack["template"]))
            regions[stack["region"]] += 1
    region, count = regions.most_common(1)[0]
    if count < len(templates):
        print(f"note: the CLI lints all {len(templates)} templates for {region} "
              f"({len(templates) - count} are built for {', '.join(sorted(set(regions) - {region}))})")
    return [str(CFN_LINT), "-c", "I", "--regions", region, "--", *templates]


def run_round(index: int, cli: list[str], scratch: Path) -> dict[str, float]:
    build_dir = scratch / f"round-{index}"
    times = {}

    def cold_then_rebuild() -> None:
        times["cold"] = timed(build_command(build_dir))
        times["rebuild"] = timed(build_command(build_dir))

    steps = [lambda: times.__setitem__("cli", timed(cli)), cold_then_rebuild]
    for step in steps if index % 2 == 0 else reversed(steps):
        step()
    shutil.rmtree(build_dir)
    return times


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def report(rounds: list[dict[str, float]]) -> None:
    labels = {
        "cli": "cfn-lint CLI alone, 1 process",
        "cold": "cold build, 3 environments, cfn-lint included",
        "rebuild": "no-change rebuild",
    }
    medians = {}
    for key, label in labels.items():
        values = [times[key] for times in rounds]
        medians[key] = statistics.median(values)
        print(f"{label}: median {medians[key]:.2f} s over {len(values)} rounds "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    ratio = medians["cold"] / medians["cli"]
    paired = statistics.median(times["cold"] / times["cli"] for times in rounds)
    print(f"cold build / cfn-lint CLI: {ratio:.2f} (target <= {COLD_BUILD_TARGET}); "
          f"median of the per-round ratios {paired:.2f}")
    print(f"no-change rebuild / cold build: {medians['rebuild'] / medians['cold']:.2f}")
    print(f"{verdict(ratio <= COLD_BUILD_TARGET)}: cold build <= {COLD_BUILD_TARGET}x the cfn-lint CLI alone")
    print(f"{verdict(medians['rebuild'] <= REBUILD_TARGET_S)}: no-change rebuild <= {REBUILD_TARGET_S:.0f} s "
          f"(median {medians['rebuild']:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        # An untimed build gives the CLI its templates (the same bytes every build writes).
        subprocess.run(build_command(scratch / "templates"), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        cli = cli_command(scratch / "templates")
        rounds = []
        for index in range(args.rounds):
            rounds.append(run_round(index, cli, scratch))
            timings = ", ".join(f"{key} {value:.2f} s" for key, value in sorted(rounds[-1].items()))
            print(f"round {index + 1}: {timings}", flush=True)
    finally:
        shutil.rmtree(scratch)
    report(rounds)


if __name__ == "__main__":
    main()
