"""Batch ingestion benchmark against moto: our design versus the naive one, in the same run.

    .venv/bin/python benchmarks/batch_ingestion.py            # 10,000 and 100,000 rows (slow: see below)
    .venv/bin/python benchmarks/batch_ingestion.py --rows 10000 --naive-rows 2000   # quicker
    .venv/bin/python benchmarks/batch_ingestion.py --quick    # seconds: the script still works (tests/benchmarks/)

For each file size it uploads a generated CSV (benchmarks/moto_env.py: valid rows of the test
merchant, distinct cards, each customer twice) under `incoming/<merchant_id>/` of a moto bucket
holding the tests' resources (tables, queue, secrets, the merchant, active) and measures:
- ours: functions/paylib/batch.ingest (streamed object, per chunk one BatchGetItem, the
  customers' history queries, one TransactWriteItems per row with its velocity counters, one
  queue message; under the ingestion lease, exactly once). The run is refused unless every row
  is accepted and stored once. moto's per-transaction deep copy of the whole table is
  neutralised (moto_env.neutralise_transaction_backup), else moto alone makes it O(N^2);
  moto's index Query still scans the whole table, so large files stay slow here (not on AWS);
- naive: what the earliest implementation did: read the whole object, then per row one
  PutItem and one SendMessage (same row validation, no screening, no transaction), on the
  whole file by default (--naive-rows N limits it to N rows for a quicker run); see
  naive_ingest for the moto queue-depth artefact that is neutralised in its favour. Every
  measurement starts from a fresh moto account. Rates are wall-clock and move by +-20% with
  the machine's load; run it on an idle machine.

Memory: tracemalloc peak during ingestion ("peak MiB"), what moto itself keeps afterwards
("moto kept": the stored items and messages live in this process because moto emulates AWS in
memory), and the difference ("working MiB", what the ingestion needed beyond that; it can come
out slightly negative because moto frees the deleted upload). "moto body" is moto's in-memory
copy of the upload. Our code never holds more than one chunk of rows (CHUNK_ROWS).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.moto_env import FreshAccount, all_accepted, csv_text, merchant_id, neutralise_transaction_backup  # noqa: E402

COLUMNS = (("rows", 8), ("accepted", 8), ("file MiB", 8), ("ours rows/s", 12), ("naive rows/s", 13), ("naive rows", 10),
           ("speedup", 8), ("peak MiB", 9), ("moto kept", 10), ("working MiB", 12), ("moto body", 10), ("messages", 9))
QUICK = {"rows": [40], "naive_rows": 20}  # seconds: checks the script works (tests/benchmarks/), numbers mean nothing


def _drain(sqs, queue_url: str) -> None:
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)])


def naive_ingest(account: FreshAccount, key: str, limit: int) -> tuple[int, float]:
    """One PutItem and one SendMessage per row, whole object read at once (the earlier design).

    Returns (rows written, seconds). moto's SendMessage gets slower as its queue grows (about
    12 ms + 0.03 ms per queued message, measured on this machine), which real SQS does not; a
    live worker keeps the queue short, so the queue is drained every 100 rows outside the timed
    part. Without this the naive design would look several times slower than it is."""
    from paylib import aws, batch, fraud, keys, repository
    client, sqs = aws.client("dynamodb"), aws.client("sqs")
    queue_url = aws.env("PAYMENT_QUEUE_URL")
    timed = 0.0
    started = time.perf_counter()
    text = account.resources.s3.get_object(Bucket=account.bucket, Key=key)["Body"].read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, data = rows[0], rows[1:1 + limit] if limit else rows[1:]
    ring, now = keys.keyring(), repository.utc_now()
    created_at = repository.iso(now)
    merchant, written = merchant_id(), 0
    for number, values in enumerate(data, start=1):
        row = batch.build_row(merchant, number, dict(zip(header, values, strict=False)), ring, now)
        risk = fraud.score(row.candidate, None, {})  # the naive design screens nothing: it only writes
        item = repository.build_item(merchant, row.request, row.payment_id, risk, row.candidate.card_fingerprints, created_at, "batch")
        client.put_item(TableName=repository.table_name(), Item=aws.to_dynamo(item))
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"payment_ids": [row.payment_id]}))
        written += 1
        if written % 100 == 0:
            timed += time.perf_counter() - started
            _drain(sqs, queue_url)
            started = time.perf_counter()
    timed += time.perf_counter() - started
    return written, timed


def _ingest(account: FreshAccount, key: str, version_id: str | None) -> dict[str, int]:
    from paylib import batch
    report = batch.ingest(account.bucket, key, "v1", version_id, time.monotonic() + 3600)
    assert report is not None, "a fresh upload is never already ingested"
    return dict(report["counts"])


def _throughput(rows: int, seed: int) -> tuple[dict[str, int], float, int, int, int]:
    """Ours on a fresh account (no tracing: tracemalloc slows Python code several times):
    (counts, seconds, file bytes, items stored, queue messages)."""
    with FreshAccount() as account:
        text = csv_text(rows, seed)
        key, version_id = account.upload(text)
        started = time.perf_counter()
        counts = _ingest(account, key, version_id)
        seconds = time.perf_counter() - started
        items = account.resources.dynamodb.describe_table(TableName=os.environ["TRANSACTIONS_TABLE"])["Table"]["ItemCount"]
        messages = int(account.resources.sqs.get_queue_attributes(
            QueueUrl=os.environ["PAYMENT_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"])
    return counts, seconds, len(text.encode("utf-8")), items, messages


def _memory(rows: int, seed: int) -> tuple[int, int, int, int]:
    """Ours on a fresh account and another file of the same size, traced:
    (bytes at start, at end, at peak, moto's copy of the upload)."""
    with FreshAccount() as account:
        tracemalloc.start()
        text = csv_text(rows, seed)
        before_upload = tracemalloc.get_traced_memory()[0]
        key, version_id = account.upload(text)
        object_in_moto = tracemalloc.get_traced_memory()[0] - before_upload
        del text
        tracemalloc.reset_peak()
        start_memory = tracemalloc.get_traced_memory()[0]
        _ingest(account, key, version_id)
        end_memory, peak_memory = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return start_memory, end_memory, peak_memory, object_in_moto


def _naive(rows: int, seed: int) -> tuple[int, float]:
    """The naive design on a fresh account and the same kind of rows: (rows written, seconds)."""
    with FreshAccount() as account:
        key, _ = account.upload(csv_text(rows, seed))
        return naive_ingest(account, key, rows)


def run(rows: int, naive_rows: int, seed: int) -> dict:
    counts, ours_seconds, size, items, messages = _throughput(rows, seed)
    if counts != all_accepted(rows) or items != rows:
        raise SystemExit(f"benchmark run invalid: counts {counts}, {items} payments stored for {rows} rows")
    start_memory, end_memory, peak_memory, object_in_moto = _memory(rows, seed + 1)
    retained = max(0, end_memory - start_memory + object_in_moto)  # moto's new items and messages
    naive_written, naive_seconds = _naive(naive_rows if naive_rows and naive_rows < rows else rows, seed + 2)
    return {
        "rows": rows, "accepted": counts["accepted"], "file_mib": size / 2**20, "ours_seconds": ours_seconds,
        "ours_rows_per_s": rows / ours_seconds, "naive_rows": naive_written, "naive_seconds": naive_seconds,
        "naive_rows_per_s": naive_written / naive_seconds, "speedup": (rows / ours_seconds) / (naive_written / naive_seconds),
        "peak_mib": (peak_memory - start_memory) / 2**20, "retained_by_moto_mib": retained / 2**20,
        "working_mib": (peak_memory - start_memory - retained) / 2**20, "moto_body_buffer_mib": object_in_moto / 2**20,
        "queue_messages": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--naive-rows", type=int, default=0, help="rows the naive design runs on (0: all)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} (overrides --rows and --naive-rows)")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    sizes, naive_rows = (QUICK["rows"], QUICK["naive_rows"]) if arguments.quick else (arguments.rows, arguments.naive_rows)
    os.environ["LOG_LEVEL"] = "WARNING"  # before paylib's logger exists: one INFO line per batch would flood the output
    neutralise_transaction_backup()
    print(" ".join(f"{title:>{width}}" for title, width in COLUMNS))
    for rows in sizes:
        result = run(rows, naive_rows, arguments.seed)
        print(f"{result['rows']:>8} {result['accepted']:>8} {result['file_mib']:>8.1f} {result['ours_rows_per_s']:>12.0f} "
              f"{result['naive_rows_per_s']:>13.0f} {result['naive_rows']:>10} {result['speedup']:>7.1f}x "
              f"{result['peak_mib']:>9.1f} {result['retained_by_moto_mib']:>10.1f} {result['working_mib']:>12.1f} "
              f"{result['moto_body_buffer_mib']:>10.1f} {result['queue_messages']:>9}", flush=True)


if __name__ == "__main__":
    main()
