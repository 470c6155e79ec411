"""Batch CSV ingestion: bad rows, BOM, quoted newlines, empty file, duplicate upload,
redelivered events, the report invariant, and the upload not outliving its ingestion."""
from __future__ import annotations

import json
import uuid

import pytest
from paylib import repository

from tests.functions.conftest import LambdaContext, batch_key, fresh_card, load_app, queued_bodies

BUCKET = "payments-test-batch"
HEADER = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year"


@pytest.fixture(scope="module")
def ingestion(aws):
    return load_app("batch_ingestion")


def upload(aws, text: str | bytes, name: str | None = None) -> tuple[str, dict]:
    key = batch_key(name)
    body = text.encode("utf-8") if isinstance(text, str) else text
    answer = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
             "detail": {"bucket": {"name": BUCKET},
                        "object": {"key": key, "size": len(body), "etag": answer["ETag"].strip('"'),
                                   "version-id": answer.get("VersionId"), "sequencer": uuid.uuid4().hex.upper()}}}
    return key, event


def report_of(aws, result) -> dict:
    objects = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/").get("Contents", [])
    key = next(item["Key"] for item in objects if result["batch_id"] in item["Key"])
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def row(ref=None, customer=None, amount="1250", currency="EUR", number=None, month="12", year="2031"):
    return ",".join([f"ref-{uuid.uuid4().hex[:8]}" if ref is None else ref, customer or f"cus_{uuid.uuid4().hex[:8]}", amount, currency,
                     number or fresh_card(), month, year])


def assert_invariant(report):
    counts = report["counts"]
    assert counts["accepted"] + counts["rejected"] + counts["duplicate"] == counts["total"]
    assert counts["rejected"] == len(report["rejected_rows"])


def test_valid_and_bad_rows_with_bom_and_quoted_newlines(aws, ingestion):
    bad_luhn = "4242424242424241"
    lines = [
        HEADER,
        row(ref="good-1"),
        '"ref, with comma ""and"" quotes",cus_quoted,990,USD,' + fresh_card("5555") + ",1,2030",
        '"ref with a\nquoted newline",cus_quoted,990,USD,' + fresh_card("5555") + ",1,2030",
        row(amount="12.50"),
        row(amount="-3"),
        row(currency="XAU"),
        row(number=bad_luhn),
        row(month="13"),
        row(year="2019"),
        "too,few,columns",
        row(ref=""),
        row(amount=str(10**9)),
        row(ref="good-2", currency="JPY", amount="5000"),
    ]
    key, event = upload(aws, "\ufeff" + "\r\n".join(lines) + "\r\n")
    result = ingestion.handler(event, LambdaContext())
    assert result["ingested"] is True
    report = report_of(aws, result)
    assert_invariant(report)
    assert report["counts"] == {"total": 13, "accepted": 3, "rejected": 10, "duplicate": 0}, report
    assert report["rejected_rows"][0] == {"row": 3, "field": "merchant_reference", "code": "invalid_field"}
    assert [dict(entry, row=entry["row"] - 1) for entry in report["rejected_rows"][1:]] == [
        {"row": 3, "field": "amount", "code": "invalid_amount"},
        {"row": 4, "field": "amount", "code": "invalid_amount"},
        {"row": 5, "field": "currency", "code": "unsupported_currency"},
        {"row": 6, "field": "card_number", "code": "invalid_card_number"},
        {"row": 7, "field": "exp_month", "code": "invalid_expiry"},
        {"row": 8, "field": "exp_year", "code": "card_expired"},
        {"row": 9, "field": None, "code": "wrong_column_count"},
        {"row": 10, "field": "merchant_reference", "code": "missing_field"},
        {"row": 11, "field": "amount", "code": "amount_too_large"},
    ]
    assert bad_luhn not in json.dumps(report)
    # the upload held card numbers: no version of it is left
    assert aws.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", []) == []


def test_payments_are_created_and_queued_in_chunks(aws, ingestion):
    lines = [HEADER] + [row() for _ in range(230)]
    _, event = upload(aws, "\n".join(lines))
    result = ingestion.handler(event, LambdaContext())
    assert result["counts"] == {"total": 230, "accepted": 230, "rejected": 0, "duplicate": 0}
    queued_ids = [pid for body in queued_bodies("payments-test-queue") for pid in json.loads(body)["payment_ids"]]
    status = aws.dynamodb.get_item(TableName="payments-test-batch-status", Key={"batch_id": {"S": result["batch_id"]}})["Item"]
    assert status["state"]["S"] == "completed"
    created = aws.dynamodb.scan(TableName="payments-test-transactions", FilterExpression="begins_with(batch_ref, :b)",
                                ExpressionAttributeValues={":b": {"S": result["batch_id"] + "#"}})["Items"]
    assert len(created) == 230
    assert {item["payment_id"]["S"] for item in created} <= set(queued_ids)
    sample = repository.representation(repository.get(created[0]["payment_id"]["S"]))
    assert sample["status"] == "approved" and len(sample["card"]["last4"]) == 4


def test_duplicate_upload_and_duplicate_rows_create_no_second_payment(aws, ingestion):
    lines = [HEADER, row(ref="dup-a", customer="cus_dup1"), row(ref="dup-b", customer="cus_dup1"),
             row(ref="dup-a", customer="cus_dup1")]
    text = "\n".join(lines)
    _, first_event = upload(aws, text)
    first = ingestion.handler(first_event, LambdaContext())
    assert first["counts"] == {"total": 3, "accepted": 2, "rejected": 0, "duplicate": 1}
    before = aws.dynamodb.describe_table(TableName="payments-test-transactions")["Table"]["ItemCount"]
    _, second_event = upload(aws, text)
    second = ingestion.handler(second_event, LambdaContext())
    assert second["counts"] == {"total": 3, "accepted": 0, "rejected": 0, "duplicate": 3}
    assert aws.dynamodb.describe_table(TableName="payments-test-transactions")["Table"]["ItemCount"] == before
    assert_invariant(report_of(aws, second))


def test_redelivered_event_is_ignored(aws, ingestion):
    _, event = upload(aws, HEADER + "\n" + row())
    assert ingestion.handler(event, LambdaContext())["ingested"] is True
    assert ingestion.handler(event, LambdaContext()) == {"ingested": False, "reason": "already ingested or no longer present"}


def test_a_rerun_after_a_crash_counts_its_own_rows_as_accepted(aws, ingestion, monkeypatch):
    from paylib import batch
    lines = [HEADER] + [row() for _ in range(150)]
    key, event = upload(aws, "\n".join(lines))
    real_commit = batch._commit_chunk
    calls = {"n": 0}

    def crash_after_first_chunk(*args):
        calls["n"] += 1
        real_commit(*args)
        if calls["n"] == 1:
            raise RuntimeError("simulated crash")
    monkeypatch.setattr(batch, "_commit_chunk", crash_after_first_chunk)
    with pytest.raises(RuntimeError):
        ingestion.handler(event, LambdaContext())
    monkeypatch.setattr(batch, "_commit_chunk", real_commit)
    result = ingestion.handler(event, LambdaContext())
    assert result["counts"] == {"total": 150, "accepted": 150, "rejected": 0, "duplicate": 0}


def test_empty_file_and_header_only(aws, ingestion):
    for text in ("", HEADER + "\n", "\ufeff"):
        _, event = upload(aws, text)
        result = ingestion.handler(event, LambdaContext())
        report = report_of(aws, result)
        assert report["counts"] == {"total": 0, "accepted": 0, "rejected": 0, "duplicate": 0}


def test_bad_header_rejects_every_row(aws, ingestion):
    _, event = upload(aws, "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year,cvc\n"
                      + row() + ",123\n" + row() + ",456\n")
    report = report_of(aws, ingestion.handler(event, LambdaContext()))
    assert report["file_error"] == "invalid_header"
    assert report["counts"] == {"total": 2, "accepted": 0, "rejected": 2, "duplicate": 0}
    assert report["rejected_rows"][0] == {"row": 1, "field": "cvc", "code": "invalid_header"}


def test_invalid_utf8_rejects_the_row_not_the_file(aws, ingestion):
    good = row()
    text = (HEADER + "\n" + good + "\n").encode("utf-8") + b"ref-x,cus_\xff\xfe,100,EUR," + fresh_card().encode() + b",1,2031\n"
    report = report_of(aws, ingestion.handler(upload(aws, text)[1], LambdaContext()))
    assert report["counts"] == {"total": 2, "accepted": 1, "rejected": 1, "duplicate": 0}
    assert report["rejected_rows"] == [{"row": 2, "field": "customer_id", "code": "invalid_field"}]


def test_objects_outside_incoming_csv_are_ignored(aws, ingestion):
    _, event = upload(aws, "x")
    event["detail"]["object"]["key"] = "reports/something.json"
    assert ingestion.handler(event, LambdaContext())["ingested"] is False
    with pytest.raises(ingestion.InvalidEvent):
        ingestion.handler({"detail": {}}, LambdaContext())


def test_the_lease_serialises_ingestions(aws):
    import time

    from paylib import batch
    holder = batch.Lease("someone-else")
    holder.acquire(time.monotonic() + 1)
    try:
        with pytest.raises(batch.LeaseUnavailable):
            batch.Lease("me").acquire(time.monotonic() + 0.5)
    finally:
        holder.release()
    batch.Lease("me").acquire(time.monotonic() + 1)
    batch.Lease("me").release()


def test_nul_bytes_and_oversized_fields_reject_only_their_row(aws, ingestion):
    text = "\n".join([HEADER, row(), row(ref="nul\x00ref"), row(ref="x" * 70_000), row()]) + "\n"
    report = report_of(aws, ingestion.handler(upload(aws, text)[1], LambdaContext()))
    assert_invariant(report)
    assert report["counts"]["accepted"] == 2
    assert report["rejected_rows"][0] == {"row": 2, "field": "merchant_reference", "code": "invalid_field"}
    assert report["rejected_rows"][1]["row"] == 3 and report["rejected_rows"][1]["code"] in {"malformed_row", "invalid_field"}


def test_an_object_deleted_before_ingestion_is_skipped(aws, ingestion):
    key, event = upload(aws, HEADER + "\n" + row())
    aws.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=event["detail"]["object"]["version-id"])
    assert ingestion.handler(event, LambdaContext()) == {"ingested": False, "reason": "already ingested or no longer present"}


def test_records_are_streamed_not_read_whole():
    """Reading the first rows of a large object touches only the first bytes of the stream."""
    import io

    from paylib import batch

    class CountingStream(io.RawIOBase):
        def __init__(self, rows: int):
            self.lines = (f"ref-{i},cus_{i},100,EUR,4242424242424242,1,2031\n".encode() for i in range(rows))
            self.buffer, self.read_bytes = b"", 0

        def readable(self):
            return True

        def readinto(self, target):
            while len(self.buffer) < len(target):
                chunk = next(self.lines, None)
                if chunk is None:
                    break
                self.buffer += chunk
            size = min(len(target), len(self.buffer))
            target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
            self.read_bytes += size
            return size

    stream = CountingStream(200_000)  # about 10 MB if read whole
    reader = batch.records(io.BufferedReader(stream))
    first = [next(reader) for _ in range(1000)]
    assert first[0][0] == "ref-0" and len(first) == 1000
    assert stream.read_bytes < 256 * 1024


# ---------------------------------------------------------------- fraud screening of batch rows

def same_card_rows(card: str, count: int) -> list[str]:
    return [row(customer=f"cus_{uuid.uuid4().hex[:8]}", number=card, amount="1000") for _ in range(count)]


def test_batch_rows_are_screened_for_velocity_across_the_file(aws, ingestion):
    card = fresh_card()
    _, event = upload(aws, "\n".join([HEADER] + same_card_rows(card, 6)) + "\n")
    result = ingestion.handler(event, LambdaContext())
    report = report_of(aws, result)
    assert report["counts"] == {"total": 6, "accepted": 6, "rejected": 0, "duplicate": 0}
    assert report["statuses"] == {"approved": 4, "review": 2, "declined": 0}
    flagged = {entry["row"]: entry for entry in report["scored_rows"]}
    assert sorted(flagged) == [5, 6]
    assert flagged[5]["status"] == "review"
    assert flagged[5]["risk"] == {"score": 45, "level": "medium", "reasons": ["CARD_VELOCITY"]}
    assert repository.get(flagged[6]["payment_id"])["status"] == "review"
    queued = {pid for body in queued_bodies("payments-test-queue") for pid in json.loads(body)["payment_ids"]}
    assert flagged[5]["payment_id"] not in queued and flagged[6]["payment_id"] not in queued


def test_batch_rows_count_towards_api_velocity_and_the_other_way_round(aws, ingestion, context):
    from tests.functions.conftest import api_event, new_key, payment_body
    app = load_app("payment_api")

    def api_payment(card):
        body = payment_body(customer_id=f"cus_{uuid.uuid4().hex[:10]}", billing_country=None,
                            card={"number": card, "exp_month": 1, "exp_year": 2031})
        return json.loads(app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}),
                                      context)["body"])
    api_first = fresh_card()
    assert [api_payment(api_first)["status"] for _ in range(4)] == ["approved"] * 4
    _, event = upload(aws, "\n".join([HEADER] + same_card_rows(api_first, 1)) + "\n")
    report = report_of(aws, ingestion.handler(event, LambdaContext()))
    assert [entry["risk"]["reasons"] for entry in report["scored_rows"]] == [["CARD_VELOCITY"]]
    file_first = fresh_card()
    _, event = upload(aws, "\n".join([HEADER] + same_card_rows(file_first, 4)) + "\n")
    assert report_of(aws, ingestion.handler(event, LambdaContext()))["statuses"]["approved"] == 4
    after_file = api_payment(file_first)
    assert (after_file["status"], after_file["risk"]["reasons"]) == ("review", ["CARD_VELOCITY"])


def test_one_file_cannot_push_unlimited_approved_payments_on_one_card(aws, ingestion):
    card = fresh_card()
    _, event = upload(aws, "\n".join([HEADER] + same_card_rows(card, 40)) + "\n")
    report = report_of(aws, ingestion.handler(event, LambdaContext()))
    assert report["counts"]["accepted"] == 40
    assert report["statuses"]["approved"] == 4


@pytest.mark.parametrize("key, merchant_id", [
    ("incoming/mer_1/file.csv", "mer_1"),
    ("incoming/file.csv", None),           # no merchant folder
    ("incoming//file.csv", None),          # an empty merchant folder
    ("incoming/mer_1/", None),             # no file name
    ("incoming/mer_1/deeper/file.csv", None),
    ("uploads/mer_1/file.csv", None),      # outside incoming/
])
def test_only_incoming_merchant_file_keys_name_a_merchant(key, merchant_id):
    from paylib import batch
    assert batch.merchant_prefix_of(key) == merchant_id
    if merchant_id is None:  # no merchant to look up: the whole file is refused for it
        assert batch.merchant_refusal(key) == (None, batch.NO_MERCHANT_PREFIX)
