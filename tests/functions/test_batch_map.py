"""Large batch files through the Distributed Map: the child handler on inputs in the shape the
map sends, the report equal to the single-function path's, exactly once across a retried batch,
a re-upload, and the starter's deterministic execution names."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from paylib import batch, batch_map

from templates_src.function_catalog import load_functions
from templates_src.resources import RESOURCES
from tests.functions.conftest import LambdaContext, load_app
from tests.functions.test_batch import BUCKET, HEADER, report_of, row, upload

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BATCH_ROWS = 7  # small batches put duplicates and rejections on both sides of a boundary
MAP_CHILD = "batch_map_ingestion"  # the function the map's ItemProcessor invokes (tests/layers/test_workflow.py checks)


def map_items(text: str) -> list[dict]:
    """What ItemReader (CSV, header in the first row) and ItemSelector (index, row) make of a file."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader)
    return [{"index": index, "row": dict(zip(header, values, strict=False)) if len(values) >= len(header) else
             dict(zip(header[:len(values)], values, strict=False))}
            for index, values in enumerate(reader)]


def run_map(aws, upload_event: dict, batch_rows: int = BATCH_ROWS, fail_batches: tuple[int, ...] = ()) -> dict:
    """The workflow's distributed path, run locally: children in order over the ItemBatcher's
    batches, their outputs stored as the ResultWriter's COMPACT JSON, then the report step."""
    detail = upload_event["detail"]
    obj = batch.uploaded_object(upload_event)
    text = aws.s3.get_object(Bucket=BUCKET, Key=obj.key)["Body"].read().decode("utf-8")
    items = map_items(text)
    batch_input = {"batch_id": obj.batch_id, "bucket": BUCKET, "key": obj.key, "execution_arn": "arn:aws:states:x"}
    outputs = []
    for number, start in enumerate(range(0, len(items), batch_rows)):
        event = {"BatchInput": batch_input, "Items": items[start:start + batch_rows]}
        if number in fail_batches:  # the workflow's BatchFailed state after the retries
            outputs.append({"failed_batch": {"first_index": event["Items"][0]["index"], "count": len(event["Items"]),
                                             "error": "RuntimeError"}})
        else:
            outputs.append(json.loads(json.dumps(load_app(MAP_CHILD).handler(event, LambdaContext()))))
    prefix = batch_map.results_prefix(obj.batch_id) + "run-1/"
    aws.s3.put_object(Bucket=BUCKET, Key=prefix + "SUCCEEDED_0.json", Body=json.dumps(outputs).encode())
    aws.s3.put_object(Bucket=BUCKET, Key=prefix + "manifest.json", Body=json.dumps(
        {"ResultFiles": {"SUCCEEDED": [{"Key": prefix + "SUCCEEDED_0.json"}], "FAILED": [], "PENDING": []}}).encode())
    state = {"object": {"batch_id": obj.batch_id, "bucket": BUCKET, "key": obj.key, "version": obj.version,
                        "version_id": detail["object"].get("version-id"), "size": obj.size},
             "execution_arn": "arn:aws:states:x", "map": {"ResultWriterDetails": {"Bucket": BUCKET, "Key": prefix + "manifest.json"}}}
    return load_app("batch_ingestion").handler(state, LambdaContext())


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Both paths stamp rows with the same time, so velocity windows and scores match."""
    monkeypatch.setattr(batch.repository, "utc_now", lambda: NOW)


def discard(aws, key: str) -> None:
    """Remove an upload a test did not ingest to the end (it holds card numbers)."""
    for version in aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", []):
        aws.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])


def mixed_file() -> str:
    lines = [HEADER]
    for index in range(40):
        customer = f"cus_eq{index % 3}"
        lines.append(row(ref=f"eq-{index}", customer=customer))
    lines[5] = row(amount="12.50")               # rejected, batch 0
    lines[7] = row(ref="eq-1", customer="cus_eq1")   # duplicate of row 2 across the first boundary
    lines[8] = row(currency="XAU")               # rejected right after the boundary
    lines[30] = row(ref="eq-3", customer="cus_eq0")  # duplicate of row 4, four batches later
    lines[15] = "too,few,columns"
    return "\n".join(lines)


def without_ids(report: dict) -> dict:
    body = {key: value for key, value in report.items() if key not in ("batch_id", "source")}
    body["scored_rows"] = [{k: v for k, v in entry.items() if k != "payment_id"} for entry in body["scored_rows"]]
    return body


def test_the_child_takes_the_map_batch_shape_and_returns_its_part_of_the_report(aws):
    key, event = upload(aws, HEADER + "\n" + row() + "\n" + row(amount="x"))
    discard(aws, key)
    obj = batch.uploaded_object(event)
    items = [{"index": 0, "row": dict(zip(HEADER.split(","), row().split(","), strict=True))},
             {"index": 1, "row": dict(zip(HEADER.split(","), row(amount="x").split(","), strict=True))}]
    batch_event = {"BatchInput": {"batch_id": obj.batch_id, "bucket": BUCKET, "key": obj.key, "execution_arn": "arn:run"},
                   "Items": items}
    result = load_app(MAP_CHILD).handler(batch_event, LambdaContext())
    assert result["first_row"] == 1 and result["rows"] == 2
    assert result["counts"] == {"total": 2, "accepted": 1, "rejected": 1, "duplicate": 0}
    assert result["rejected_rows"] == [{"row": 2, "field": "amount", "code": "invalid_amount"}]
    status = aws.dynamodb.get_item(TableName="payments-test-batch-status", Key={"batch_id": {"S": obj.batch_id}})["Item"]
    assert status["rows_processed"]["N"] == "2" and status["execution_arn"]["S"] == "arn:run"
    with pytest.raises(batch.InvalidEvent):
        load_app(MAP_CHILD).handler({"Items": []}, LambdaContext())
    with pytest.raises(batch.InvalidEvent):  # the single path's function no longer takes map batches
        load_app("batch_ingestion").handler(batch_event, LambdaContext())


def test_the_map_child_needs_only_the_variables_its_uses_give(aws, monkeypatch):
    """Its function.yaml is least privilege: with every other resource variable unset (no
    bucket, no report prefix), a batch still ingests."""
    declared = set(next(f for f in load_functions() if f.name == MAP_CHILD).grants().variables)
    for name in {resource.variable for resource in RESOURCES.values()} - declared:
        monkeypatch.delenv(name, raising=False)
    key, event = upload(aws, HEADER + "\n" + row())
    obj = batch.uploaded_object(event)
    discard(aws, key)
    items = [{"index": 0, "row": dict(zip(HEADER.split(","), row().split(","), strict=True))}]
    result = load_app(MAP_CHILD).handler({"BatchInput": {"batch_id": obj.batch_id, "bucket": BUCKET, "key": key},
                                          "Items": items}, LambdaContext())
    assert result["counts"]["accepted"] == 1
    assert "BATCH_BUCKET" not in declared


def test_distributed_report_equals_the_single_function_report(aws):
    text = mixed_file()
    _, single_event = upload(aws, text)
    single = load_app("batch_ingestion").handler(single_event, LambdaContext())
    single_report = report_of(aws, single)
    # the same rows, another merchant file name: nothing exists yet for it
    text_b = text.replace("eq-", "eqb-")
    _, single_b = upload(aws, text_b)
    expected = report_of(aws, load_app("batch_ingestion").handler(single_b, LambdaContext()))
    text_c = text.replace("eq-", "eqc-")
    key_c, map_event = upload(aws, text_c)
    result = run_map(aws, map_event)
    assert result["complete"] is True
    distributed = report_of(aws, result)
    assert without_ids(distributed) == without_ids(expected)
    assert distributed["counts"]["duplicate"] == 2 and distributed["counts"]["rejected"] == 3
    assert single_report["counts"] == distributed["counts"]
    assert aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key_c).get("Versions", []) == []
    assert aws.s3.list_object_versions(Bucket=BUCKET, Prefix=batch_map.results_prefix(result["batch_id"])).get("Versions", []) == []


def test_a_retried_batch_creates_nothing_twice_and_counts_the_same(aws):
    key, event = upload(aws, "\n".join([HEADER] + [row() for _ in range(12)]))
    obj = batch.uploaded_object(event)
    items = map_items(aws.s3.get_object(Bucket=BUCKET, Key=obj.key)["Body"].read().decode())
    discard(aws, key)
    child = load_app(MAP_CHILD)
    batch_event = {"BatchInput": {"batch_id": obj.batch_id, "bucket": BUCKET, "key": obj.key}, "Items": items}
    before = aws.dynamodb.scan(TableName="payments-test-transactions", Select="COUNT")["Count"]
    first = child.handler(batch_event, LambdaContext())
    after_first = aws.dynamodb.scan(TableName="payments-test-transactions", Select="COUNT")["Count"]
    retried = child.handler(batch_event, LambdaContext())  # the map's Retry, or an Express child run twice
    assert aws.dynamodb.scan(TableName="payments-test-transactions", Select="COUNT")["Count"] == after_first == before + 12
    assert retried["counts"] == first["counts"] == {"total": 12, "accepted": 12, "rejected": 0, "duplicate": 0}


def test_reuploading_a_large_file_creates_no_payment(aws):
    text = "\n".join([HEADER] + [row() for _ in range(10)])
    _, first_event = upload(aws, text)
    assert run_map(aws, first_event)["counts"]["accepted"] == 10
    before = aws.dynamodb.scan(TableName="payments-test-transactions", Select="COUNT")["Count"]
    _, second_event = upload(aws, text, name=None)
    second = run_map(aws, second_event)
    assert second["counts"] == {"total": 10, "accepted": 0, "rejected": 0, "duplicate": 10}
    assert aws.dynamodb.scan(TableName="payments-test-transactions", Select="COUNT")["Count"] == before


def test_a_batch_that_still_fails_is_reported_with_its_rows(aws):
    _, event = upload(aws, "\n".join([HEADER] + [row() for _ in range(10)]))
    result = run_map(aws, event, batch_rows=4, fail_batches=(1,))
    assert result["complete"] is False
    report = report_of(aws, result)
    assert report["counts"] == {"total": 10, "accepted": 6, "rejected": 4, "duplicate": 0}
    assert report["rejected_rows"] == [{"row": n, "field": None, "code": "batch_failed"} for n in range(5, 9)]


def test_failed_child_entries_name_their_rows_from_their_input():
    entry = {"Status": "FAILED", "Error": "States.Timeout",
             "Input": json.dumps({"BatchInput": {}, "Items": [{"index": 500, "row": {}}, {"index": 501, "row": {}}]})}
    assert list(batch_map.batch_results([entry])) == [
        {"failed_batch": {"first_index": 500, "count": 2, "error": "States.Timeout"}}]
    assert batch_map._gaps([(1, 4), (9, 2)]) == [(5, 4)]


def test_the_starter_names_the_execution_after_the_batch(aws, monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("BATCH_STATE_MACHINE", "batch-ingestion")
    states = batch.aws.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/sfn"
    states.create_state_machine(name="payments-test-batch-ingestion", roleArn=role,
                                definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    key, event = upload(aws, HEADER + "\n" + row())
    discard(aws, key)
    starter = load_app("batch_starter")

    class StarterContext(LambdaContext):
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:payments-test-batch-starter"

    first = starter.handler(event, StarterContext())
    expected = batch.uploaded_object(event).batch_id
    assert first["started"] is True and first["execution_arn"].endswith(":" + expected)
    assert len(expected) <= 80 and expected.isalnum()
    starter.handler(event, StarterContext())  # the same event delivered twice
    executions = states.list_executions(stateMachineArn=starter.state_machine_arn(StarterContext()))["executions"]
    assert [execution["name"] for execution in executions] == [expected]
    ignored = dict(event, detail={**event["detail"], "object": {**event["detail"]["object"], "key": "reports/x.json"}})
    assert starter.handler(ignored, StarterContext()) == {"started": False, "reason": "not an incoming CSV"}
