"""Batch CSV ingestion: one payment per valid row, a JSON report, exactly once.

Files are uploaded under `incoming/<merchant_id>/<name>.csv`: every row becomes a payment of
that merchant. A file outside a known, active merchant's prefix is not ingested: its report
(`reports/<name>-<batch_id>.json`, or under `reports/<merchant_id>/` as the upload was) counts
every row as rejected with the reason (`no_merchant_prefix`, `unknown_merchant`,
`merchant_suspended`) and the upload is deleted like any other (it holds card numbers).

File format (UTF-8, optional BOM, RFC 4180 quoting, header row required, any column order):
    merchant_reference, customer_id, amount, currency, card_number, exp_month, exp_year
`amount` is an integer in minor units; unknown or missing columns reject the whole file.
Rows are numbered from 1 after the header (quoted newlines do not shift the numbering).

Design decisions:
- Streaming: the object is read through a text wrapper over the S3 stream, one CSV record at a
  time, in chunks of CHUNK_ROWS; memory does not depend on the file size (the report keeps one
  small entry per rejected or risk-scored row, never a card value).
- Identity: a row's payment id is a SHA-256 of (merchant_id, customer_id, merchant_reference),
  no key involved (identity.py): the same row in another upload of the merchant, or twice in
  one file, maps to the same payment and is counted as duplicate, before and after a key
  rotation; another merchant's row of the same names is another payment. (Ids of the versions
  before merchants, which named no merchant, are no longer looked up: such payments belong to
  no merchant.)
- Exactly once by the data, not by the lease: every row is written by a TransactWriteItems Put
  conditional on its payment id not existing, together with the velocity events it adds, each
  counter conditional on the version read. A second worker, a retry or a redelivered event can
  never write a row twice or count it twice, whatever the lease does; a cancelled transaction
  (another writer got there first) is re-read and decided again. The lease (a conditional item
  in the batch status table) is only there so two ingestions do not make each other retry.
- Fraud: rows are scored with the API's rules and counters: velocity per customer and card
  across the file and across API traffic (both count in the same counters), amount rules, and
  the history rules against the customer's recent payments (read once per customer per file,
  kept current with the rows written). Approved rows go to settlement; review and declined
  rows do not. The report counts statuses and lists every row with a non-zero risk.
- Resumable: an item created by this batch for this row number is recognised on a re-run
  (duplicate event delivery, crash) and counted as accepted, not duplicate, and re-sent to
  settlement if still approved (settlement is idempotent).
- Approved payments of a chunk go to the settlement queue in one message.
- Card data: the uploaded object holds card numbers, so it is deleted (the exact version) once
  the report is written; the report holds row numbers, fields, codes and risks only.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from urllib.parse import unquote_plus

from . import aws, dynamo, fraud, identity, keys, merchants, repository, settlement_queue
from .errors import ApiError
from .observability import MetricUnit, logger, metrics
from .shapes import Event, Item, JsonObject
from .validation import PaymentRequest, parse_payment_request

INCOMING, REPORTS = "incoming/", "reports/"
NO_MERCHANT_PREFIX = "no_merchant_prefix"  # the file's refusal when its key names no merchant
COLUMNS = ("merchant_reference", "customer_id", "amount", "currency", "card_number", "exp_month", "exp_year")
CHUNK_ROWS = 100
MAX_CHUNK_ATTEMPTS = 6
HISTORY_READERS = 8
HISTORY_CUSTOMERS = 2000  # customers whose recent payments a file keeps in memory
HISTORY_LENGTH = 50  # as many as repository.customer_history reads
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
    rejected_rows: list[JsonObject] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=lambda: {"approved": 0, "review": 0, "declined": 0})
    scored_rows: list[JsonObject] = field(default_factory=list)
    file_error: str | None = None
    merchant_id: str | None = None

    def reject(self, row: int, column: str | None, code: str) -> None:
        self.rejected += 1
        self.rejected_rows.append({"row": row, "field": column, "code": code})

    def accept(self, row: int, payment: Item) -> None:
        """A payment of this batch (just written, or by an earlier run of it): its risk."""
        self.accepted += 1
        self.statuses[payment["status"]] = self.statuses.get(payment["status"], 0) + 1
        risk = payment["risk"]
        if risk["score"] or payment["status"] != "approved":
            self.scored_rows.append({"row": row, "payment_id": payment["payment_id"], "status": payment["status"],
                                     "risk": {"score": risk["score"], "level": risk["level"], "reasons": risk["reasons"]}})

    def add_partial(self, partial: JsonObject) -> None:
        """Fold in one Distributed Map batch's result (`as_partial` of a child's report)."""
        counts = partial["counts"]
        self.total += counts["total"]
        self.accepted += counts["accepted"]
        self.rejected += counts["rejected"]
        self.duplicate += counts["duplicate"]
        self.rejected_rows.extend(partial["rejected_rows"])
        self.scored_rows.extend(partial["scored_rows"])
        for status, count in partial["statuses"].items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.file_error = self.file_error or partial.get("file_error")
        self.merchant_id = self.merchant_id or partial.get("merchant_id")

    def reject_rows(self, first_row: int, count: int, code: str) -> None:
        """Rows nobody processed (a batch that failed after its retries): counted and named."""
        for number in range(first_row, first_row + count):
            self.total += 1
            self.reject(number, None, code)

    def as_partial(self) -> JsonObject:
        """What a Distributed Map child returns: the report's counts and rows, no source."""
        body = self.as_dict()
        return {name: body[name] for name in ("counts", "statuses", "rejected_rows", "scored_rows")} | {
            "file_error": self.file_error, "merchant_id": self.merchant_id}

    def as_dict(self) -> JsonObject:
        body: JsonObject = {
            "batch_id": self.batch_id, "source": {"bucket": self.bucket, "key": self.key},
            "counts": {"total": self.total, "accepted": self.accepted, "rejected": self.rejected,
                       "duplicate": self.duplicate},
            "statuses": self.statuses,
            "rejected_rows": sorted(self.rejected_rows, key=lambda entry: entry["row"]),
            "scored_rows": sorted(self.scored_rows, key=lambda entry: entry["row"]),
        }
        if self.file_error:
            body["file_error"] = self.file_error
        if self.merchant_id:
            body["merchant_id"] = self.merchant_id
        return body


@dataclass(frozen=True)
class Row:
    number: int
    request: PaymentRequest
    candidate: fraud.Candidate

    @property
    def payment_id(self) -> str:
        return self.candidate.payment_id


class ObjectGone(Exception):
    """The uploaded object was deleted before it could be read."""


class LeaseUnavailable(Exception):
    """Another ingestion holds the lease; the invocation fails and is retried by Lambda."""


class InvalidEvent(ValueError):
    """The event is not an S3 "Object Created" event from EventBridge."""


@dataclass(frozen=True)
class Upload:
    """An uploaded object as an "Object Created" event names it. `version` tells two uploads of
    the same key apart (sequencer, else version id, etag or the event id): the batch id hangs on it."""

    bucket: str
    key: str
    version: str
    version_id: str | None
    size: int

    @property
    def batch_id(self) -> str:
        return batch_id_for(self.bucket, self.key, self.version)

    @property
    def is_incoming_csv(self) -> bool:
        return self.key.startswith(INCOMING) and self.key.lower().endswith(".csv")


def uploaded_object(event: Event) -> Upload:
    """The object of an EventBridge "Object Created" event (detail.bucket.name, detail.object)."""
    try:
        detail: dict[str, Any] = event["detail"]
        bucket: str = detail["bucket"]["name"]
        obj: dict[str, Any] = detail["object"]
        key: str = obj["key"]
    except (TypeError, KeyError):
        raise InvalidEvent("not an S3 Object Created event") from None
    key = unquote_plus(key) if "%" in key or "+" in key else key
    version = obj.get("sequencer") or obj.get("version-id") or obj.get("etag") or event.get("id", "")
    size = obj.get("size")
    return Upload(bucket, key, str(version), obj.get("version-id"), size if isinstance(size, int) else 0)


def batch_id_for(bucket: str, key: str, version: str) -> str:
    return hashlib.sha256(f"{bucket}\x1f{key}\x1f{version}".encode()).hexdigest()[:32]


def batch_ref(batch_id: str, row: int) -> str:
    """Which batch and row created a payment (one attribute: items stay small)."""
    return f"{batch_id}#{row}"


def report_key_for(object_key: str, batch_id: str) -> str:
    """reports/ + the upload's path under incoming/, `.csv` replaced by `-<batch_id>.json`."""
    relative = object_key[len(INCOMING):] if object_key.startswith(INCOMING) else object_key.rsplit("/", 1)[-1]
    stem = relative[:-4] if relative.lower().endswith(".csv") else relative
    return f"{REPORTS}{stem}-{batch_id}.json"


def merchant_prefix_of(object_key: str) -> str | None:
    """The merchant id of `incoming/<merchant_id>/<name>`; None for any other shape."""
    parts = object_key.split("/")
    return parts[1] if len(parts) == 3 and parts[0] + "/" == INCOMING and parts[1] and parts[2] else None


def merchant_refusal(object_key: str) -> tuple[str | None, str | None]:
    """(merchant_id, None) for a known, active merchant's upload, else (merchant_id or None,
    the reason the whole file is refused)."""
    merchant_id = merchant_prefix_of(object_key)
    if merchant_id is None:
        return None, NO_MERCHANT_PREFIX
    status = merchants.merchant_status(merchant_id)
    if status is None:
        return merchant_id, "unknown_merchant"
    if status is not merchants.MerchantStatus.ACTIVE:
        return merchant_id, "merchant_suspended"
    return merchant_id, None


# ---------------------------------------------------------------- row validation

def _integer_column(value: str, column: str) -> int:
    if not DIGITS.fullmatch(value):
        code = "invalid_amount" if column == "amount" else "invalid_expiry"
        raise ApiError(400, code, f"{column} must be an integer", column)
    return int(value)


def parse_row(values: dict[str, str], now: datetime) -> PaymentRequest:
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


def build_row(merchant_id: str, number: int, values: dict[str, str], ring: keys.Keyring, now: datetime) -> Row:
    request = parse_row(values, now)
    # parse_row refuses a row without a reference and passes the string on unchanged
    payment_id = identity.batch_payment_id(merchant_id, request.customer_id, values["merchant_reference"])
    return Row(number, request, fraud.candidate_for(merchant_id, request, payment_id, ring))


# ---------------------------------------------------------------- reading the object

def records(stream: IO[bytes]) -> Iterator[list[str] | None]:
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


def _read_header(reader: Iterator[list[str] | None], report: Report) -> dict[str, int] | None:
    header = next(reader, None)
    while header == []:  # blank lines before the header
        header = next(reader, None)
    if header is None:
        return None
    names = header_names(header)
    problem = header_problem(names)
    if problem is not None:
        reject_file(reader, report, "invalid_header", problem)
        return None
    return {name: names.index(name) for name in COLUMNS}


def header_names(header: list[str]) -> list[str]:
    """Column names as the file's header row spells them, compared without case, spaces or BOM."""
    return [name.strip().lstrip("\ufeff").strip().lower() for name in header]


def header_problem(names: list[str]) -> str | None:
    """None for a usable header, else the column the report names (unknown, missing or repeated)."""
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in names]
    if unknown or missing or len(set(names)) != len(names):
        return (unknown or missing or ["header"])[0]
    return None


def reject_file(reader: Iterator[list[str] | None], report: Report, code: str, column: str | None) -> None:
    """Every remaining record counted and rejected with the file's reason: nothing is lost
    without the report saying why."""
    report.file_error = code
    for number, _ in enumerate(reader, start=1):
        report.total += 1
        report.reject(number, column, code)


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
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.delete_item(
                TableName=self.table, Key={"batch_id": {"S": LEASE_KEY}},
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )


# ---------------------------------------------------------------- writing a chunk

class FileScreening:
    """What scoring the rows of a file needs, kept current as rows are written, in bounded
    memory: the velocity counters of the chunk being written (as last read or written; the
    next chunk reads its own) and the recent payments of the last HISTORY_CUSTOMERS customers
    seen (only the fields the rules read, at most HISTORY_LENGTH each). A chunk's new customers
    are read in parallel (one Query each; boto3 clients are thread-safe)."""

    def __init__(self, merchant_id: str):
        self.merchant_id = merchant_id
        self.counters: dict[str, fraud.Counter] = {}
        self.histories: OrderedDict[str, list[Item]] = OrderedDict()

    def start_chunk(self, rows: list[Row]) -> None:
        names = {name for row in rows for kind in fraud.counter_names(row.candidate).values() for name in kind}
        self.counters = {name: counter for name, counter in self.counters.items() if name in names}
        self.read_histories({row.request.customer_id for row in rows})

    def read_histories(self, customer_ids: set[str]) -> None:
        missing = sorted(customer_ids - set(self.histories))
        with ThreadPoolExecutor(max_workers=HISTORY_READERS) as pool:
            histories = pool.map(lambda customer_id: repository.customer_history(self.merchant_id, customer_id), missing)
            for customer_id, history in zip(missing, histories, strict=False):
                self.histories[customer_id] = [_history_entry(payment) for payment in history]
        for customer_id in customer_ids:
            self.histories.move_to_end(customer_id)
        while len(self.histories) > max(HISTORY_CUSTOMERS, len(customer_ids)):
            self.histories.popitem(last=False)

    def history(self, customer_id: str) -> list[Item]:
        self.read_histories({customer_id})
        return self.histories[customer_id]

    def remember(self, payment: Item) -> None:
        history = self.history(payment["customer_id"])
        history.insert(0, _history_entry(payment))
        del history[HISTORY_LENGTH:]

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self.counters.pop(name, None)


def _history_entry(payment: Item) -> Item:
    return {name: payment.get(name) for name in ("payment_id", "status", "amount", "currency", "billing_country")}


class ChunkContention(Exception):
    """A transaction of the chunk was cancelled: its rows must be read and decided again."""


def _read(rows: list[Row], screening: FileScreening) -> dict[str, Item]:
    """Existing payments of the rows and the counters not known yet."""
    table, velocity = repository.table_name(), fraud.velocity_table()
    ids = {row.payment_id for row in rows}
    names = {name for row in rows for kind in fraud.counter_names(row.candidate).values() for name in kind}
    missing = sorted(names - set(screening.counters))
    found = dynamo.batch_get({table: [{"payment_id": {"S": payment_id}} for payment_id in sorted(ids)],
                              velocity: [fraud.counter_key(name) for name in missing]})
    counters = {item["counter_key"]: item for item in found[velocity]}
    for name in missing:
        screening.counters[name] = fraud.counter_from_item(name, counters.get(name))
    return {item["payment_id"]: item for item in found[table]}


def _settled_rows(rows: list[Row], existing: dict[str, Item], report: Report, to_settle: list[str]) -> list[Row]:
    """Account for rows whose payment exists; return the rows still to write."""
    remaining = []
    for row in rows:
        stored = existing.get(row.payment_id)
        if stored is None:
            remaining.append(row)
        elif stored.get("batch_ref") == batch_ref(report.batch_id, row.number):
            payment = repository.expand(dict(stored))  # written by an earlier run of this very batch
            report.accept(row.number, payment)
            if payment["status"] == "approved":
                to_settle.append(payment["payment_id"])
        else:
            report.duplicate += 1
    return remaining


def _commit_chunk(rows: list[Row], report: Report, screening: FileScreening, now: datetime) -> None:
    unique: dict[str, Row] = {}
    for row in rows:
        if row.payment_id in unique:
            report.duplicate += 1
        else:
            unique[row.payment_id] = row
    pending, to_settle = list(unique.values()), list[str]()
    screening.start_chunk(pending)
    for _ in range(MAX_CHUNK_ATTEMPTS):
        pending = _settled_rows(pending, _read(pending, screening), report, to_settle)
        try:
            while pending:
                group = _first_group(pending)
                _write_group(group, report, screening, now, to_settle)
                pending = pending[len(group):]
            break
        except ChunkContention:
            continue  # read the rows still pending again: some may exist now, counters moved on
    else:
        raise RuntimeError("rows kept losing write races; the invocation fails and is retried")
    if to_settle:
        settlement_queue.enqueue_for_settlement(to_settle)


def _first_group(rows: list[Row]) -> list[Row]:
    """The leading rows whose puts and counters fit one transaction (each counter once)."""
    group: list[Row] = []
    names: set[str] = set()
    for row in rows:
        row_names = {name for kind in fraud.counter_names(row.candidate).values() for name in kind}
        if group and len(group) + 1 + len(names | row_names) > dynamo.MAX_TRANSACTION_ACTIONS:
            break
        group.append(row)
        names |= row_names
    return group


def _write_group(group: list[Row], report: Report, screening: FileScreening, now: datetime,
                 to_settle: list[str]) -> None:
    """Score the rows in file order against the counters as they stand, then write the rows
    and the counters in one transaction; on a cancelled transaction nothing was written."""
    epoch, created_at = int(now.timestamp()), repository.iso(now)
    counters = {name: screening.counters[name] for row in group
                for names in fraud.counter_names(row.candidate).values() for name in names}
    items = []
    for row in group:
        names = fraud.counter_names(row.candidate)
        current = {kind: [counters[name] for name in kind_names] for kind, kind_names in names.items()}
        velocity = fraud.velocity_counts(current, row.payment_id, epoch)
        risk = fraud.score(row.candidate, screening.history(row.request.customer_id), velocity)
        item = repository.build_item(row.candidate.merchant_id, row.request, row.payment_id, risk,
                                     row.candidate.card_fingerprints, created_at, "batch")
        items.append({**item, "batch_ref": batch_ref(report.batch_id, row.number)})
        for name in (name for kind_names in names.values() for name in kind_names):
            counters[name] = counters[name].with_event(epoch, row.payment_id)
    touched = sorted(name for name in counters if counters[name] is not screening.counters.get(name))
    actions = [repository.create_action(item) for item in items]
    actions += [fraud.counter_put(counters[name], screening.counters[name].version) for name in touched]
    try:
        dynamo.transact_write(actions)
    except dynamo.Cancelled:
        screening.forget(touched)
        raise ChunkContention() from None
    for name in touched:
        screening.counters[name] = fraud.Counter(name, screening.counters[name].version + 1, counters[name].events)
    for row, item in zip(group, items, strict=False):
        payment = repository.expand(dict(item))
        report.accept(row.number, payment)
        screening.remember(payment)
        if payment["status"] == "approved":
            to_settle.append(row.payment_id)


# ---------------------------------------------------------------- the whole file

def ingest(bucket: str, key: str, version: str, version_id: str | None, deadline: float,
           now: datetime | None = None, execution_arn: str | None = None) -> JsonObject | None:
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
        report = _ingest_locked(bucket, key, version_id, batch_id, lease, now, execution_arn)
    except ObjectGone:
        logger.warning("uploaded object no longer exists; nothing to ingest", extra={"batch_id": batch_id})
        return None
    finally:
        lease.release()
    return report


def _ingest_locked(bucket: str, key: str, version_id: str | None, batch_id: str, lease: Lease, now: datetime,
                   execution_arn: str | None) -> JsonObject:
    s3 = aws.client("s3")
    report = Report(batch_id, bucket, key)
    run = {"execution_arn": execution_arn} if execution_arn else {}
    set_status(batch_id, {"state": "processing", "bucket": bucket, "object_key": key, **run})
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
    try:
        _ingest_records(records(body), key, report, lease, now)
    finally:
        body.close()
    result = complete(report, get_args, run)
    logger.info("batch ingested", extra={"batch_id": batch_id, "merchant_id": report.merchant_id,
                                         "file_error": report.file_error, "counts": result["counts"]})
    return result


def complete(report: Report, upload: dict[str, str], status: dict[str, str]) -> JsonObject:
    """Write the report, delete the upload (the exact version: it holds card numbers and must
    not outlive ingestion), record the batch as completed and publish the row metrics."""
    s3, result = aws.client("s3"), report.as_dict()
    report_key = report_key_for(report.key, report.batch_id)
    s3.put_object(Bucket=report.bucket, Key=report_key, ContentType="application/json",
                  Body=json.dumps(result, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    s3.delete_object(**upload)
    set_status(report.batch_id, {"state": "completed", "bucket": report.bucket, "object_key": report.key,
                                 "report_key": report_key, **status,
                                 **{f"count_{name}": value for name, value in result["counts"].items()}})
    metrics.add_metric(name="BatchRowsAccepted", unit=MetricUnit.Count, value=report.accepted)
    metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=report.rejected)
    return result


def _ingest_records(reader: Iterator[list[str] | None], key: str, report: Report, lease: Lease,
                    now: datetime) -> None:
    """Every record of the file into the report: refused as a whole when the upload is not a
    known, active merchant's, else one payment of that merchant per valid row."""
    merchant_id, refusal = merchant_refusal(key)
    report.merchant_id = merchant_id
    if refusal is not None or merchant_id is None:
        next(reader, None)  # the header is not a row
        reject_file(reader, report, refusal or NO_MERCHANT_PREFIX, None)
        return
    columns = _read_header(reader, report)
    if columns is None:
        return
    ingest_rows(enumerate(reader, start=1), merchant_id, columns, report, now, after_chunk=lease.renew)


def ingest_rows(numbered: Iterable[tuple[int, list[str] | None]], merchant_id: str, columns: dict[str, int],
                report: Report, now: datetime, after_chunk: Callable[[], None] = lambda: None) -> None:
    """Numbered records of one merchant's file into the report: each valid row screened and
    written exactly once, CHUNK_ROWS at a time (both paths: the whole file, or one map batch)."""
    ring, screening, chunk = keys.keyring(), FileScreening(merchant_id), []
    for number, values in numbered:
        report.total += 1
        row = _row_or_reject(merchant_id, number, values, columns, ring, now, report)
        if row is not None:
            chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            _commit_chunk(chunk, report, screening, now)
            after_chunk()
            chunk = []
    if chunk:
        _commit_chunk(chunk, report, screening, now)


def _row_or_reject(merchant_id: str, number: int, values: list[str] | None, columns: dict[str, int],
                   ring: keys.Keyring, now: datetime, report: Report) -> Row | None:
    if values is None:
        report.reject(number, None, "malformed_row")
        return None
    if len(values) != len(COLUMNS):
        report.reject(number, None, "wrong_column_count")
        return None
    named = {name: values[index].strip() for name, index in columns.items()}
    try:
        return build_row(merchant_id, number, named, ring, now)
    except ApiError as error:
        column = FIELD_TO_COLUMN.get(error.field or "", error.field)
        report.reject(number, column, error.code)
        return None


def _status(batch_id: str) -> Item | None:
    answer = aws.client("dynamodb").get_item(TableName=aws.env("BATCH_STATUS_TABLE"),
                                             Key={"batch_id": {"S": batch_id}}, ConsistentRead=True)
    return aws.from_dynamo(answer["Item"]) if "Item" in answer else None


def set_status(batch_id: str, values: Item) -> None:
    item = {"batch_id": batch_id, "updated_at": repository.iso(repository.utc_now()),
            "expires_at": int(time.time()) + STATUS_TTL_SECONDS, **values}
    aws.client("dynamodb").put_item(TableName=aws.env("BATCH_STATUS_TABLE"), Item=aws.to_dynamo(item))
