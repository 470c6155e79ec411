"""Operator tool for merchants and their secret API keys.

    python tools/merchants.py --env dev create --name "Acme Books"
    python tools/merchants.py --env dev issue-key --merchant mer_... [--expires-in-days 90]
    python tools/merchants.py --env dev revoke-key --merchant mer_... --key key_...
    python tools/merchants.py --env dev suspend --merchant mer_...      (reactivate: the same)
    python tools/merchants.py --env dev list
(or the make targets: merchant-create, merchant-key-issue, merchant-key-revoke, merchant-suspend,
merchant-reactivate, merchants.)

Design decisions:
- AWS is reached through deploylib.aws (the deploy tool's client layer): AWS_ENDPOINT_URL and
  profiles apply, throttling is retried. The environment's resources are found by their stack
  exports (payments-<env>-data-MerchantsTableName, -security-MerchantKeyPepperSecretArn,
  -api-UsagePlanId), in the region of parameters/<env>.yaml.
- A secret key is printed once, when issued, and never stored: only its peppered HMAC is
  (paylib/merchants.py). Nothing this tool prints or raises holds a hash or a secret.
- Rotation: issue a new key (the old one keeps working), move clients to it, revoke the old
  one. A third active key is refused. Every change to a merchant's keys or status is one
  TransactWriteItems conditional on the merchant item's version, so concurrent operators
  cannot exceed the limit or leave a key with a stale merchant status.
- One exception root (MerchantToolError) and AWS errors are caught in main(): one line on
  stderr, an exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "functions"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402
from paylib import aws as items  # noqa: E402  (DynamoDB (de)serialisation only)
from paylib import keys, merchants  # noqa: E402
from paylib.merchants import MerchantStatus  # noqa: E402

from deploylib.aws import ClientFactory, Context  # noqa: E402

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_AWS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXPORTS = {"table": ("data", "MerchantsTableName"), "pepper_arn": ("security", "MerchantKeyPepperSecretArn"),
           "usage_plan_id": ("api", "UsagePlanId")}
MAX_NAME_LENGTH = 100
SECONDS_PER_DAY = 86400


class MerchantToolError(Exception):
    """Every expected failure; the message is what the operator reads."""

    exit_code = EXIT_REFUSED


class ConfigurationError(MerchantToolError):
    exit_code = EXIT_USAGE


class NotFound(MerchantToolError):
    pass


class Refused(MerchantToolError):
    pass


@dataclass(frozen=True)
class Environment:
    name: str
    region: str
    table: str
    pepper_arn: str
    usage_plan_id: str


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def region_of(environment: str) -> str:
    from templates_src.config import ConfigError, load_environment
    try:
        return load_environment(environment).region
    except (ConfigError, FileNotFoundError, ValueError) as error:
        raise ConfigurationError(f"cannot read parameters/{environment}.yaml: {str(error).splitlines()[0]}") from None


def resolve(ctx: Context, environment: str, region: str) -> Environment:
    """The environment's merchant resources, from the stacks' exports."""
    cfn, exported, token = ctx.client("cloudformation", region), {}, None
    while True:
        answer = cfn.call("list_exports", **({"NextToken": token} if token else {}))
        exported.update({export["Name"]: export["Value"] for export in answer.get("Exports", [])})
        token = answer.get("NextToken")
        if not token:
            break
    names = {field: f"payments-{environment}-{layer}-{key}" for field, (layer, key) in EXPORTS.items()}
    missing = sorted(name for name in names.values() if name not in exported)
    if missing:
        raise ConfigurationError(f"exports not found in {region}: {', '.join(missing)} (are the stacks of "
                                 f"{environment} deployed with the merchants change?)")
    return Environment(environment, region, **{field: exported[name] for field, name in names.items()})


class MerchantAdmin:
    """The operations, on one environment. `clock` gives epoch seconds (tests inject one)."""

    def __init__(self, ctx: Context, environment: Environment, clock: Callable[[], float] = time.time):
        self.env, self.clock = environment, clock
        self.dynamodb = ctx.client("dynamodb", environment.region)
        self.apigateway = ctx.client("apigateway", environment.region)
        self.secrets = ctx.client("secretsmanager", environment.region)

    # ------------------------------------------------------------ reading

    def merchant(self, merchant_id: str) -> dict:
        if not merchants.MERCHANT_ID.fullmatch(merchant_id):
            raise NotFound(f"{merchant_id!r} is not a merchant id (mer_ followed by 24 hex digits)")
        answer = self.dynamodb.call("get_item", TableName=self.env.table, ConsistentRead=True,
                                    Key={"pk": {"S": merchants.merchant_pk(merchant_id)}})
        if "Item" not in answer:
            raise NotFound(f"no merchant {merchant_id} in {self.env.name}")
        return items.from_dynamo(answer["Item"])

    def key_items(self, merchant: dict) -> list[dict]:
        """The merchant's unrevoked keys (the ones its item names), oldest first."""
        hashes = list(merchant.get("keys", {}).values())
        if not hashes:
            return []
        answer = self.dynamodb.call("batch_get_item", RequestItems={self.env.table: {
            "ConsistentRead": True, "Keys": [{"pk": {"S": merchants.key_pk(hashed)}} for hashed in hashes]}})
        found = [items.from_dynamo(item) for item in answer.get("Responses", {}).get(self.env.table, [])]
        return sorted(found, key=lambda item: item["created_at"])

    def list_merchants(self) -> list[dict]:
        found, start = [], None
        while True:
            page = self.dynamodb.call("scan", TableName=self.env.table, ConsistentRead=True,
                                      FilterExpression="begins_with(pk, :merchant)",
                                      ExpressionAttributeValues={":merchant": {"S": merchants.MERCHANT_PREFIX}},
                                      **({"ExclusiveStartKey": start} if start else {}))
            found += [items.from_dynamo(item) for item in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(found, key=lambda merchant: merchant["created_at"])

    # ------------------------------------------------------------ changing

    def create(self, name: str) -> dict:
        name = name.strip()
        if not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
            raise Refused(f"a merchant name is 1 to {MAX_NAME_LENGTH} printable characters")
        merchant_id = merchants.new_merchant_id()
        api_key = self.apigateway.call("create_api_key", name=f"payments-{self.env.name}-{merchant_id}",
                                       description="usage-plan identifier of a merchant (not a credential)",
                                       enabled=True, tags={"merchant_id": merchant_id})
        try:
            self.apigateway.call("create_usage_plan_key", usagePlanId=self.env.usage_plan_id,
                                 keyId=api_key["id"], keyType="API_KEY")
            item = merchants.merchant_item(merchant_id, name, api_key["value"], api_key["id"], iso(self.clock()))
            self.dynamodb.call("put_item", TableName=self.env.table, Item=items.to_dynamo(item),
                               ConditionExpression="attribute_not_exists(pk)")
        except BaseException:
            self.apigateway.call("delete_api_key", apiKey=api_key["id"])  # nothing half-made stays behind
            raise
        return item

    def issue_key(self, merchant_id: str, expires_in_days: int | None = None) -> tuple[str, str]:
        """(secret key, key id) of a new key; refused when two keys are already active."""
        merchant, now = self.merchant(merchant_id), int(self.clock())
        if merchant["status"] != MerchantStatus.ACTIVE.value:
            raise Refused(f"merchant {merchant_id} is {merchant['status']}: reactivate it before issuing a key")
        active = [key for key in self.key_items(merchant) if merchants.is_active(key, now)]
        if len(active) >= merchants.MAX_ACTIVE_KEYS:
            raise Refused(f"merchant {merchant_id} already has {len(active)} active keys "
                          f"({', '.join(key['key_id'] for key in active)}): revoke one first")
        secret_key, key_id = merchants.new_secret_key(self.env.name), merchants.new_key_id()
        hashed = merchants.key_hash(self._pepper(), secret_key)
        expires_at = now + expires_in_days * SECONDS_PER_DAY if expires_in_days else None
        kept = {key["key_id"]: merchant["keys"][key["key_id"]] for key in active}  # expired ones drop out
        self._transact(merchant, [{"Put": {
            "TableName": self.env.table, "ConditionExpression": "attribute_not_exists(pk)",
            "Item": items.to_dynamo(merchants.key_item(hashed, merchant, key_id, iso(now), expires_at))}}],
            "SET #keys = :keys", {":keys": {**kept, key_id: hashed}})
        return secret_key, key_id

    def revoke_key(self, merchant_id: str, key_id: str) -> None:
        merchant = self.merchant(merchant_id)
        hashed = merchant.get("keys", {}).get(key_id)
        if hashed is None:
            raise NotFound(f"merchant {merchant_id} has no unrevoked key {key_id}")
        revoke = {"Update": {"TableName": self.env.table, "Key": {"pk": {"S": merchants.key_pk(hashed)}},
                             "UpdateExpression": "SET revoked = :yes, revoked_at = :now",
                             "ConditionExpression": "attribute_exists(pk)",
                             "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":now": {"S": iso(self.clock())}}}}
        remaining = {kept_id: kept for kept_id, kept in merchant["keys"].items() if kept_id != key_id}
        self._transact(merchant, [revoke], "SET #keys = :keys", {":keys": remaining})

    def set_status(self, merchant_id: str, status: MerchantStatus) -> bool:
        """False when the merchant already had this status. The copy on every key changes in
        the same transaction; the usage-plan API key is enabled or disabled to match."""
        merchant = self.merchant(merchant_id)
        if merchant["status"] == status.value:
            return False
        copies = [{"Update": {"TableName": self.env.table, "Key": {"pk": {"S": merchants.key_pk(hashed)}},
                              "UpdateExpression": "SET merchant_status = :status",
                              "ConditionExpression": "attribute_exists(pk)",
                              "ExpressionAttributeValues": {":status": {"S": status.value}}}}
                  for hashed in merchant.get("keys", {}).values()]
        self._transact(merchant, copies, "SET #status = :status", {":status": status.value}, {"#status": "status"})
        self.apigateway.call("update_api_key", apiKey=merchant["api_key_id"], patchOperations=[
            {"op": "replace", "path": "/enabled", "value": str(status is MerchantStatus.ACTIVE).lower()}])
        return True

    # ------------------------------------------------------------ helpers

    def _pepper(self) -> bytes:
        answer = self.secrets.call("get_secret_value", SecretId=self.env.pepper_arn, VersionStage="AWSCURRENT")
        secret = keys.secret_bytes(answer)
        if len(secret) < keys.MIN_SECRET_BYTES:
            raise ConfigurationError(f"the merchant key pepper is shorter than {keys.MIN_SECRET_BYTES} bytes")
        return merchants.pepper_from_secret(secret)

    def _transact(self, merchant: dict, actions: list[dict], update: str, values: dict,
                  names: dict | None = None) -> None:
        """`actions` and the merchant item's update, all or nothing, if nobody changed the
        merchant since it was read (its version)."""
        version = int(merchant["version"])
        merchant_update = {"Update": {
            "TableName": self.env.table, "Key": {"pk": {"S": merchants.merchant_pk(merchant["merchant_id"])}},
            "UpdateExpression": update + ", #version = :next", "ConditionExpression": "#version = :read",
            "ExpressionAttributeNames": {"#version": "version", "#keys": "keys", **(names or {})},
            "ExpressionAttributeValues": items.to_dynamo({**values, ":next": version + 1, ":read": version})}}
        if "#keys" not in update:
            del merchant_update["Update"]["ExpressionAttributeNames"]["#keys"]
        try:
            self.dynamodb.call("transact_write_items", TransactItems=[merchant_update, *actions])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            raise Refused(f"merchant {merchant['merchant_id']} was changed by someone else meanwhile: "
                          "nothing was written, run the command again") from None


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tools/merchants.py", description="Merchants and their secret API keys.")
    parser.add_argument("--env", required=True, help="environment: dev, staging, prod, local")
    parser.add_argument("--region", help="override the region of parameters/<env>.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="a merchant and its usage-plan API key").add_argument("--name", required=True)
    issue = commands.add_parser("issue-key", help="a new secret key, printed once (rotation: then revoke the old)")
    issue.add_argument("--merchant", required=True)
    issue.add_argument("--expires-in-days", type=int, choices=range(1, 3651), metavar="DAYS")
    revoke = commands.add_parser("revoke-key", help="a key stops working (403) once authorizer caches expire")
    revoke.add_argument("--merchant", required=True)
    revoke.add_argument("--key", required=True, help="the key_id printed at issue or by list")
    for name in ("suspend", "reactivate"):
        commands.add_parser(name, help=f"{name} a merchant (all of its keys)").add_argument("--merchant", required=True)
    commands.add_parser("list", help="merchants, their status and key ids (never a secret)")
    return parser.parse_args(argv)


def run(admin: MerchantAdmin, args: argparse.Namespace, out: TextIO) -> None:
    if args.command == "create":
        merchant = admin.create(args.name)
        print(f"created merchant {merchant['merchant_id']} ({merchant['name']}), usage-plan API key "
              f"{merchant['api_key_id']}; next: issue-key --merchant {merchant['merchant_id']}", file=out)
    elif args.command == "issue-key":
        secret_key, key_id = admin.issue_key(args.merchant, args.expires_in_days)
        print(f"issued {key_id} for {args.merchant}. The secret key is shown this once; store it now:", file=out)
        print(secret_key, file=out)
    elif args.command == "revoke-key":
        admin.revoke_key(args.merchant, args.key)
        print(f"revoked {args.key} of {args.merchant} (cached authorizer answers expire within their TTL)", file=out)
    elif args.command in ("suspend", "reactivate"):
        status = MerchantStatus.SUSPENDED if args.command == "suspend" else MerchantStatus.ACTIVE
        changed = admin.set_status(args.merchant, status)
        print(f"{args.merchant} is {status.value}" + ("" if changed else " already (nothing changed)"), file=out)
    else:
        print_merchants(admin, out)


def print_merchants(admin: MerchantAdmin, out: TextIO) -> None:
    now = int(admin.clock())
    print(f"{'merchant':<28} {'status':<10} {'created':<20} {'name':<30} keys", file=out)
    for merchant in admin.list_merchants():
        described = [f"{key['key_id']}" + ("" if merchants.is_active(key, now) else " (expired)") +
                     (f" until {iso(key['expires_at'])[:10]}" if key.get("expires_at") else "")
                     for key in admin.key_items(merchant)]
        print(f"{merchant['merchant_id']:<28} {merchant['status']:<10} {merchant['created_at'][:19]:<20} "
              f"{merchant['name'][:30]:<30} {', '.join(described) or '-'}", file=out)


def main(argv: list[str] | None = None, context: Context | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr, clock: Callable[[], float] = time.time) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:  # argparse printed the usage already
        return EXIT_OK if exit_.code == 0 else EXIT_USAGE
    ctx = context or Context(client_factory=ClientFactory())
    try:
        region = args.region or region_of(args.env)
        run(MerchantAdmin(ctx, resolve(ctx, args.env, region), clock), args, out)
        return EXIT_OK
    except MerchantToolError as error:
        print(f"error: {error}", file=err)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        print(f"error: AWS call failed: {error}", file=err)
        return EXIT_AWS
    except KeyboardInterrupt:
        print("\ninterrupted", file=err)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
