"""Batch CSV ingestion: one payment per valid row, a JSON report, exactly once.

File format (UTF-8, optional BOM, RFC 4180 quoting, header row required, any column order):
    merchant_reference, customer_id, amount, currency, card_number, exp_month, exp_year
`amount` is an integer in minor units; unknown or missing columns reject the whole file.
Rows are numbered from 1 after the header (quoted newlines do not shift the numbering).

Design decisions:
- Streaming: the object is read through a text wrapper over the S3 stream, one CSV record at a
  time, in chunks of CHUNK_ROWS; memory does not depend on the file size (the report keeps one
  small entry per rejected row, never a value).
- Identity: a row's payment id is an HMAC of (customer_id, merchant_reference). The same row in
  another upload, or twice in one file, maps to the same payment and is counted as duplicate.
- Exactly once without a write per row: per chunk, one BatchGetItem (consistent) finds the ids
  that exist, and one BatchWriteItem per 25 new items creates the rest, under an ingestion lease
  (a conditional item in the batch status table, renewed per chunk) so no other ingestion can
  create the same ids between the read and the write. API payments use a different id
  namespace and are never created here. A conditional put per row would be exact too but costs
  a request per row, which is the naive design the benchmark measures against.
- Resumable: an item created by this batch for this row number is recognised on a re-run
  (duplicate event delivery, crash) and counted as accepted, not duplicate, and re-sent to
  settlement if still approved (settlement is idempotent).
- Approved payments of a chunk go to the settlement queue in one message.
- Card data: the uploaded object holds card numbers, so it is deleted (the exact version) once
  the report is written; the report holds row numbers, fields and codes only.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Optional

from . import aws, fraud, keys, payments, repository
from .errors import ApiError
from .observability import MetricUnit, logger, metrics
from .validation import parse_payment_request

COLUMNS = ("merchant_reference", "customer_id", "amount", "currency", "card_number", "exp_month", "exp_year")
CHUNK_ROWS = 100
WRITE_BATCH = 25
LEASE_KEY = "lease#batch-ingestion"
LEASE_SECONDS = 120
LEASE_WAIT_SECONDS = 1.0
STATUS_TTL_SECONDS = 90 * 24 * 3600
DIGITS = re.compile(r"[0-9]{1,19}")
FIELD_TO_COLUMN = {"card.number": "card_number", "card.exp_month": "exp_month", "card.exp_year": "exp_year",
                   "card": "card_number"}
csv.field_size_limit(64 * 1024)


@dataclass
class Report:
    batch_id: str
    bucket: str
    key: str
    total: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicate: int = 0
    rejected_rows: list = field(default_factory=list)
    file_error: Optional[str] = None

    def reject(self, row: int, column: Optional[str], code: str) -> None:
        self.rejected += 1
        self.rejected_rows.append({"row": row, "field": column, "code": code})

    def as_dict(self) -> dict:
        body = {
            "batch_id": self.batch_id, "source": {"bucket": self.bucket, "key": self.key},
            "counts": {"total": self.total, "accepted": self.accepted, "rejected": self.rejected,
                       "duplicate": self.duplicate},
            "rejected_rows": self.rejected_rows,
        }
        if self.file_error:
            body["file_error"] = self.file_error
        return body


@dataclass(frozen=True)
class Row:
    number: int
    payment_id: str
    item: dict


class ObjectGone(Exception):
    """The uploaded object was deleted before it could be read."""


class LeaseUnavailable(Exception):
    """Another ingestion holds the lease; the invocation fails and is retried by Lambda."""


def batch_id_for(bucket: str, key: str, version: str) -> str:
    return hashlib.sha256(f"{bucket}\x1f{key}\x1f{version}".encode("utf-8")).hexdigest()[:32]


def batch_ref(batch_id: str, row: int) -> str:
    """Which batch and row created a payment (one attribute: items stay small)."""
    return f"{batch_id}#{row}"


def report_key_for(object_key: str, batch_id: str) -> str:
    name = object_key.rsplit("/", 1)[-1]
    stem = name[:-4] if name.lower().endswith(".csv") else name
    return f"reports/{stem}-{batch_id}.json"


# ---------------------------------------------------------------- row validation

def _integer_column(value: str, column: str) -> int:
    if not DIGITS.fullmatch(value):
        code = "invalid_amount" if column == "amount" else "invalid_expiry"
        raise ApiError(400, code, f"{column} must be an integer", column)
    return int(value)


def parse_row(values: dict[str, str], now: datetime):
    """Validate one CSV row with the same rules as the API; raise ApiError naming a column."""
    if not values["merchant_reference"]:
        raise ApiError(400, "missing_field", "merchant_reference is required", "merchant_reference")
    body = {
        "merchant_reference": values["merchant_reference"],
        "customer_id": values["customer_id"],
        "amount": _integer_column(values["amount"], "amount"),
        "currency": values["currency"],
        "card": {"number": values["card_number"],
                 "exp_month": _integer_column(values["exp_month"], "exp_month"),
                 "exp_year": _integer_column(values["exp_year"], "exp_year")},
    }
    return parse_payment_request(body, now)


def build_row(number: int, values: dict[str, str], key: bytes, batch_id: str, now: datetime, created_at: str) -> Row:
    request = parse_row(values, now)
    payment_id = payments.derive_payment_id("batch", f"{request.customer_id}\x1f{request.merchant_reference}", key)
    fingerprint = request.fingerprint(key)
    candidate = fraud.Candidate(payment_id, request.customer_id, fingerprint, request.amount, request.currency)
    # Batch rows are merchant-initiated: amount rules apply, history/velocity are not read per row.
    risk = fraud.score(candidate, None, {})
    item = payments.build_item(request, payment_id, risk, fingerprint, created_at, "batch")
    item["batch_ref"] = batch_ref(batch_id, number)
    return Row(number, payment_id, item)


# ---------------------------------------------------------------- reading the object

def records(stream) -> Iterator[Optional[list[str]]]:
    """CSV records from a byte stream; None for a record the csv module cannot read (an
    oversized field), so one bad record is rejected instead of failing the file. Invalid UTF-8
    and NUL bytes become U+FFFD and fail the row's validation."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader((line.replace("\0", "\ufffd") for line in text), strict=False)
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield None


def _read_header(reader: Iterator[list[str]], report: Report) -> Optional[dict[str, int]]:
    header = next(reader, None)
    while header == []:  # blank lines before the header
        header = next(reader, None)
    if header is None:
        return None
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in names]
    duplicated = len(set(names)) != len(names)
    if unknown or missing or duplicated:
        report.file_error = "invalid_header"
        column = (unknown or missing or ["header"])[0]
        for number, _ in enumerate(reader, start=1):
            report.total += 1
            report.reject(number, column, "invalid_header")
        return None
    return {name: names.index(name) for name in COLUMNS}


# ---------------------------------------------------------------- the lease

class Lease:
    def __init__(self, owner: str):
        self.owner = owner
        self.table = aws.env("BATCH_STATUS_TABLE")
        self.client = aws.client("dynamodb")

    def acquire(self, deadline: float) -> None:
        while True:
            if self._try():
                return
            if time.monotonic() + LEASE_WAIT_SECONDS > deadline:
                raise LeaseUnavailable("another batch ingestion holds the lease")
            time.sleep(LEASE_WAIT_SECONDS)

    def renew(self) -> None:
        if not self._try():
            raise LeaseUnavailable("the ingestion lease was lost")

    def _try(self) -> bool:
        now = int(time.time())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"batch_id": {"S": LEASE_KEY}, "owner": {"S": self.owner},
                      "lease_until": {"N": str(now + LEASE_SECONDS)},
                      "expires_at": {"N": str(now + 24 * 3600)}},
                ConditionExpression="attribute_not_exists(batch_id) OR lease_until < :now OR #owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": self.owner}},
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    def release(self) -> None:
        try:
            self.client.delete_item(
                TableName=self.table, Key={"batch_id": {"S": LEASE_KEY}},
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass


# ---------------------------------------------------------------- writing a chunk

def _existing(payment_ids: list[str]) -> dict[str, dict]:
    client = aws.client("dynamodb")
    table = repository.table_name()
    request = {table: {"Keys": [{"payment_id": {"S": pid}} for pid in payment_ids], "ConsistentRead": True,
                       "ProjectionExpression": "payment_id, batch_ref, #status",
                       "ExpressionAttributeNames": {"#status": "status"}}}
    found: dict[str, dict] = {}
    attempt = 0
    while request:
        answer = client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table, []):
            plain = aws.from_dynamo(item)
            found[plain["payment_id"]] = plain
        request = answer.get("UnprocessedKeys") or {}
        attempt = _backoff(attempt) if request else attempt
    return found


def _write(items: list[dict]) -> None:
    client = aws.client("dynamodb")
    table = repository.table_name()
    for start in range(0, len(items), WRITE_BATCH):
        pending = {table: [{"PutRequest": {"Item": aws.to_dynamo(item)}} for item in items[start:start + WRITE_BATCH]]}
        attempt = 0
        while pending:
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            attempt = _backoff(attempt) if pending else attempt


def _backoff(attempt: int) -> int:
    if attempt >= 8:
        raise RuntimeError("DynamoDB kept returning unprocessed items")
    time.sleep(min(2.0, 0.05 * 2**attempt))
    return attempt + 1


def _commit_chunk(rows: list[Row], report: Report) -> None:
    unique: dict[str, Row] = {}
    for row in rows:
        if row.payment_id in unique:
            report.duplicate += 1
        else:
            unique[row.payment_id] = row
    existing = _existing(list(unique))
    new_items, to_settle = [], []
    for payment_id, row in unique.items():
        stored = existing.get(payment_id)
        if stored is None:
            new_items.append(row.item)
            report.accepted += 1
            if row.item["status"] == "approved":
                to_settle.append(payment_id)
        elif stored.get("batch_ref") == batch_ref(report.batch_id, row.number):
            report.accepted += 1  # written by an earlier run of this very batch
            if stored.get("status") == "approved":
                to_settle.append(payment_id)
        else:
            report.duplicate += 1
    if new_items:
        _write(new_items)
    if to_settle:
        payments.enqueue_for_settlement(to_settle)


# ---------------------------------------------------------------- the whole file

def ingest(bucket: str, key: str, version: str, version_id: Optional[str], deadline: float,
           now: Optional[datetime] = None) -> Optional[dict]:
    """Ingest one uploaded file; return the report (None when this batch was already done)."""
    now = now or repository.utc_now()
    batch_id = batch_id_for(bucket, key, version)
    status = _status(batch_id)
    if status and status.get("state") == "completed":
        logger.info("batch already ingested", extra={"batch_id": batch_id})
        return None
    lease = Lease(f"{batch_id}:{uuid.uuid4().hex}")
    lease.acquire(deadline)
    try:
        status = _status(batch_id)  # a concurrent delivery of the same event may have finished
        if status and status.get("state") == "completed":
            return None
        report = _ingest_locked(bucket, key, version_id, batch_id, lease, now)
    except ObjectGone:
        logger.warning("uploaded object no longer exists; nothing to ingest", extra={"batch_id": batch_id})
        return None
    finally:
        lease.release()
    return report


def _ingest_locked(bucket: str, key: str, version_id: Optional[str], batch_id: str, lease: Lease, now: datetime) -> dict:
    s3 = aws.client("s3")
    report = Report(batch_id, bucket, key)
    _set_status(batch_id, {"state": "processing", "bucket": bucket, "object_key": key})
    get_args = {"Bucket": bucket, "Key": key}
    if version_id:
        get_args["VersionId"] = version_id
    try:
        body = s3.get_object(**get_args)["Body"]
    except s3.exceptions.NoSuchKey:
        raise ObjectGone(key) from None
    except Exception as error:  # NoSuchVersion has no modelled exception class
        if aws.error_code(error) in ("NoSuchKey", "NoSuchVersion"):
            raise ObjectGone(key) from None
        raise
    fingerprint_key = keys.fingerprint_key()
    created_at = repository.iso(now)
    try:
        reader = records(body)
        columns = _read_header(reader, report)
        if columns is not None:
            chunk: list[Row] = []
            for number, values in enumerate(reader, start=1):
                report.total += 1
                row = _row_or_reject(number, values, columns, fingerprint_key, batch_id, now, created_at, report)
                if row is not None:
                    chunk.append(row)
                if len(chunk) >= CHUNK_ROWS:
                    _commit_chunk(chunk, report)
                    lease.renew()
                    chunk = []
            if chunk:
                _commit_chunk(chunk, report)
    finally:
        body.close()
    result = report.as_dict()
    report_key = report_key_for(key, batch_id)
    s3.put_object(Bucket=bucket, Key=report_key, ContentType="application/json",
                  Body=json.dumps(result, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    delete_args = dict(get_args)
    s3.delete_object(**delete_args)  # the upload holds card numbers: it must not outlive ingestion
    _set_status(batch_id, {"state": "completed", "bucket": bucket, "object_key": key, "report_key": report_key,
                           **{f"count_{name}": value for name, value in result["counts"].items()}})
    metrics.add_metric(name="BatchRowsAccepted", unit=MetricUnit.Count, value=report.accepted)
    metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=report.rejected)
    logger.info("batch ingested", extra={"batch_id": batch_id, "counts": result["counts"]})
    return result


def _row_or_reject(number, values, columns, fingerprint_key, batch_id, now, created_at, report) -> Optional[Row]:
    if values is None:
        report.reject(number, None, "malformed_row")
        return None
    if len(values) != len(COLUMNS):
        report.reject(number, None, "wrong_column_count")
        return None
    named = {name: values[index].strip() for name, index in columns.items()}
    try:
        return build_row(number, named, fingerprint_key, batch_id, now, created_at)
    except ApiError as error:
        column = FIELD_TO_COLUMN.get(error.field or "", error.field)
        report.reject(number, column, error.code)
        return None


def _status(batch_id: str) -> Optional[dict]:
    answer = aws.client("dynamodb").get_item(TableName=aws.env("BATCH_STATUS_TABLE"),
                                             Key={"batch_id": {"S": batch_id}}, ConsistentRead=True)
    return aws.from_dynamo(answer["Item"]) if "Item" in answer else None


def _set_status(batch_id: str, values: dict) -> None:
    item = {"batch_id": batch_id, "updated_at": repository.iso(repository.utc_now()),
            "expires_at": int(time.time()) + STATUS_TTL_SECONDS, **values}
    aws.client("dynamodb").put_item(TableName=aws.env("BATCH_STATUS_TABLE"), Item=aws.to_dynamo(item))
