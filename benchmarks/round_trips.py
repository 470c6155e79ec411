"""AWS round trips per operation of the payment functions: counted, not timed, against moto.

    .venv/bin/python benchmarks/round_trips.py                      # this checkout's functions
    .venv/bin/python benchmarks/round_trips.py --functions DIR      # another copy of functions/
    git archive <commit> functions | tar -x -C /tmp/before && \\
        .venv/bin/python benchmarks/round_trips.py --functions /tmp/before/functions   # "before"

Every botocore API call a warm function makes while it handles one request is counted by a
`before-call` event hook on the function's clients (service and operation). Warm means the
functions have already answered one request of the same kind, so the fingerprint secret is
cached and the clients exist, as on a warm Lambda. The result does not depend on the machine:
the same code makes the same calls.

tests/functions/test_round_trips.py runs `measure()` in CI and fails when an operation makes
more calls than BUDGETS allows. The cold-start benchmark (timing) is benchmarks/cold_start.py.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("dynamodb", "sqs", "secretsmanager", "s3", "sns")

# Calls allowed per operation on a warm function (the issue's targets).
BUDGETS = {
    "POST /payments (approved)": 4,
    "POST /payments (review)": 4,
    "POST /payments (replay)": 2,
    "GET /payments/{id}": 1,
    "GET /payments/{id} (malformed id)": 1,
    # The authorizer reads one KEY item per uncached request, whatever the verdict.
    "authorizer (valid key)": 1,
    "authorizer (revoked key)": 1,
    "authorizer (unknown key)": 1,
}
AUTHORIZER_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/live/GET/payments/pay_1"


class CallCounter:
    """Counts botocore calls per (service, operation) on every client of paylib.aws."""

    def __init__(self):
        self.calls: collections.Counter = collections.Counter()

    def __call__(self, model, **kwargs):
        self.calls[(model.service_model.service_name, model.name)] += 1

    def attach(self) -> CallCounter:
        from paylib import aws
        for service in SERVICES:
            aws.client(service).meta.events.register("before-call", self)
        return self

    def detach(self) -> None:
        from paylib import aws
        for service in SERVICES:
            aws.client(service).meta.events.unregister("before-call", self)


def counted(action) -> collections.Counter:
    counter = CallCounter().attach()
    try:
        action()
    finally:
        counter.detach()
    return counter.calls


def load_app(functions: Path, name: str):
    module_name = f"round_trips_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, functions / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _post(app, body: dict, key: str) -> dict:
    from tests.functions.conftest import LambdaContext, api_event
    answer = app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": key}), LambdaContext())
    assert answer["statusCode"] == 201, answer
    return json.loads(answer["body"])


def _get(app, payment_id: str) -> int:
    from tests.functions.conftest import LambdaContext, api_event
    event = api_event("GET", "/payments/{payment_id}", path_parameters={"payment_id": payment_id})
    return app.handler(event, LambdaContext())["statusCode"]


def measure(functions: Path = ROOT / "functions") -> dict[str, collections.Counter]:
    """Calls per operation; the tables, queue and secret must exist (moto or a test session)."""
    from tests.functions.conftest import payment_body
    api = load_app(functions, "payment_api")
    warm = _post(api, payment_body(), f"warm-{uuid.uuid4()}")  # secret read, clients created
    _get(api, warm["payment_id"])
    approved_body, key = payment_body(), f"rt-{uuid.uuid4()}"
    results: dict[str, collections.Counter] = {}
    created = {}
    results["POST /payments (approved)"] = counted(lambda: created.update(_post(api, approved_body, key)))
    assert created["status"] == "approved", created
    results["POST /payments (replay)"] = counted(lambda: _post(api, approved_body, key))
    results["GET /payments/{id}"] = counted(lambda: _get(api, created["payment_id"]))
    results["GET /payments/{id} (malformed id)"] = counted(lambda: _get(api, "pay_not-an-id"))
    review = {}
    results["POST /payments (review)"] = counted(
        lambda: review.update(_post(api, payment_body(amount=2_000_000), f"rt-{uuid.uuid4()}")))
    assert review["status"] == "review", review
    results[f"batch file of {BATCH_ROWS} rows (whole ingestion)"] = counted(lambda: _ingest(functions, BATCH_ROWS))
    results.update(_authorizer_calls(functions))
    return results


def _authorizer_calls(functions: Path) -> dict[str, collections.Counter]:
    """One request per verdict on a warm authorizer (pepper cached, client created)."""
    import boto3
    from paylib import merchants

    from tests.functions.conftest import LambdaContext, issue_test_key, put_merchant
    authorizer = load_app(functions, "authorizer")
    dynamodb = boto3.client("dynamodb")
    merchant = put_merchant(dynamodb, merchants.new_merchant_id())
    valid, _ = issue_test_key(dynamodb, merchant)
    revoked, _ = issue_test_key(dynamodb, merchant, revoked=True)
    unknown = merchants.new_secret_key("test")

    def authorize(secret_key: str) -> None:
        event = {"type": "REQUEST", "methodArn": AUTHORIZER_ARN, "headers": {"Authorization": f"Bearer {secret_key}"}}
        try:
            authorizer.handler(event, LambdaContext())
        except Exception as error:  # "Unauthorized" is the 401 answer, not a failure
            assert str(error) == "Unauthorized", error
    authorize(valid)  # warm
    return {"authorizer (valid key)": counted(lambda: authorize(valid)),
            "authorizer (revoked key)": counted(lambda: authorize(revoked)),
            "authorizer (unknown key)": counted(lambda: authorize(unknown))}


BATCH_ROWS = 100


def _ingest(functions: Path, rows: int) -> None:
    """One file of `rows` valid rows, distinct customers and cards (the most reads per row)."""
    import boto3

    from tests.functions.conftest import LambdaContext, batch_key, fresh_card
    header = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year"
    lines = [header] + [f"rt-{index},cus_rt_{uuid.uuid4().hex[:10]},1000,EUR,{fresh_card()},12,2031" for index in range(rows)]
    key = batch_key(f"round-trips-{uuid.uuid4().hex}")
    bucket = "payments-test-batch"
    version = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())["VersionId"]
    event = {"detail": {"bucket": {"name": bucket}, "object": {"key": key, "version-id": version, "sequencer": key}}}
    result = load_app(functions, "batch_ingestion").handler(event, LambdaContext())
    assert result["counts"]["accepted"] == rows, result


def table(results: dict[str, collections.Counter]) -> str:
    lines = [f"{'operation':<44} {'calls':>5} {'budget':>6}  calls by service:operation", "-" * 110]
    for operation, calls in results.items():
        detail = ", ".join(f"{service}:{name} x{count}" for (service, name), count in sorted(calls.items()))
        budget = BUDGETS.get(operation, "")
        lines.append(f"{operation:<44} {sum(calls.values()):>5} {budget:>6}  {detail}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=Path, default=ROOT / "functions", help="a functions/ directory")
    arguments = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.functions.conftest import create_resources  # sets the test environment variables
    sys.path.insert(0, str(arguments.functions.resolve()))  # its paylib, not this checkout's
    import logging
    logging.disable(logging.INFO)
    from moto import mock_aws
    with mock_aws():
        create_resources()
        results = measure(arguments.functions.resolve())
    print(table(results))
    over = [operation for operation, calls in results.items() if sum(calls.values()) > BUDGETS.get(operation, 10**9)]
    if over:
        print("over budget: " + ", ".join(over))
        sys.exit(1)


if __name__ == "__main__":
    main()
