"""Round-trip budget: AWS calls per operation on a warm function, counted with a botocore event
hook (benchmarks/round_trips.py), never timed. Fails when an operation exceeds its budget."""
from __future__ import annotations

import importlib.util

import pytest

from tests.functions.conftest import ROOT


@pytest.fixture(scope="module")
def round_trips(aws):
    spec = importlib.util.spec_from_file_location("round_trips_benchmark", ROOT / "benchmarks" / "round_trips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(round_trips):
    return round_trips.measure()


def test_every_operation_stays_within_its_budget(round_trips, measured):
    print("\n" + round_trips.table(measured))
    assert set(round_trips.BUDGETS) <= set(measured)
    over = {operation: sum(calls.values()) for operation, calls in measured.items()
            if sum(calls.values()) > round_trips.BUDGETS.get(operation, sum(calls.values()))}
    assert over == {}


def test_the_budgets_are_the_issue_targets(round_trips):
    budgets = round_trips.BUDGETS
    assert budgets["POST /payments (approved)"] <= 4 and budgets["POST /payments (replay)"] <= 2
    assert budgets["GET /payments/{id}"] == 1


def test_the_create_path_shape(measured):
    """One consistent read of everything keyed, one history query, one transaction, one send."""
    calls = measured["POST /payments (approved)"]
    assert calls[("dynamodb", "TransactWriteItems")] == 1 and calls[("sqs", "SendMessage")] == 1
    assert ("secretsmanager", "GetSecretValue") not in calls  # warm: the keyring is cached


def test_the_counter_really_counts(round_trips, aws):
    """The hook sees a call made through the functions' clients (a counter that cannot fail
    would make the budget test worthless)."""
    from paylib import aws as paylib_aws
    calls = round_trips.counted(lambda: paylib_aws.client("dynamodb").list_tables())
    assert calls == {("dynamodb", "ListTables"): 1}


def test_a_batch_file_writes_by_conditional_transactions_only(round_trips, measured):
    calls = measured[f"batch file of {round_trips.BATCH_ROWS} rows (whole ingestion)"]
    assert ("dynamodb", "BatchWriteItem") not in calls  # unconditional: never again
    assert calls[("dynamodb", "TransactWriteItems")] <= round_trips.BATCH_ROWS // 30 + 1
    assert calls[("sqs", "SendMessage")] == 1  # one settlement message per chunk
