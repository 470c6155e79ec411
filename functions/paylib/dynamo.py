"""DynamoDB requests that span items: consistent multi-table reads and all-or-nothing writes.

Design decisions:
- One BatchGetItem reads what a decision needs from several tables at once (idempotency record,
  velocity counters, existing payments), consistently, so a request pays one round trip for all
  of its reads. Keys are sent 100 at a time (the API's limit); unprocessed keys are retried with
  backoff.
- One TransactWriteItems writes what must happen together (payment, idempotency record,
  velocity counters): either all of it is stored or none, whatever crashes when. Its conditions
  are the concurrency control: a condition that no longer holds cancels the transaction, and
  `Cancelled.codes` says which action failed (one code per action, "None" for the others).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable

from . import aws
from .shapes import DynamoItem, Item, JsonObject, TransactAction

MAX_BATCH_GET_KEYS = 100
MAX_TRANSACTION_ACTIONS = 100
MAX_UNPROCESSED_ROUNDS = 8


class Cancelled(Exception):
    """The transaction wrote nothing: a condition failed or another transaction held an item."""

    def __init__(self, codes: list[str]):
        super().__init__("transaction cancelled: " + ", ".join(codes))
        self.codes = codes

    def failed(self, index: int) -> bool:
        return index < len(self.codes) and self.codes[index] not in ("None", "")


def batch_get(keys_by_table: dict[str, list[DynamoItem]],
              sleep: Callable[[float], None] = time.sleep) -> dict[str, list[Item]]:
    """Items found, per table (plain values); absent keys are simply missing from the answer."""
    pending = [(table, key) for table, keys in keys_by_table.items() for key in keys]
    found: dict[str, list[Item]] = {table: [] for table in keys_by_table}
    for start in range(0, len(pending), MAX_BATCH_GET_KEYS):
        request: dict[str, JsonObject] = {}
        for table, key in pending[start:start + MAX_BATCH_GET_KEYS]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        _get_all(request, found, sleep)
    return found


def _get_all(request: dict[str, JsonObject], found: dict[str, list[Item]], sleep: Callable[[float], None]) -> None:
    client = aws.client("dynamodb")
    for attempt in range(MAX_UNPROCESSED_ROUNDS + 1):
        answer = client.batch_get_item(RequestItems=request)
        for table, items in answer.get("Responses", {}).items():
            found[table].extend(aws.from_dynamo(item) for item in items)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return
        sleep(min(2.0, 0.05 * 2 ** attempt) * random.random())
    raise RuntimeError("DynamoDB kept returning unprocessed keys")


def transact_write(actions: list[TransactAction]) -> None:
    """Write every action or none; raise Cancelled with one code per action."""
    if not 0 < len(actions) <= MAX_TRANSACTION_ACTIONS:
        raise ValueError(f"a transaction holds 1 to {MAX_TRANSACTION_ACTIONS} actions, not {len(actions)}")
    client = aws.client("dynamodb")
    try:
        client.transact_write_items(TransactItems=actions)
    except client.exceptions.TransactionCanceledException as error:
        reasons = error.response.get("CancellationReasons") or []
        raise Cancelled([reason.get("Code", "") for reason in reasons]) from None


def put(table: str, item: Item, condition: str, values: Item | None = None,
        names: dict[str, str] | None = None) -> TransactAction:
    """A transaction action: put `item` (plain values) if `condition` holds."""
    action: JsonObject = {"TableName": table, "Item": aws.to_dynamo(item), "ConditionExpression": condition}
    if values:
        action["ExpressionAttributeValues"] = aws.to_dynamo(values)
    if names:
        action["ExpressionAttributeNames"] = names
    return {"Put": action}
