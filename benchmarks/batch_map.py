"""Batch ingestion at scale: one Distributed Map child batch measured against moto, beside the
single-function path in the same run, and from the measurement a model of wall time and cost.

    .venv/bin/python benchmarks/batch_map.py            # ~2-4 min: the README's tables
    .venv/bin/python benchmarks/batch_map.py --quick    # a few seconds: the script still works

What is measured (this machine, moto in process, each measurement on a fresh moto account):
- one child batch: `CHILD_HANDLER` on the exact input the map hands a child ({BatchInput, Items},
  `batch_rows` rows from parameters/, built by the same ItemReader/ItemSelector emulation the
  tests use), and the single-function path (`paylib.batch.ingest`, streamed from S3) on a file of
  the same number of rows: rows/s of both and their ratio (machines are noisy: the ratio is the
  result, the absolute rates move with load);
- where the time goes: moto's own share (time inside moto's request handling) is removed, the
  rest is our code plus botocore, which run on Lambda too ("our CPU per row");
- every AWS call and its billable units (DynamoDB WRU/RRU from the item sizes, S3 and SQS
  requests), per row;
- peak memory (tracemalloc) of the single path at three file sizes and of one child batch.

moto artefact neutralised: moto deep-copies a whole table before every action of a
TransactWriteItems (its rollback backup), so its cost grows with the table and a run of N rows
takes O(N^2) (26 rows/s at 500 rows). Real DynamoDB does not. The benchmark hands moto the table
itself instead of the copy; that is only sound while no transaction is cancelled, so the run
counts cancellations and refuses to report if there was one. moto's index Query also scans the
whole table (O(N^2) again): that time is moto's and is removed with the rest of moto's share, but
it keeps the memory runs' files small. History reads run in the calling thread (InOrder) so
moto's time adds up.

What is modelled (AWS, not measured here: no account): per-row time on AWS = our CPU per row
(scaled to the Lambda's CPU share of its memory) + the calls per row x an assumed latency per
call (LATENCY_MS; PESSIMISM x for the pessimistic column). Counts come from the run and the ASL,
prices from PRICES (each with its source).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
import yaml  # noqa: E402

from benchmarks.moto_env import FreshAccount, all_accepted, csv_text, neutralise_transaction_backup  # noqa: E402

CHILD_HANDLER = "paylib.batch_map:ingest_batch"  # what a Distributed Map child runs (module:function)
CHILD_FUNCTION = "batch_map_ingestion"  # the Lambda function the children invoke (memory from its function.yaml)
SINGLE_FUNCTION = "batch_ingestion"  # the single-function path's Lambda
ASL = ROOT / "functions" / "batch_ingestion.asl.json"
MODEL_ENVIRONMENTS = ("dev", "staging", "prod")
MODEL_ROWS = (1_000_000, 10_000_000, 100_000_000)
LAMBDA_TIMEOUT_S = 900
NOMINAL_MARGIN, PESSIMISTIC_MARGIN = 3.0, 2.0  # the single path at the threshold: timeout / time at least this
MIB = 2**20

# ---------------------------------------------------------------- prices and assumptions

PRICES_AS_OF = "us-east-1 on-demand list prices as the AWS pricing pages state them (checked from stored copies, November 2026)"


@dataclass(frozen=True)
class Price:
    usd: float
    per: float  # units the price is quoted for
    source: str

    def of(self, units: float) -> float:
        return units * self.usd / self.per


PRICES = {
    "sfn_transition": Price(0.025, 1_000, "aws.amazon.com/step-functions/pricing: Standard, per 1,000 state transitions"),
    "express_request": Price(1.00, 1_000_000, "aws.amazon.com/step-functions/pricing: Express, per 1 M requests"),
    "express_gb_s": Price(0.00001667, 1, "aws.amazon.com/step-functions/pricing: Express duration, first tier, per GB-s"),
    "lambda_gb_s": Price(0.0000133334, 1, "aws.amazon.com/lambda/pricing: arm64, first tier, per GB-s"),
    "lambda_request": Price(0.20, 1_000_000, "aws.amazon.com/lambda/pricing: per 1 M requests"),
    "ddb_wru": Price(0.625, 1_000_000, "aws.amazon.com/dynamodb/pricing/on-demand: per 1 M write request units"),
    "ddb_rru": Price(0.125, 1_000_000, "aws.amazon.com/dynamodb/pricing/on-demand: per 1 M read request units"),
    "s3_put": Price(0.005, 1_000, "aws.amazon.com/s3/pricing: S3 Standard PUT, COPY, POST, LIST per 1,000"),
    "s3_get": Price(0.0004, 1_000, "aws.amazon.com/s3/pricing: S3 Standard GET, SELECT per 1,000"),
    "sqs_request": Price(0.40, 1_000_000, "aws.amazon.com/sqs/pricing: standard queue, per 1 M requests (64 KB chunks)"),
}

# Assumed AWS latency per call, same region, warm connection (not measurable offline). The
# pessimistic column multiplies them by PESSIMISM and our CPU by CPU_PESSIMISM.
LATENCY_MS = {"TransactWriteItems": 25.0, "BatchGetItem": 10.0, "Query": 10.0, "GetItem": 6.0, "PutItem": 8.0,
              "UpdateItem": 8.0, "DeleteItem": 8.0, "SendMessage": 15.0, "GetObject": 30.0, "PutObject": 40.0,
              "DeleteObject": 30.0, "GetSecretValue": 30.0}
DEFAULT_LATENCY_MS = 20.0
PESSIMISM, CPU_PESSIMISM = 3.0, 1.5
LAMBDA_FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, a proportional share below
CHILD_START_S = 0.25  # Express child start + Lambda invoke (warm), per child; the pessimistic column doubles it
EXPRESS_BILLED_MB = 64  # a child's state (one batch, MaxInputBytesPerBatch 200 KB) fits the smallest 64 MB chunk
EXPRESS_ROUNDING_S = 0.1
PARALLEL_OPERATIONS = {"Query"}  # customer histories are read HISTORY_READERS at a time (paylib.batch)

# ---------------------------------------------------------------- metering AWS calls


def dynamo_size(value: Any) -> int:
    """Bytes an attribute value counts for in DynamoDB's item size (names are added by the caller)."""
    kind, inner = next(iter(value.items()))
    if kind in ("S", "B"):
        return len(inner.encode("utf-8") if isinstance(inner, str) else inner)
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "").lstrip("0")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + dynamo_size(item) + 1 for name, item in inner.items())
    if kind == "L":
        return 3 + sum(dynamo_size(item) + 1 for item in inner)
    return sum(len(str(item)) for item in inner)  # sets


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + dynamo_size(value) for name, value in item.items())


def write_units(item: dict[str, Any], transactional: bool, indexes: int) -> float:
    """WRU of one Put: 1 per KB (2 in a transaction) on the table, 1 per KB on each index the
    item appears in (every index projects ALL)."""
    kilobytes = math.ceil(item_size(item) / 1024)
    return kilobytes * (2 if transactional else 1) + kilobytes * indexes


def indexes_of(table_name: str) -> int:
    """Global secondary indexes of a table, from the templates' table specs (every index's keys are
    on every item written to that table here)."""
    return len(index_names(table_name))


def index_names(table_name: str) -> list[str]:
    from templates_src.data import TABLES
    return next(([index.name for index in spec.indexes] for spec in TABLES if table_name.endswith("-" + spec.purpose)), [])


def target_write_units(operation: str, params: dict[str, Any]) -> dict[str, float]:
    """Write units per table (its purpose) and per index ("purpose/index") of one call: what warm
    throughput is set per (templates_src/batch_writes.py)."""
    puts = ([(action["Put"], True) for action in params["TransactItems"] if "Put" in action]
            if operation == "TransactWriteItems" else [(params, False)] if operation == "PutItem" else [])
    units: Counter[str] = Counter()
    for put, transactional in puts:
        purpose = put["TableName"].split("-", 2)[-1]
        units[purpose] += write_units(put["Item"], transactional, 0)
        for index in index_names(put["TableName"]):
            units[f"{purpose}/{index}"] += write_units(put["Item"], False, 0)
    return dict(units)


@dataclass
class Meter:
    """Every AWS call of a run: counts per operation and the billable units they consume."""

    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)  # write units per table and index

    def record(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        self.calls[operation] += 1
        for unit, amount in billable_units(operation, params, response).items():
            self.units[unit] += amount
        self.writes.update(target_write_units(operation, params))


def _dynamo_units(operation: str, params: dict[str, Any], response: dict[str, Any]) -> dict[str, float]:
    if operation == "TransactWriteItems":
        return {"wru": sum(write_units(action["Put"]["Item"], True, indexes_of(action["Put"]["TableName"]))
                           if "Put" in action else 2 for action in params["TransactItems"])}
    if operation == "BatchGetItem":  # items under 4 KB: 1 RRU per key read consistently, found or not
        return {"rru": sum(len(table["Keys"]) * (1 if table.get("ConsistentRead") else 0.5)
                           for table in params["RequestItems"].values())}
    if operation == "Query":  # index reads are eventually consistent: 0.5 RRU per 4 KB returned, at least 0.5
        returned = sum(item_size(item) for item in response.get("Items", []))
        return {"rru": 0.5 * max(1, math.ceil(returned / 4096))}
    if operation == "GetItem":
        return {"rru": 1 if params.get("ConsistentRead") else 0.5}
    if operation == "PutItem":
        return {"wru": write_units(params["Item"], False, indexes_of(params["TableName"]))}
    if operation in ("UpdateItem", "DeleteItem"):
        return {"wru": 1}  # status and lease items are well under 1 KB
    return {}


def billable_units(operation: str, params: dict[str, Any], response: dict[str, Any]) -> dict[str, float]:
    if operation == "SendMessage":
        return {"sqs": math.ceil(len(params["MessageBody"].encode("utf-8")) / 65536)}
    if operation == "GetObject":
        return {"s3_get": 1}
    if operation in ("PutObject", "ListObjectsV2", "ListObjectVersions"):
        return {"s3_put": 1}
    return _dynamo_units(operation, params, response)


@dataclass
class Probe:
    """Installed once: meters every botocore call and times moto's share of each."""

    meter: Meter = field(default_factory=Meter)
    moto_seconds: float = 0.0
    cancelled: int = 0

    def install(self) -> None:
        import botocore.client
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.dynamodb.models import DynamoDBBackend
        probe, make_call, stub, transact = self, botocore.client.BaseClient._make_api_call, BotocoreStubber.__call__, \
            DynamoDBBackend.transact_write_items

        def metered(client: Any, operation: str, params: dict[str, Any]) -> Any:
            response = make_call(client, operation, params)
            probe.meter.record(operation, params, response)
            return response

        def timed(stubber: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return stub(stubber, *args, **kwargs)
            finally:
                probe.moto_seconds += time.perf_counter() - started

        def counted(backend: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return transact(backend, *args, **kwargs)
            except Exception:
                probe.cancelled += 1
                raise

        botocore.client.BaseClient._make_api_call = metered
        BotocoreStubber.__call__ = timed
        DynamoDBBackend.transact_write_items = counted
        neutralise_transaction_backup()
        from paylib import batch
        batch.ThreadPoolExecutor = InOrder  # type: ignore[misc,assignment]

    def reset(self) -> None:
        self.meter, self.moto_seconds = Meter(), 0.0


class InOrder:
    """ThreadPoolExecutor's `map` in the calling thread: the history reads' time inside moto then
    adds up to wall time (threads would count it several times over). The model puts the
    parallelism back: Query latency / HISTORY_READERS."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, function: Callable[[Any], Any], items: Any) -> Any:
        return map(function, items)


# ---------------------------------------------------------------- the workload


def child_handler() -> Callable[..., dict[str, Any]]:
    import importlib
    module, name = CHILD_HANDLER.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass
class Run:
    rows: int
    seconds: float
    moto_seconds: float
    meter: Meter
    file_bytes: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def cpu_per_row_s(self) -> float:
        """Our code and botocore per row, moto's share removed."""
        return (self.seconds - self.moto_seconds) / self.rows


Ingestion = Callable[[], dict[str, Any]]  # runs one path on an object already uploaded; returns the counts


def single_path(account: FreshAccount, text: str) -> Ingestion:
    from paylib import batch
    key, version_id = account.upload(text)

    def ingest() -> dict[str, Any]:
        report = batch.ingest(os.environ["BATCH_BUCKET"], key, uuid.uuid4().hex, version_id, time.monotonic() + 3600)
        assert report is not None
        return dict(report["counts"])
    return ingest


def child_batch(account: FreshAccount, text: str) -> Ingestion:
    """The map's input for one batch: the rows as ItemReader/ItemSelector pass them (as the tests
    model them), JSON round-tripped."""
    from tests.functions.test_batch_map import map_items
    key, _ = account.upload(text)
    event = json.loads(json.dumps({
        "BatchInput": {"batch_id": uuid.uuid4().hex, "bucket": os.environ["BATCH_BUCKET"], "key": key,
                       "execution_arn": "arn:aws:states:eu-west-1:123456789012:execution:bench:run"},
        "Items": map_items(text)}))
    return lambda: dict(child_handler()(event)["counts"])


def measure(probe: Probe, path: Callable[[FreshAccount, str], Ingestion], rows: int, seed: int) -> Run:
    """One timed run on a fresh account; every row must become exactly one accepted payment."""
    text = csv_text(rows, seed)
    with FreshAccount() as account:
        ingest = path(account, text)
        probe.reset()
        started = time.perf_counter()
        counts = ingest()
        seconds = time.perf_counter() - started
        meter, moto_seconds = probe.meter, probe.moto_seconds
        probe.reset()
    if counts != all_accepted(rows) or probe.cancelled:
        raise SystemExit(f"benchmark run invalid: counts {counts}, cancelled transactions {probe.cancelled}")
    return Run(rows, seconds, moto_seconds, meter, len(text.encode("utf-8")))


def peak_memory_mib(path: Callable[[FreshAccount, str], Ingestion], rows: int, seed: int,
                    history_customers: int | None = None) -> tuple[float, float]:
    """(file MiB, MiB the ingestion needed at its peak beyond what moto keeps afterwards: the
    stored items, messages and report live in this process because moto emulates AWS in memory).
    `history_customers` caps paylib.batch's history cache for the run (default: as shipped)."""
    from paylib import batch
    text = csv_text(rows, seed)
    shipped = batch.HISTORY_CUSTOMERS
    batch.HISTORY_CUSTOMERS = history_customers or shipped
    with FreshAccount() as account:
        ingest = path(account, text)  # the upload is moto's memory, not the ingestion's
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        ingest()
        end, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    batch.HISTORY_CUSTOMERS = shipped
    return len(text.encode("utf-8")) / MIB, (peak - start - max(0, end - start)) / MIB

# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class RowCost:
    """One row on AWS, from a measured run: our CPU, the calls and the billable units per row
    (a run's fixed calls, such as the status item or the secret, spread over its rows)."""

    cpu_s: float
    calls: dict[str, float]
    units: dict[str, float]

    @classmethod
    def of(cls, run: Run) -> RowCost:
        return cls(run.cpu_per_row_s, {op: n / run.rows for op, n in run.meter.calls.items()},
                   {unit: n / run.rows for unit, n in run.meter.units.items()})

    def seconds(self, memory_mb: int, pessimistic: bool = False) -> float:
        """Per-row time on AWS: our CPU at the Lambda's CPU share, plus each call's assumed latency
        (histories are read HISTORY_READERS at a time)."""
        from paylib.batch import HISTORY_READERS
        cpu = self.cpu_s * max(1.0, LAMBDA_FULL_VCPU_MB / memory_mb) * (CPU_PESSIMISM if pessimistic else 1.0)
        latency = sum(per_row * LATENCY_MS.get(op, DEFAULT_LATENCY_MS) / 1000 / (HISTORY_READERS if op in PARALLEL_OPERATIONS else 1)
                      for op, per_row in self.calls.items())
        return cpu + latency * (PESSIMISM if pessimistic else 1.0)


def states_visited(asl: dict[str, Any], distributed: bool) -> list[str]:
    """The parent's states of a successful run, in order: at a Choice the first rule where it
    leads to the Distributed Map or to Succeed (else the Default)."""
    states, name, visited = asl["States"], asl["StartAt"], []
    while name:
        visited.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            wanted = [rule["Next"] for rule in state["Choices"]
                      if states[rule["Next"]]["Type"] in (("Map",) if distributed else ()) + ("Succeed",)]
            name = wanted[0] if wanted else state["Default"]
        else:
            name = None if state.get("End") or state["Type"] in ("Succeed", "Fail") else state["Next"]
    return visited


@dataclass(frozen=True)
class Environment:
    name: str
    batch_rows: int
    max_concurrency: int
    threshold_bytes: int

    @classmethod
    def load(cls, name: str) -> Environment:
        batch = yaml.safe_load((ROOT / "parameters" / f"{name}.yaml").read_text(encoding="utf-8"))["batch"]
        return cls(name, batch["batch_rows"], batch["max_concurrency"], batch["distributed_threshold_bytes"])


def function_memory_mb(function: str) -> int:
    return int(yaml.safe_load((ROOT / "functions" / function / "function.yaml").read_text(encoding="utf-8"))["memory_mb"])


@dataclass(frozen=True)
class MapModel:
    """Wall time and cost of the distributed path for one environment, from a child's RowCost."""

    env: Environment
    row: RowCost
    memory_mb: int
    parent_transitions: int  # per run, from the ASL; plus one per child started

    def child_seconds(self, pessimistic: bool = False) -> float:
        start = CHILD_START_S * (2 if pessimistic else 1)
        return start + self.env.batch_rows * self.row.seconds(self.memory_mb, pessimistic)

    def children(self, rows: int) -> int:
        return math.ceil(rows / self.env.batch_rows)

    def wall_seconds(self, rows: int, pessimistic: bool = False) -> float:
        """Waves of max_concurrency children, each wave as long as one child."""
        return math.ceil(self.children(rows) / self.env.max_concurrency) * self.child_seconds(pessimistic)

    def cost_lines(self, rows: int = 1_000_000) -> list[tuple[str, str, float]]:
        """(item, formula, USD) for `rows` rows."""
        children, child_s = self.children(rows), self.child_seconds()
        lambda_s = child_s - CHILD_START_S
        express_s = math.ceil(child_s / EXPRESS_ROUNDING_S) * EXPRESS_ROUNDING_S
        gb = self.memory_mb / 1024
        units = self.row.units
        wru, rru, sqs = rows * units.get("wru", 0), rows * units.get("rru", 0), rows * units.get("sqs", 0)
        transitions = self.parent_transitions + children
        return [
            ("Step Functions Standard transitions", f"({self.parent_transitions} + {children:,} children) x "
             f"${PRICES['sfn_transition'].usd} / 1,000", PRICES["sfn_transition"].of(transitions)),
            ("Express children: requests + duration", f"{children:,} x $1 / 1 M + {children:,} x {express_s:.1f} s x "
             f"{EXPRESS_BILLED_MB / 1024} GB x ${PRICES['express_gb_s'].usd}",
             PRICES["express_request"].of(children) + PRICES["express_gb_s"].of(children * express_s * EXPRESS_BILLED_MB / 1024)),
            (f"Lambda {CHILD_FUNCTION} (arm64, {self.memory_mb} MB)", f"{children:,} x {lambda_s:.1f} s x {gb:g} GB x "
             f"${PRICES['lambda_gb_s'].usd} + {children + 1:,} x $0.20 / 1 M",
             PRICES["lambda_gb_s"].of(children * lambda_s * gb) + PRICES["lambda_request"].of(children + 1)),
            ("DynamoDB on-demand writes", f"{wru:,.0f} WRU x $0.625 / 1 M", PRICES["ddb_wru"].of(wru)),
            ("DynamoDB on-demand reads", f"{rru:,.0f} RRU x $0.125 / 1 M", PRICES["ddb_rru"].of(rru)),
            ("S3: ItemReader GET + ResultWriter PUT + Report GET per child (bound), report PUT",
             f"{children:,} x 2 x $0.0004 / 1,000 + ({children:,} + 1) x $0.005 / 1,000",
             PRICES["s3_get"].of(2 * children) + PRICES["s3_put"].of(children + 1)),
            ("SQS settlement messages", f"{sqs:,.0f} x $0.40 / 1 M", PRICES["sqs_request"].of(sqs)),
        ]


def recommended_threshold(single: RowCost, memory_mb: int, bytes_per_row: float) -> int:
    """The largest whole number of MiB (at least 1) the single path ingests with NOMINAL_MARGIN
    (assumed latencies) and PESSIMISTIC_MARGIN (pessimistic ones) inside its timeout."""
    rows = min(LAMBDA_TIMEOUT_S / NOMINAL_MARGIN / single.seconds(memory_mb),
               LAMBDA_TIMEOUT_S / PESSIMISTIC_MARGIN / single.seconds(memory_mb, pessimistic=True))
    return max(1, math.floor(rows * bytes_per_row / MIB)) * MIB

# ---------------------------------------------------------------- the report


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def measured_section(child: Run, single: Run) -> list[str]:
    lines = ["| path (moto, this machine) | rows | rows/s | moto's share of the time | our CPU per row | AWS calls per 100 rows |",
             "|---|---|---|---|---|---|"]
    for name, run in ((f"one child batch (`{CHILD_HANDLER}`)", child), ("single function (`paylib.batch.ingest`)", single)):
        calls = ", ".join(f"{op} {100 * n / run.rows:.1f}" for op, n in sorted(run.meter.calls.items()))
        lines.append(f"| {name} | {run.rows:,} | {run.rows_per_s:,.0f} | {run.moto_seconds / run.seconds:.0%} | "
                     f"{1000 * run.cpu_per_row_s:.2f} ms | {calls} |")
    lines.append("")
    lines.append(f"Child / single rows/s in this run: **{child.rows_per_s / single.rows_per_s:.2f}** (our CPU per row: "
                 f"{child.cpu_per_row_s / single.cpu_per_row_s:.2f}).")
    return lines


def memory_section(memory: list[tuple[str, int, float, float]]) -> list[str]:
    lines = ["| run | rows | file MiB | working MiB at peak (beyond what moto keeps) |", "|---|---|---|---|"]
    for name, rows, file_mib, working_mib in memory:
        lines.append(f"| {name} | {rows:,} | {file_mib:.2f} | {working_mib:.2f} |")
    return lines


def model_section(child: RowCost, single: RowCost, envs: list[Environment], child_mb: int, single_mb: int,
                  transitions: int) -> list[str]:
    latency = ", ".join(f"{op} {ms:g} ms" for op, ms in LATENCY_MS.items())
    lines = [f"Per-row time on AWS = our CPU per row x {LAMBDA_FULL_VCPU_MB} / memory MB (Lambda's CPU share; same core speed "
             f"assumed) + calls per row x assumed latency ({latency}; others {DEFAULT_LATENCY_MS:g} ms; Query / "
             f"HISTORY_READERS in parallel). Pessimistic: latency x {PESSIMISM:g}, CPU x {CPU_PESSIMISM:g}, child start "
             f"x 2. Child start (Express + invoke): {CHILD_START_S} s.", "",
             f"- child ({child_mb} MB): {1000 * child.seconds(child_mb):.2f} ms per row "
             f"(pessimistic {1000 * child.seconds(child_mb, True):.2f}), of which our CPU "
             f"{1000 * child.cpu_s * max(1.0, LAMBDA_FULL_VCPU_MB / child_mb):.2f} ms",
             f"- single function ({single_mb} MB): {1000 * single.seconds(single_mb):.2f} ms per row "
             f"(pessimistic {1000 * single.seconds(single_mb, True):.2f})", "",
             "Wall time of the distributed path = ceil(ceil(N / batch_rows) / max_concurrency) x (child start + "
             "batch_rows x per-row time); nominal (pessimistic):", "",
             "| N rows | " + " | ".join(f"{env.name} (c = {env.max_concurrency})" for env in envs) + " |",
             "|---|" + "---|" * len(envs)]
    models = [MapModel(env, child, child_mb, transitions) for env in envs]
    for rows in MODEL_ROWS:
        cells = [f"{_duration(model.wall_seconds(rows))} ({_duration(model.wall_seconds(rows, True))})" for model in models]
        lines.append(f"| {rows // 1_000_000} M | " + " | ".join(cells) + " |")
    return lines


def cost_section(model: MapModel) -> list[str]:
    lines = [f"| item (per 1 M rows, {model.env.batch_rows} rows per child) | formula | USD |", "|---|---|---|"]
    total = 0.0
    for item, formula, usd in model.cost_lines():
        lines.append(f"| {item} | {formula} | {usd:.3f} |")
        total += usd
    lines.append(f"| **total** | | **{total:.2f}** |")
    lines += ["", f"Prices: {PRICES_AS_OF}; " + "; ".join(f"{name}: {price.source}" for name, price in PRICES.items()) + "."]
    return lines


def threshold_section(single: RowCost, envs: list[Environment], memory_mb: int, bytes_per_row: float) -> list[str]:
    lines = ["| environment | threshold | rows at it | single path: nominal (margin) | pessimistic (margin) |", "|---|---|---|---|---|"]
    for env in envs:
        rows = env.threshold_bytes / bytes_per_row
        nominal, pessimistic = rows * single.seconds(memory_mb), rows * single.seconds(memory_mb, True)
        lines.append(f"| {env.name} | {env.threshold_bytes / MIB:g} MiB | {rows:,.0f} | {_duration(nominal)} "
                     f"({LAMBDA_TIMEOUT_S / nominal:.1f}x) | {_duration(pessimistic)} ({LAMBDA_TIMEOUT_S / pessimistic:.1f}x) |")
    recommended = recommended_threshold(single, memory_mb, bytes_per_row)
    lines += ["", f"Rows of {bytes_per_row:.0f} bytes. Largest whole-MiB threshold with {NOMINAL_MARGIN:g}x nominal and "
              f"{PESSIMISTIC_MARGIN:g}x pessimistic margin to the {LAMBDA_TIMEOUT_S} s timeout: **{recommended / MIB:g} MiB**."]
    return lines


def write_section(child: Run, child_cost: RowCost, child_mb: int) -> list[str]:
    """The write load one child puts on each table and index, against what templates_src/batch_writes.py states."""
    from templates_src.batch_writes import ROWS_PER_S_PER_CHILD, WRITE_UNITS_PER_CHILD_PER_S, WRITE_UNITS_PER_ROW
    rows_per_s = 1 / child_cost.seconds(child_mb)
    lines = ["| table or index | write units per row, counted | stated (`WRITE_UNITS_PER_ROW`) |", "|---|---|---|"]
    for target in sorted(set(child.meter.writes) | set(WRITE_UNITS_PER_ROW)):
        lines.append(f"| {target} | {child.meter.writes.get(target, 0) / child.rows:.2f} | {WRITE_UNITS_PER_ROW.get(target, '-')} |")
    lines += ["", f"Rows/s of one child at the modelled per-row time: {rows_per_s:,.0f} (stated `ROWS_PER_S_PER_CHILD`: "
              f"{ROWS_PER_S_PER_CHILD}); busiest table or index per child: "
              f"{rows_per_s * max(child.meter.writes.values(), default=0) / child.rows:,.0f} units/s "
              f"(stated `WRITE_UNITS_PER_CHILD_PER_S`: {WRITE_UNITS_PER_CHILD_PER_S:,})."]
    return lines


# ---------------------------------------------------------------- the run

QUICK = {"child_rows": 20, "memory_rows": (20, 60)}
FULL = {"memory_rows": (500, 1_000, 2_000)}  # moto's index Query scans the table: bigger files cost O(N^2) here
SMALL_HISTORY_CACHE = 50  # customers: the memory runs again with a cap the files exceed, to show the rest is flat


def run(quick: bool, seed: int) -> str:
    envs = [Environment.load(name) for name in MODEL_ENVIRONMENTS]
    batch_rows = QUICK["child_rows"] if quick else envs[0].batch_rows
    probe = Probe()
    probe.install()
    child, single = measure(probe, child_batch, batch_rows, seed), measure(probe, single_path, batch_rows, seed + 1)
    sizes = QUICK["memory_rows"] if quick else FULL["memory_rows"]
    memory = [(f"single function{label}", rows, *peak_memory_mib(single_path, rows, seed + 10 + index, cap))
              for label, cap in (("", None), (f", history cache capped at {SMALL_HISTORY_CACHE} customers", SMALL_HISTORY_CACHE))
              for index, rows in enumerate(sizes)]
    memory.append(("one child batch", batch_rows, *peak_memory_mib(child_batch, batch_rows, seed + 20)))
    child_cost, single_cost = RowCost.of(child), RowCost.of(single)
    child_mb, single_mb = function_memory_mb(CHILD_FUNCTION), function_memory_mb(SINGLE_FUNCTION)
    transitions = len(states_visited(json.loads(ASL.read_text(encoding="utf-8")), distributed=True))
    sections = [
        ("Measured", measured_section(child, single)),
        ("Memory", memory_section(memory)),
        ("Model: wall time", model_section(child_cost, single_cost, envs, child_mb, single_mb, transitions)),
        ("Model: cost per million rows", cost_section(MapModel(envs[0], child_cost, child_mb, transitions))),
        ("Model: write throughput per child", write_section(child, child_cost, child_mb)),
        ("The threshold", threshold_section(single_cost, envs, single_mb, single.file_bytes / single.rows)),
    ]
    header = f"<!-- benchmarks/batch_map.py{' --quick' if quick else ''}, seed {seed} -->"
    return "\n".join([header] + [line for title, lines in sections for line in ["", f"#### {title}", "", *lines]]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny inputs: checks the script works, numbers mean nothing")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    os.environ["LOG_LEVEL"] = "WARNING"  # before paylib's logger exists: one INFO line per batch would flood the output
    print(run(arguments.quick, arguments.seed), end="")


if __name__ == "__main__":
    main()
