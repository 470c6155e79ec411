"""Batch ingestion of large files through a Step Functions Distributed Map.

The workflow (functions/batch_ingestion.asl.json) reads the CSV itself (ItemReader, header row
first) and hands each child execution one ItemBatcher batch:

    {"BatchInput": {"batch_id", "bucket", "key", "execution_arn"},
     "Items": [{"index": 0, "row": {"merchant_reference": "...", ...}}, ...]}

`index` is `$$.Map.Item.Index` (0-based, the header excluded), so row numbers are `index + 1`,
as in the single-function path. `ingest_batch` runs the rows through exactly the code of that
path (paylib.batch.ingest_rows: the same validation, screening and conditional writes under the
same batch id; the batch_map_ingestion function) and returns the batch's part of the report;
`finish` (the batch_ingestion function's Report step) folds the parts the ResultWriter stored
into the same report and completes the batch like the single path does.

Exactly once, whatever runs twice: a child may run more than once (Express children are
at-least-once, a failed batch is retried, an execution may be redriven); every row is written
by a Put conditional on its payment id, and a payment this batch id wrote for this row number is
recognised and counted as accepted again, so a rerun creates nothing and reports the same.
A batch that still fails after its retries becomes a result naming its rows (the workflow's
catch), and `finish` reports those rows as rejected with code `batch_failed`.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from . import aws, batch, repository
from .observability import logger

FAILED_BATCH = "batch_failed"  # rejection code of rows in a batch that failed after its retries
RESULTS_PREFIX = "results/"
MANIFEST = "manifest.json"

JsonObject = dict[str, Any]


def results_prefix(batch_id: str) -> str:
    """Where the workflow's ResultWriter puts this batch's results (a prefix of its own, so a
    stopped run's files are found without the manifest)."""
    return f"{RESULTS_PREFIX}{batch_id}/"


def _numbered_rows(items: list[JsonObject], keys: list[str]) -> Iterator[tuple[int, list[str] | None]]:
    """(row number, values in header order); a row missing a column is the wrong length."""
    for item in items:
        row: Mapping[str, Any] = item["row"]
        values = [row.get(key) for key in keys]
        yield int(item["index"]) + 1, [str(v) for v in values] if None not in values else []


def ingest_batch(event: JsonObject, now: datetime | None = None) -> JsonObject:
    """One child execution's batch into its part of the report (see the module docstring)."""
    try:
        context: JsonObject = event["BatchInput"]
        items: list[JsonObject] = event["Items"]
        batch_id, bucket, key = context["batch_id"], context["bucket"], context["key"]
    except (TypeError, KeyError):
        raise batch.InvalidEvent("not a Distributed Map batch (BatchInput and Items)") from None
    now = now or repository.utc_now()
    report = batch.Report(batch_id, bucket, key)
    merchant_id, refusal = batch.merchant_refusal(key)
    report.merchant_id = merchant_id
    first_row = int(items[0]["index"]) + 1 if items else 0
    # The header's names, from the fullest row (a row shorter than the header lacks some).
    keys = max((list(item["row"]) for item in items), key=len, default=[])
    problem = batch.header_problem(batch.header_names(keys))
    if refusal is not None or problem is not None:
        report.file_error = refusal or "invalid_header"
        for item in items:
            report.total += 1
            report.reject(int(item["index"]) + 1, None if refusal else problem, report.file_error)
    elif merchant_id is not None:
        columns = {name: batch.header_names(keys).index(name) for name in batch.COLUMNS}
        batch.ingest_rows(_numbered_rows(items, keys), merchant_id, columns, report, now)
    _record_progress(batch_id, report.total, context.get("execution_arn"))
    return {"first_row": first_row, "rows": len(items), **report.as_partial()}


def _record_progress(batch_id: str, rows: int, execution_arn: str | None) -> None:
    """Rows processed so far, on the batch's status item. A retried batch adds its rows again:
    this is progress for people, the report is the exact account."""
    names, values = {"#state": "state"}, {":rows": {"N": str(rows)}, ":processing": {"S": "processing"},
                                          ":now": {"S": repository.iso(repository.utc_now())}}
    update = "ADD rows_processed :rows SET #state = :processing, updated_at = :now"
    if execution_arn:
        update += ", execution_arn = :run"
        values[":run"] = {"S": execution_arn}
    aws.client("dynamodb").update_item(
        TableName=aws.env("BATCH_STATUS_TABLE"), Key={"batch_id": {"S": batch_id}}, UpdateExpression=update,
        ExpressionAttributeNames=names, ExpressionAttributeValues=values)


# ---------------------------------------------------------------- the report of the whole run

def _read_json(bucket: str, key: str) -> Any:
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    try:
        text = body.read().decode("utf-8")
    finally:
        body.close()
    if key.endswith(".jsonl") or (text.lstrip().startswith("{") and "\n{" in text.strip()):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def _result_files(bucket: str, batch_id: str, details: JsonObject | None) -> list[str]:
    """The result files of the run: the manifest's SUCCEEDED and FAILED lists when the map
    finished, else whatever the prefix holds (a map that stopped writes no manifest)."""
    if details and details.get("Key"):
        manifest = _read_json(details.get("Bucket", bucket), details["Key"])
        files = manifest.get("ResultFiles", {})
        return [entry["Key"] for kind in ("SUCCEEDED", "FAILED") for entry in files.get(kind, [])]
    s3, keys = aws.client("s3"), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=results_prefix(batch_id)):
        keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")
                 and not item["Key"].endswith(MANIFEST)]
    return sorted(keys)


def batch_results(entries: list[Any]) -> Iterator[JsonObject]:
    """Each child's result from a result file: the output itself (COMPACT), an entry whose
    Output is the output as a string, or a failed execution (Status FAILED, Input as a string)
    turned into the failed batch its Items name."""
    for entry in entries:
        if isinstance(entry, dict) and ("counts" in entry or "failed_batch" in entry):
            yield entry
        elif isinstance(entry, dict) and entry.get("Output"):
            yield json.loads(entry["Output"])
        elif isinstance(entry, dict) and entry.get("Input"):
            items = json.loads(entry["Input"]).get("Items") or []
            if items:
                yield {"failed_batch": {"first_index": items[0]["index"], "count": len(items),
                                        "error": entry.get("Error") or "States.Failed"}}


def _gaps(covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Row ranges (first, count) between the covered ranges, from row 1."""
    gaps, expected = [], 1
    for first, count in sorted(covered):
        if first > expected:
            gaps.append((expected, first - expected))
        expected = max(expected, first + count)
    return gaps


def finish(event: JsonObject) -> JsonObject:
    """The workflow's last step: every batch's result into the report of the single path, the
    upload and the results deleted, the batch completed. `complete` is False when rows were left
    unprocessed (failed batches, or a map that stopped): they are in the report as batch_failed."""
    upload = event["object"]
    batch_id, bucket, key = upload["batch_id"], upload["bucket"], upload["key"]
    report = batch.Report(batch_id, bucket, key)
    covered: list[tuple[int, int]] = []
    failed: list[tuple[int, int]] = []
    details = (event.get("map") or {}).get("ResultWriterDetails")
    for file_key in _result_files(bucket, batch_id, details):
        for result in batch_results(_read_json(bucket, file_key)):
            if "failed_batch" in result:
                first, count = int(result["failed_batch"]["first_index"]) + 1, int(result["failed_batch"]["count"])
                failed.append((first, count))
            else:
                first, count = int(result["first_row"]), int(result["rows"])
                report.add_partial(result)
            covered.append((first, count))
    failed += _gaps(covered)
    for first, count in failed:
        report.reject_rows(first, count, FAILED_BATCH)
    stopped = "map_error" in event
    if stopped:
        report.file_error = report.file_error or "processing_incomplete"
    upload_args = {"Bucket": bucket, "Key": key, **({"VersionId": upload["version_id"]} if upload.get("version_id") else {})}
    run = {"execution_arn": event["execution_arn"]} if event.get("execution_arn") else {}
    result = batch.complete(report, upload_args, run)
    _delete_results(bucket, batch_id)
    logger.info("batch ingested in batches", extra={"batch_id": batch_id, "counts": result["counts"],
                                                     "failed_batches": len(failed), "map_stopped": stopped})
    return {"batch_id": batch_id, "counts": result["counts"], "complete": not failed and not stopped}


def _delete_results(bucket: str, batch_id: str) -> None:
    """Every version under the run's results prefix: a failed child's entry carries its input rows."""
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=results_prefix(batch_id)):
        versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
        if versions:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]}
                                                                 for v in versions], "Quiet": True})
