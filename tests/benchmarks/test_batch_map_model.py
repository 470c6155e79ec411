"""benchmarks/batch_map.py: the model's arithmetic on tiny inputs, the counts it derives from the
ASL and the item sizes, and the script itself in its quick mode (so it does not rot)."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("batch_map_benchmark", ROOT / "benchmarks" / "batch_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def _model(bench, batch_rows=2, concurrency=3, wru=4.0, rru=1.5, sqs=0.01):
    env = bench.Environment("tiny", batch_rows, concurrency, 1024 * 1024)
    row = bench.RowCost(cpu_s=0.001, calls={"TransactWriteItems": 0.5}, units={"wru": wru, "rru": rru, "sqs": sqs})
    return bench.MapModel(env, row, memory_mb=1769, parent_transitions=6)


def test_per_row_time_is_cpu_at_the_lambda_share_plus_latency_per_call(bench):
    row = bench.RowCost(cpu_s=0.002, calls={"TransactWriteItems": 0.5, "Query": 8.0}, units={})
    latency = 0.5 * bench.LATENCY_MS["TransactWriteItems"] / 1000 + 8.0 * bench.LATENCY_MS["Query"] / 1000 / 8
    assert row.seconds(1769) == pytest.approx(0.002 + latency)          # a full vCPU
    assert row.seconds(884.5) == pytest.approx(0.004 + latency)         # half of one
    assert row.seconds(1769, pessimistic=True) == pytest.approx(0.002 * bench.CPU_PESSIMISM + latency * bench.PESSIMISM)


def test_wall_time_is_waves_of_children(bench):
    model = _model(bench)
    child = bench.CHILD_START_S + 2 * model.row.seconds(1769)
    assert model.children(7) == 4                                        # 2 rows per child, the last one short
    assert model.wall_seconds(7) == pytest.approx(2 * child)             # 4 children, 3 at once: 2 waves


def test_cost_lines_price_each_count_once(bench):
    model = _model(bench)
    lines = {item.split(" (")[0].split(":")[0]: usd for item, _, usd in model.cost_lines(rows=10)}
    children = 5
    assert lines["Step Functions Standard transitions"] == pytest.approx((6 + children) * 0.025 / 1000)
    assert lines["DynamoDB on-demand writes"] == pytest.approx(10 * 4.0 * 0.625 / 1e6)
    assert lines["DynamoDB on-demand reads"] == pytest.approx(10 * 1.5 * 0.125 / 1e6)
    assert lines["SQS settlement messages"] == pytest.approx(10 * 0.01 * 0.40 / 1e6)
    child_s = model.child_seconds()
    express_s = math.ceil(child_s / 0.1) * 0.1
    assert lines["Express children"] == pytest.approx(children * 1.0 / 1e6 + children * express_s * 64 / 1024 * 0.00001667)
    lambda_gb_s = children * (child_s - bench.CHILD_START_S) * 1769 / 1024
    assert lines[f"Lambda {bench.CHILD_FUNCTION}"] == pytest.approx(lambda_gb_s * 0.0000133334 + (children + 1) * 0.20 / 1e6)
    assert lines["S3"] == pytest.approx(2 * children * 0.0004 / 1000 + (children + 1) * 0.005 / 1000)


def test_parent_transitions_come_from_the_workflow_definition(bench):
    asl = json.loads(bench.ASL.read_text(encoding="utf-8"))
    assert bench.states_visited(asl, distributed=True) == ["Prepare", "Route", "IngestInBatches", "Report", "Complete", "Done"]
    assert bench.states_visited(asl, distributed=False) == ["Prepare", "Route", "IngestInOneFunction"]


def test_write_units_follow_item_size_transactions_and_indexes(bench):
    small = {"payment_id": {"S": "p" * 10}, "amount": {"N": "1250"}}
    assert bench.item_size(small) == len("payment_id") + 10 + len("amount") + 3
    large = {"details": {"S": "x" * 1500}}                               # 2 KB rounded up
    assert bench.write_units(small, transactional=True, indexes=2) == 2 + 2
    assert bench.write_units(large, transactional=True, indexes=0) == 4
    assert bench.write_units(large, transactional=False, indexes=2) == 2 + 4
    assert bench.indexes_of("payments-prod-transactions") == 2
    assert bench.indexes_of("payments-prod-velocity") == 0


def test_metered_units_per_operation(bench):
    meter = bench.Meter()
    meter.record("BatchGetItem", {"RequestItems": {"t": {"Keys": [{}, {}, {}], "ConsistentRead": True}}}, {})
    meter.record("Query", {}, {"Items": []})
    meter.record("SendMessage", {"MessageBody": "x" * 70_000}, {})
    meter.record("GetObject", {}, {})
    assert meter.units == Counter({"rru": 3.5, "sqs": 2, "s3_get": 1})
    assert meter.calls == Counter({"BatchGetItem": 1, "Query": 1, "SendMessage": 1, "GetObject": 1})


def test_write_units_are_counted_per_table_and_index(bench):
    meter = bench.Meter()
    payment = {"payment_id": {"S": "p1"}}
    counter = {"counter_key": {"S": "c" * 1500}}                          # 2 KB
    meter.record("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "payments-prod-transactions", "Item": payment}},
        {"Put": {"TableName": "payments-prod-velocity", "Item": counter}}]}, {})
    meter.record("UpdateItem", {"TableName": "payments-prod-batch-status"}, {})
    assert meter.writes == Counter({"transactions": 2, "transactions/by-customer": 1, "transactions/by-status": 1,
                                    "velocity": 4})


def test_recommended_threshold_keeps_both_margins(bench):
    row = bench.RowCost(cpu_s=0.0, calls={"GetItem": 1.0}, units={})   # 6 ms nominal, 18 ms pessimistic per row
    threshold = bench.recommended_threshold(row, 1769, bytes_per_row=64)
    rows = threshold / 64
    assert rows * row.seconds(1769) * bench.NOMINAL_MARGIN <= bench.LAMBDA_TIMEOUT_S
    assert rows * row.seconds(1769, pessimistic=True) * bench.PESSIMISTIC_MARGIN <= bench.LAMBDA_TIMEOUT_S
    one_more = (threshold + bench.MIB) / 64
    assert one_more * row.seconds(1769, pessimistic=True) * bench.PESSIMISTIC_MARGIN > bench.LAMBDA_TIMEOUT_S  # the largest
    assert threshold % bench.MIB == 0


def test_the_script_runs_in_quick_mode():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batch_map.py"), "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for heading in ("#### Measured", "#### Memory", "#### Model: wall time", "#### Model: cost per million rows",
                    "#### Model: write throughput per child", "#### The threshold"):
        assert heading in result.stdout
    # what a child's rows write to each table and index (sizes, not timing) never exceeds what
    # templates_src/batch_writes.py states, which the config sizes max_concurrency with
    section = result.stdout.split("#### Model: write throughput per child")[1].split("####")[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert {target.strip() for target, _, _ in rows} == {"transactions", "transactions/by-customer",
                                                         "transactions/by-status", "velocity"}
    for target, counted, stated in rows:
        assert 0 < float(counted) <= float(stated), target
