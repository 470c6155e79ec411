"""Cold-start import cost of every function handler, as a ratio to `import boto3` alone.

    .venv/bin/python benchmarks/cold_start.py                     # this checkout, 15 runs
    .venv/bin/python benchmarks/cold_start.py --functions /tmp/before/functions   # another copy

`import boto3` is the floor every Python Lambda pays. Each sample is one fresh interpreter that
times one import statement with perf_counter: `import boto3`, or `import app` from the
function's deployment package, unzipped (templates_src.packaging builds the very zip that is
deployed: app.py and paylib/ at its root, sources only). Lambda's /var/task is read-only and the
zip holds no .pyc, so a cold start compiles the function's own modules every time; samples run
with PYTHONDONTWRITEBYTECODE=1 to do the same. boto3 and Powertools come precompiled (runtime,
layer), as in this virtual environment. Within each run every function is measured right after
a floor sample (floor, f1, floor, f2, ...), so a machine that slows down or speeds up moves
both. The figure is the median, over the runs, of each function sample divided by the floor
sample taken just before it (a load spike then inflates one pair, not one side of the ratio);
the ratio of the two medians is printed too. One untimed round first fills the file cache.

The environment is Lambda-like (AWS_LAMBDA_FUNCTION_NAME set, tracing not disabled), so the
Powertools Tracer would load the X-Ray SDK as it does in Lambda. One extra row measures
payment_api with PAYMENTS_XRAY_SUBSEGMENTS=true, the price of that switch.

Timing on a shared machine moves by a few percent; this is not run in CI. The target is at most
1.3x for every function (docs/payments.md has the figures).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3
TIMED_IMPORT = "import sys, time\nsys.path[:0] = {paths!r}\nstart = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - start)\n"
LAMBDA_ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "payments-cold-start", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "LAMBDA_TASK_ROOT": "/var/task",
    "POWERTOOLS_SERVICE_NAME": "payments", "POWERTOOLS_METRICS_NAMESPACE": "Payments", "LOG_LEVEL": "INFO",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def sample(module: str, paths: list[str], extra_env: dict | None = None) -> float:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("POWERTOOLS_", "PAYMENTS_", "AWS_"))}
    environment.update(LAMBDA_ENVIRONMENT, **(extra_env or {}))
    code = TIMED_IMPORT.format(paths=paths, module=module)
    answer = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return float(answer.stdout.strip().splitlines()[-1])


def unpacked_packages(functions: Path, into: Path) -> list[str]:
    """Each function's deployment zip, unzipped under `into/<name>`; the names."""
    sys.path.insert(0, str(ROOT))
    from templates_src.function_catalog import load_functions
    from templates_src.packaging import package_bytes
    names = []
    for declaration in load_functions(functions):
        with zipfile.ZipFile(io.BytesIO(package_bytes(declaration, functions))) as archive:
            archive.extractall(into / declaration.name)
        names.append(declaration.name)
    return names


def targets(functions: Path, into: Path) -> list[tuple[str, list[str], dict]]:
    names = unpacked_packages(functions, into)
    rows = [(name, [str(into / name)], {}) for name in names]
    if "payment_api" in names:
        rows.append(("payment_api +xray", [str(into / "payment_api")], {"PAYMENTS_XRAY_SUBSEGMENTS": "true"}))
    return rows


def run(functions: Path, runs: int, into: Path) -> dict[str, list[tuple[float, float]]]:
    """(floor sample, function sample) pairs per function, taken one right after the other."""
    rows = targets(functions, into)
    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in rows}
    for round_number in range(runs + 1):
        for name, paths, extra in rows:
            floor_time = sample("boto3", [])
            handler_time = sample("app", paths, extra)
            if round_number:  # round 0 only warms the caches
                pairs[name].append((floor_time, handler_time))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=Path, default=ROOT / "functions")
    parser.add_argument("--runs", type=int, default=15, help="timed runs (at least 5)")
    arguments = parser.parse_args()
    runs = max(5, arguments.runs)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as into:
        pairs = run(arguments.functions.resolve(), runs, Path(into))
    floor = statistics.median(floor_time for samples in pairs.values() for floor_time, _ in samples)
    print(f"floor: import boto3, median of {runs * len(pairs)} samples: {floor * 1000:.0f} ms")
    print(f"{'function':<24} {'median ms':>9} {'paired':>7} {'of medians':>10} {'min..max ms':>12}  (target <= {TARGET}x)")
    worst = 0.0
    for name, samples in pairs.items():
        times = [handler_time for _, handler_time in samples]
        ratio = statistics.median(handler_time / floor_time for floor_time, handler_time in samples)
        if not name.endswith("+xray"):
            worst = max(worst, ratio)
        print(f"{name:<24} {statistics.median(times) * 1000:>9.0f} {ratio:>6.2f}x {statistics.median(times) / floor:>9.2f}x "
              f"{min(times) * 1000:>6.0f}..{max(times) * 1000:<5.0f}")
    print(f"worst function: {worst:.2f}x ({'meets' if worst <= TARGET else 'misses'} the {TARGET}x target)")

if __name__ == "__main__":
    main()
