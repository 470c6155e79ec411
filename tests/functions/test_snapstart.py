"""SnapStart runtime hooks, called directly (snapshot_restore_py exists only in the Lambda
runtime), and the key cache they reset."""
from __future__ import annotations

import importlib.util
import random
import sys

import boto3
import pytest
from paylib import aws as paylib_aws
from paylib import keys, snapstart

from tests.functions.conftest import FUNCTIONS, REGION


class FakeRuntime:
    """Stands in for snapshot_restore_py: records what is registered."""

    def __init__(self):
        self.before, self.after = [], []

    def register_before_snapshot(self, function, *args, **kwargs):
        self.before.append((function, args, kwargs))

    def register_after_restore(self, function, *args, **kwargs):
        self.after.append((function, args, kwargs))


def test_two_restores_of_one_snapshot_draw_different_random_numbers():
    random.seed(20261127)  # the state frozen in the snapshot
    snapstart.after_restore()
    first_environment = [random.random() for _ in range(4)]
    random.seed(20261127)  # another environment restored from the same snapshot
    snapstart.after_restore()
    second_environment = [random.random() for _ in range(4)]
    random.seed(20261127)
    without_hook = [random.random() for _ in range(4)]
    assert first_environment != second_environment
    assert without_hook not in (first_environment, second_environment)


def test_restore_drops_the_clients_of_the_snapshot(aws):
    before = paylib_aws.client("dynamodb")
    snapstart.after_restore()
    after = paylib_aws.client("dynamodb")
    assert after is not before
    assert after.list_tables()["TableNames"]  # the new client works


def test_restore_drops_a_cached_key_that_was_rotated_meanwhile(own_secret):
    snapshot_ring = keys.keyring()
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(SecretId=own_secret, SecretString="r" * 40)
    assert keys.keyring() is snapshot_ring  # still cached: the snapshot would answer with the old key
    snapstart.after_restore()
    restored_ring = keys.keyring()
    assert restored_ring.current.version_id != snapshot_ring.current.version_id
    assert restored_ring.versions[1].version_id == snapshot_ring.current.version_id  # old one: AWSPREVIOUS


def test_before_snapshot_creates_the_clients_and_reads_no_secret(aws, monkeypatch):
    paylib_aws.reset()
    monkeypatch.setattr(keys, "_load", lambda arn, setting: pytest.fail("a secret read before the snapshot"))
    snapstart.before_snapshot(("dynamodb", "sqs"))
    assert paylib_aws.client.cache_info().currsize == 2


def test_register_is_a_no_op_outside_the_lambda_runtime():
    assert "snapshot_restore_py" not in sys.modules
    assert snapstart.register(("dynamodb",)) is False


def test_register_hands_both_hooks_to_the_runtime():
    runtime = FakeRuntime()
    assert snapstart.register(("dynamodb", "sqs"), runtime=runtime) is True
    assert runtime.before == [(snapstart.before_snapshot, (("dynamodb", "sqs"),), {})]
    assert runtime.after == [(snapstart.after_restore, (), {})]


@pytest.mark.parametrize("name", ["payment_api", "validation", "fraud_screening", "status"])
def test_each_api_function_registers_the_hooks_when_it_is_imported(aws, monkeypatch, name):
    runtime = FakeRuntime()
    monkeypatch.setattr(snapstart, "snapshot_restore_py", runtime)
    spec = importlib.util.spec_from_file_location(f"snapstart_probe_{name}", FUNCTIONS / name / "app.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert [hook for hook, _, _ in runtime.after] == [snapstart.after_restore]
    assert "dynamodb" in runtime.before[0][1][0]


# ---------------------------------------------------------------- the key cache

def test_the_keyring_is_read_once_per_cache_lifetime(own_secret, monkeypatch):
    loads = []
    real_load = keys._load
    monkeypatch.setattr(keys, "_load", lambda arn, setting: loads.append(arn) or real_load(arn, setting))
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    first = keys.keyring(clock)
    now[0] += keys.CACHE_SECONDS - 1
    assert keys.keyring(clock) is first and len(loads) == 1
    now[0] += 2
    keys.keyring(clock)
    assert len(loads) == 2


@pytest.mark.parametrize("secret_string, expected", [("p" * 32, b"p" * 32), ('{"key": "' + "j" * 20 + '"}', b"j" * 20)])
def test_secret_formats(aws, monkeypatch, secret_string, expected):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"payments-test-format-{len(secret_string)}", SecretString=secret_string)["ARN"]
    monkeypatch.setenv("CARD_FINGERPRINT_SECRET_ARN", arn)
    keys.clear_cache()
    try:
        ring = keys.keyring()
        assert ring.current.secret == expected and len(ring.versions) == 1
    finally:
        keys.clear_cache()


def test_a_short_secret_is_refused(aws, monkeypatch):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="payments-test-short", SecretString="short")["ARN"]
    monkeypatch.setenv("CARD_FINGERPRINT_SECRET_ARN", arn)
    keys.clear_cache()
    try:
        with pytest.raises(paylib_aws.MissingConfiguration):
            keys.keyring()
    finally:
        keys.clear_cache()
