"""tools/merchants.py against moto: create (API key in the usage plan), issue (printed once, a
third active key refused), rotate, revoke, suspend/reactivate (the key copies and the API key
follow), list (no secret, no hash), clear errors with exit codes, and keys that the authorizer
accepts or denies accordingly."""
from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ENV = "dev"  # parameters/dev.yaml: eu-west-1
NOW = 2_000_000_000.0
SECRET_KEY = re.compile(r"^sk_dev_[A-Za-z0-9_-]{43,}$", re.MULTILINE)


def load_tool():
    spec = importlib.util.spec_from_file_location("merchants_tool", ROOT / "tools" / "merchants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["merchants_tool"] = module
    spec.loader.exec_module(module)
    return module


tool = load_tool()


class World:
    """moto resources of one environment and the tool run against them (clock injected)."""

    def __init__(self):
        suffix = uuid.uuid4().hex[:8]
        self.table = f"payments-tooltest-merchants-{suffix}"
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.dynamodb.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        self.pepper_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"payments-tooltest-pepper-{suffix}", SecretString=uuid.uuid4().hex * 2)["ARN"]
        self.apigateway = boto3.client("apigateway", region_name=REGION)
        api_id = self.apigateway.create_rest_api(name=f"payments-tooltest-{suffix}")["id"]
        self.usage_plan_id = self.apigateway.create_usage_plan(name=f"plan-{suffix}")["id"]
        exports = {"data-MerchantsTableName": self.table, "security-MerchantKeyPepperSecretArn": self.pepper_arn,
                   "api-UsagePlanId": self.usage_plan_id}
        self.export_stack(exports)
        self.api_id, self.now = api_id, NOW

    def export_stack(self, exports: dict) -> None:
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {name.replace("-", ""): {"Value": value, "Export": {"Name": f"payments-{ENV}-{name}"}}
                                for name, value in exports.items()}}
        self.stack = f"payments-{ENV}-exports-{uuid.uuid4().hex[:6]}"
        boto3.client("cloudformation", region_name=REGION).create_stack(StackName=self.stack,
                                                                         TemplateBody=json.dumps(template))

    def close(self) -> None:
        """Export names are unique per region, and moto may be shared with the function tests'
        session (then nothing is reset between tests): the next world exports them again."""
        boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=self.stack)

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = tool.main(["--env", ENV, *argv], out=out, err=err, clock=lambda: self.now)
        return code, out.getvalue(), err.getvalue()

    def create(self, name: str = "Acme Books") -> str:
        code, out, _ = self.run("create", "--name", name)
        assert code == 0, out
        return re.search(r"mer_[0-9a-f]{24}", out).group(0)

    def issue(self, merchant_id: str, *extra: str) -> tuple[str, str]:
        code, out, err = self.run("issue-key", "--merchant", merchant_id, *extra)
        assert code == 0, err
        return SECRET_KEY.search(out).group(0), re.search(r"key_[0-9a-f]{12}", out).group(0)

    def items(self) -> list[dict]:
        return self.dynamodb.scan(TableName=self.table)["Items"]

    def verdict(self, secret_key: str) -> str:
        """What the authorizer's data layer decides for this key now (the tool's pepper and table)."""
        from paylib import merchants
        pepper = tool.MerchantAdmin(tool.Context(client_factory=tool.ClientFactory()), self.environment())._pepper()
        record = merchants.find_key(secret_key, pepper)
        return "unknown" if record is None else record.verdict(int(self.now)).value

    def environment(self):
        return tool.Environment(ENV, REGION, self.table, self.pepper_arn, self.usage_plan_id)


@pytest.fixture()
def world(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        from paylib import aws as paylib_aws
        paylib_aws.reset()
        created = World()
        monkeypatch.setenv("MERCHANTS_TABLE", created.table)
        yield created
        created.close()
        paylib_aws.reset()


def test_create_makes_the_merchant_and_its_usage_plan_key(world):
    merchant_id = world.create("Acme Books")
    item = next(item for item in world.items() if item["pk"]["S"] == f"MERCHANT#{merchant_id}")
    assert item["status"]["S"] == "active" and item["name"]["S"] == "Acme Books"
    plan_keys = world.apigateway.get_usage_plan_keys(usagePlanId=world.usage_plan_id)["items"]
    assert [key["id"] for key in plan_keys] == [item["api_key_id"]["S"]]
    assert item["usage_key"]["S"] == world.apigateway.get_api_key(apiKey=item["api_key_id"]["S"],
                                                                  includeValue=True)["value"]


def test_an_issued_key_is_printed_once_and_stored_only_as_a_hash(world):
    merchant_id = world.create()
    secret_key, key_id = world.issue(merchant_id)
    assert len(secret_key.split("_", 2)[2]) >= 43  # 32 random bytes, url-safe base64
    stored = json.dumps(world.items())
    assert secret_key not in stored and secret_key.split("_", 2)[2][:20] not in stored
    assert key_id in stored
    assert world.verdict(secret_key) == "valid"
    code, listing, _ = world.run("list")
    assert code == 0 and key_id in listing and secret_key not in listing
    assert not re.search(r"[0-9a-f]{64}", listing)  # no hash either


def test_a_third_active_key_is_refused_and_rotation_keeps_the_old_key_until_revoked(world):
    merchant_id = world.create()
    old_key, old_id = world.issue(merchant_id)
    new_key, _ = world.issue(merchant_id)
    code, out, err = world.run("issue-key", "--merchant", merchant_id)
    assert code == tool.EXIT_REFUSED and out == "" and "already has 2 active keys" in err and old_id in err
    assert [world.verdict(old_key), world.verdict(new_key)] == ["valid", "valid"]
    assert world.run("revoke-key", "--merchant", merchant_id, "--key", old_id)[0] == 0
    assert [world.verdict(old_key), world.verdict(new_key)] == ["revoked", "valid"]
    world.issue(merchant_id)  # a revoked key frees its place


def test_an_expired_key_frees_its_place_and_is_denied(world):
    merchant_id = world.create()
    short_key, _ = world.issue(merchant_id, "--expires-in-days", "1")
    world.issue(merchant_id)
    world.now += 86400
    assert world.verdict(short_key) == "expired"
    world.issue(merchant_id)


def test_suspend_and_reactivate_move_every_key_and_the_api_key(world):
    merchant_id = world.create()
    first, _ = world.issue(merchant_id)
    second, _ = world.issue(merchant_id)
    assert world.run("suspend", "--merchant", merchant_id)[0] == 0
    assert [world.verdict(first), world.verdict(second)] == ["merchant_suspended"] * 2
    api_key_id = next(item for item in world.items() if item["pk"]["S"].startswith("MERCHANT#"))["api_key_id"]["S"]
    assert world.apigateway.get_api_key(apiKey=api_key_id)["enabled"] is False
    code, _, err = world.run("issue-key", "--merchant", merchant_id)
    assert code == tool.EXIT_REFUSED and "suspended" in err
    assert "already" in world.run("suspend", "--merchant", merchant_id)[1]
    assert world.run("reactivate", "--merchant", merchant_id)[0] == 0
    assert [world.verdict(first), world.verdict(second)] == ["valid", "valid"]
    assert world.apigateway.get_api_key(apiKey=api_key_id)["enabled"] is True


def test_a_concurrent_change_is_refused_without_writing(world, monkeypatch):
    merchant_id = world.create()
    admin = tool.MerchantAdmin(tool.Context(client_factory=tool.ClientFactory()), world.environment(),
                               clock=lambda: world.now)
    stale = admin.merchant(merchant_id)
    world.issue(merchant_id)  # another operator, after our read
    monkeypatch.setattr(admin, "merchant", lambda _: stale)
    before = world.items()
    with pytest.raises(tool.Refused, match="changed by someone else"):
        admin.issue_key(merchant_id)
    assert len(world.items()) == len(before)


@pytest.mark.parametrize("argv, code, message", [
    (("issue-key", "--merchant", "mer_" + "0" * 24), tool.EXIT_REFUSED, "no merchant mer_"),
    (("issue-key", "--merchant", "acme"), tool.EXIT_REFUSED, "is not a merchant id"),
    (("revoke-key", "--merchant", "{merchant}", "--key", "key_000000000000"), tool.EXIT_REFUSED, "no unrevoked key"),
    (("create", "--name", "  "), tool.EXIT_REFUSED, "printable characters"),
    (("frobnicate",), tool.EXIT_USAGE, ""),
])
def test_failures_are_one_line_and_an_exit_code(world, argv, code, message):
    merchant_id = world.create()
    answer, out, err = world.run(*(part.format(merchant=merchant_id) for part in argv))
    assert answer == code and message in err and "Traceback" not in err + out


def test_missing_exports_name_what_to_deploy(world, monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    assert tool.main(["--env", "staging", "--region", REGION, "list"], out=out, err=err) == tool.EXIT_USAGE
    assert "payments-staging-api-UsagePlanId" in err.getvalue() and "Traceback" not in err.getvalue()


def test_an_aws_failure_is_reported_without_a_traceback(world):
    world.dynamodb.delete_table(TableName=world.table)
    code, _, err = world.run("list")
    assert code == tool.EXIT_AWS and err.startswith("error: AWS call failed:") and "Traceback" not in err


def test_a_failed_create_leaves_no_api_key_behind(world, monkeypatch):
    world.dynamodb.delete_table(TableName=world.table)
    before = world.apigateway.get_api_keys(limit=500)["items"]
    assert world.run("create", "--name", "Acme")[0] == tool.EXIT_AWS
    assert world.apigateway.get_api_keys(limit=500)["items"] == before
