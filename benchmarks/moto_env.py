"""The moto setup the batch benchmarks share: the test environment (tables, versioned bucket,
queue, secrets and an active merchant, from tests/functions/conftest.py), a fresh account per
measurement, a merchant's generated file and the neutralised moto transaction backup.

Importing this module sets the environment variables paylib reads (conftest does, on import)."""
from __future__ import annotations

import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [path for path in (str(ROOT), str(ROOT / "functions")) if path not in sys.path]

from tests.functions import conftest as fixtures  # noqa: E402  (the test environment: tables, bucket, merchant)


def all_accepted(rows: int) -> dict[str, int]:
    """The counts of a valid run: every row became exactly one accepted payment."""
    return {"total": rows, "accepted": rows, "rejected": 0, "duplicate": 0}


class FreshAccount:
    """A new moto account with the test resources (tables, versioned bucket, queue, merchant)."""

    def __enter__(self) -> FreshAccount:
        from moto import mock_aws
        from paylib import aws as paylib_aws
        from paylib import keys
        self.mock = mock_aws()
        self.mock.start()
        paylib_aws.reset()
        keys.clear_cache()
        self.resources = fixtures.create_resources()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mock.stop()

    @property
    def bucket(self) -> str:
        return os.environ["BATCH_BUCKET"]

    def upload(self, text: str) -> tuple[str, str | None]:
        """Upload under the test merchant's prefix (`incoming/<merchant_id>/`): (key, version id)."""
        key = fixtures.batch_key(uuid.uuid4().hex)
        answer = self.resources.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"))
        return key, answer.get("VersionId")


def merchant_id() -> str:
    """The merchant every benchmark file belongs to (created active with the resources)."""
    return fixtures.TEST_MERCHANT


def csv_text(rows: int, seed: int) -> str:
    """A merchant's file: valid rows, distinct cards, each customer twice, modest amounts (no
    velocity or amount rule fires, so every row is an approved payment: the write-heavy case)."""
    from paylib import batch
    rng = random.Random(seed)
    lines = [",".join(batch.COLUMNS)]
    for index in range(rows):
        lines.append(f"ref-{seed}-{index},cus_{seed}_{index // 2},{rng.randint(100, 20_000)},EUR,"
                     f"{fixtures.fresh_card(rng=rng)},{rng.randint(1, 12)},2031")
    return "\n".join(lines) + "\n"


def neutralise_transaction_backup() -> None:
    """moto deep-copies a whole table before every TransactWriteItems action (its rollback
    backup), so a run of N transactional rows costs O(N^2) there and real DynamoDB does not.
    Hands moto the table itself instead of the copy: only sound while no transaction is
    cancelled, which the callers check (every row must be accepted)."""
    import copy
    import types

    import moto.dynamodb.models as models

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, models.Table) else copy.deepcopy(value, memo)
    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)  # type: ignore[attr-defined]
