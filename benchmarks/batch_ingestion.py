"""Batch ingestion benchmark against moto: our design versus the naive one, in the same run.

    .venv/bin/python benchmarks/batch_ingestion.py            # 10,000 and 100,000 rows (~20 min)
    .venv/bin/python benchmarks/batch_ingestion.py --rows 10000 --naive-rows 2000   # quicker

For each file size it uploads a generated CSV (valid rows with distinct cards and customers)
to a moto bucket and measures:
- ours: functions/paylib/batch.ingest (streamed object, BatchGetItem + BatchWriteItem per
  chunk under the ingestion lease, one queue message per chunk, exactly once);
- naive: what the earlier implementation did: read the whole object, then per row one
  PutItem and one SendMessage (same row validation, so only the I/O design differs), on the
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
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
REGION = "eu-west-1"
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_SERVICE_NAME": "payments-benchmark",
    "POWERTOOLS_METRICS_NAMESPACE": "Payments", "LOG_LEVEL": "WARNING",
    "TRANSACTIONS_TABLE": "bench-transactions", "BATCH_STATUS_TABLE": "bench-batch-status",
    "VELOCITY_TABLE": "bench-velocity",
})
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

BUCKET = "bench-batch"
HEADER = ["merchant_reference", "customer_id", "amount", "currency", "card_number", "exp_month", "exp_year"]


def luhn_complete(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return partial + str((10 - total % 10) % 10)


def csv_bytes(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for index in range(rows):
        number = luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(14)))
        writer.writerow([f"ref-{seed}-{index}", f"cus_{seed}_{index % 5000}", rng.randint(100, 500_000),
                         rng.choice(["EUR", "USD", "GBP", "JPY"]), number, rng.randint(1, 12), 2031])
    return out.getvalue().encode("utf-8")


def setup() -> dict:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name, keys in (("bench-transactions", [("payment_id", "S")]), ("bench-batch-status", [("batch_id", "S")]),
                       ("bench-velocity", [("counter_key", "S"), ("window_start", "N")])):
        arguments = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                     "KeySchema": [{"AttributeName": key, "KeyType": kind}
                                   for (key, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)],
                     "AttributeDefinitions": [{"AttributeName": key, "AttributeType": type_} for key, type_ in keys]}
        if name == "bench-transactions":
            arguments["AttributeDefinitions"] += [{"AttributeName": "customer_id", "AttributeType": "S"},
                                                  {"AttributeName": "created_at", "AttributeType": "S"},
                                                  {"AttributeName": "status", "AttributeType": "S"}]
            arguments["GlobalSecondaryIndexes"] = [
                {"IndexName": index, "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}]}
                for index, hash_key in (("by-customer", "customer_id"), ("by-status", "status"))]
        dynamodb.create_table(**arguments)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    sqs = boto3.client("sqs", region_name=REGION)
    os.environ["PAYMENT_QUEUE_URL"] = sqs.create_queue(QueueName="bench-queue")["QueueUrl"]
    os.environ["CARD_FINGERPRINT_SECRET_ARN"] = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="bench-fingerprint", SecretString="b" * 48)["ARN"]
    return {"dynamodb": dynamodb, "sqs": sqs, "s3": boto3.client("s3", region_name=REGION)}


def _drain(sqs, queue_url: str) -> None:
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)])


def naive_ingest(s3, key: str, limit: int) -> tuple[int, float]:
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
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, data = rows[0], rows[1:1 + limit] if limit else rows[1:]
    ring, now = keys.keyring(), repository.utc_now()
    created_at = repository.iso(now)
    written = 0
    for number, values in enumerate(data, start=1):
        row = batch.build_row(number, dict(zip(header, values, strict=False)), ring, now)
        risk = fraud.score(row.candidate, None, {})  # the naive design screens nothing: it only writes
        item = repository.build_item(row.request, row.payment_id, risk, row.candidate.card_fingerprints, created_at, "batch")
        client.put_item(TableName=repository.table_name(), Item=aws.to_dynamo(item))
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"payment_ids": [row.payment_id]}))
        written += 1
        if written % 100 == 0:
            timed += time.perf_counter() - started
            _drain(sqs, queue_url)
            started = time.perf_counter()
    timed += time.perf_counter() - started
    return written, timed


def _ingest_new_file(clients, name: str, rows: int, seed: int) -> tuple[dict, float, int]:
    """Upload a generated file, then ingest it; returns (report, seconds, object bytes)."""
    from paylib import batch
    body = csv_bytes(rows, seed)
    clients["s3"].put_object(Bucket=BUCKET, Key=f"incoming/{name}.csv", Body=body)
    size = len(body)
    del body
    started = time.perf_counter()
    report = batch.ingest(BUCKET, f"incoming/{name}.csv", "v1", None, time.monotonic() + 3600)
    return report, time.perf_counter() - started, size


def _fresh_moto():
    """A new, empty moto account: every measurement starts from the same state."""
    from paylib import aws as paylib_aws
    from paylib import keys
    context = mock_aws()
    context.start()
    paylib_aws.reset()
    keys.clear_cache()
    return context, setup()


def run(rows: int, naive_rows: int, seed: int) -> dict:
    from paylib import batch
    # 1. throughput (no tracing: tracemalloc slows Python code several times)
    context, clients = _fresh_moto()
    try:
        report, ours_seconds, size = _ingest_new_file(clients, f"speed-{rows}", rows, seed)
        assert report["counts"] == {"total": rows, "accepted": rows, "rejected": 0, "duplicate": 0}, report["counts"]
        items = clients["dynamodb"].describe_table(TableName="bench-transactions")["Table"]["ItemCount"]
        assert items == rows, "exactly one payment per row"
        messages = int(clients["sqs"].get_queue_attributes(QueueUrl=os.environ["PAYMENT_QUEUE_URL"],
                       AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
    finally:
        context.stop()
    # 2. memory, on a fresh account and another file of the same size
    context, clients = _fresh_moto()
    try:
        tracemalloc.start()
        body = csv_bytes(rows, seed + 1)
        before_upload = tracemalloc.get_traced_memory()[0]
        clients["s3"].put_object(Bucket=BUCKET, Key=f"incoming/memory-{rows}.csv", Body=body)
        object_in_moto = tracemalloc.get_traced_memory()[0] - before_upload
        del body
        tracemalloc.reset_peak()
        start_memory = tracemalloc.get_traced_memory()[0]
        batch.ingest(BUCKET, f"incoming/memory-{rows}.csv", "v1", None, time.monotonic() + 3600)
        end_memory, peak_memory = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        context.stop()
    retained = max(0, end_memory - start_memory + object_in_moto)  # moto's new items and messages
    working = peak_memory - start_memory - retained
    # 3. the naive design, on a fresh account and the same kind of rows
    context, clients = _fresh_moto()
    try:
        naive_count = naive_rows if naive_rows and naive_rows < rows else rows
        clients["s3"].put_object(Bucket=BUCKET, Key=f"incoming/naive-{rows}.csv", Body=csv_bytes(naive_count, seed + 2))
        naive_written, naive_seconds = naive_ingest(clients["s3"], f"incoming/naive-{rows}.csv", naive_count)
    finally:
        context.stop()
    return {
        "rows": rows, "file_mib": size / 2**20, "ours_seconds": ours_seconds, "ours_rows_per_s": rows / ours_seconds,
        "naive_rows": naive_written, "naive_seconds": naive_seconds, "naive_rows_per_s": naive_written / naive_seconds,
        "speedup": (rows / ours_seconds) / (naive_written / naive_seconds),
        "peak_mib": (peak_memory - start_memory) / 2**20, "retained_by_moto_mib": retained / 2**20,
        "working_mib": working / 2**20, "moto_body_buffer_mib": object_in_moto / 2**20,
        "queue_messages": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--naive-rows", type=int, default=0, help="rows the naive design runs on (0: all)")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    import logging
    logging.getLogger("payments-benchmark").setLevel(logging.WARNING)
    print(f"{'rows':>8} {'file MiB':>8} {'ours rows/s':>12} {'naive rows/s':>13} {'naive rows':>10} {'speedup':>8} "
          f"{'peak MiB':>9} {'moto kept':>10} {'working MiB':>12} {'moto body':>10} {'messages':>9}")
    for rows in arguments.rows:
        result = run(rows, arguments.naive_rows, arguments.seed)
        print(f"{result['rows']:>8} {result['file_mib']:>8.1f} {result['ours_rows_per_s']:>12.0f} {result['naive_rows_per_s']:>13.0f} "
              f"{result['naive_rows']:>10} {result['speedup']:>7.1f}x {result['peak_mib']:>9.1f} "
              f"{result['retained_by_moto_mib']:>10.1f} {result['working_mib']:>12.1f} "
              f"{result['moto_body_buffer_mib']:>10.1f} {result['queue_messages']:>9}", flush=True)


if __name__ == "__main__":
    main()
