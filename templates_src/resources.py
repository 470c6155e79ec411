"""What a function may use, and what each use grants: the one place access is defined.

A function's `function.yaml` says what it uses and how (`uses: {transactions_table: read_write,
payment_queue: send}`). Every usable resource is a row of `RESOURCES`, derived from the layers'
own data (`data.TABLES`, `messaging.QUEUES`, `security.SECRET_PURPOSES`) plus the few topics and
bucket prefixes below; each kind has its access levels in `ACCESS`. From one use the compute layer
derives all three of:
- the environment variable (`Resource.variable`, holding the resource's name, URL or ARN),
- the IAM actions on the resource's ARN (per level, sometimes under a suffix such as /index/*),
- the KMS actions on the key that encrypts the resource (per level),
so a permission can never be missing for a variable that exists, nor present for one that does
not. Event sources bind the same way, as CDK's `bind` does: an sqs trigger grants `consume` on
its queue and an s3 trigger `read` on its bucket prefix (permissions only: the function learns
the resource from its event, so no variable).

KMS actions per kind, as AWS documents them: SQS producers need kms:GenerateDataKey and
kms:Decrypt, consumers kms:Decrypt; SNS publishers to an encrypted topic kms:GenerateDataKey and
kms:Decrypt; S3 SSE-KMS reads kms:Decrypt and writes kms:GenerateDataKey (plus kms:Decrypt for
multipart uploads); Secrets Manager GetSecretValue kms:Decrypt on the secret's key. DynamoDB with
a customer-managed key follows CDK's grants (read: Decrypt; write: Decrypt and GenerateDataKey);
README "What could not be verified offline".
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from . import data, messaging, security

DECRYPT = "kms:Decrypt"
GENERATE_DATA_KEY = "kms:GenerateDataKey"


class Kind(Enum):
    TABLE = "table"
    QUEUE = "queue"
    TOPIC = "topic"
    BUCKET = "bucket"  # a prefix of a bucket: access never spans a whole bucket (listing: only keys under it)
    SECRET = "secret"


@dataclass(frozen=True)
class Access:
    """One access level: IAM actions on the resource's ARN (+ `arn_suffix`), KMS actions on its key."""

    actions: tuple[str, ...]
    kms: tuple[str, ...] = ()
    arn_suffix: str = ""  # appended to the resource's own ARN (its prefix, for a bucket)
    # Buckets: on the bucket's ARN itself (listing is a bucket action), with the request's
    # s3:prefix limited to the resource's prefix (`StringLike results/*`): a List without a
    # Prefix, or with another one, is refused.
    on_bucket: bool = False

    def __add__(self, other: Access) -> Access:
        if (self.arn_suffix, self.on_bucket) != (other.arn_suffix, other.on_bucket):
            raise ValueError("levels on different ARNs cannot be combined")
        return Access(_union(self.actions, other.actions), _union(self.kms, other.kms), self.arn_suffix, self.on_bucket)


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({item for group in groups for item in group}))


_TABLE_READ = Access(("dynamodb:BatchGetItem", "dynamodb:GetItem"), (DECRYPT,))
# PutItem and UpdateItem can each create or rewrite any item: granting both is no more power than one.
_TABLE_WRITE = Access(("dynamodb:PutItem", "dynamodb:UpdateItem"), (DECRYPT, GENERATE_DATA_KEY))
_BUCKET_READ = Access(("s3:GetObject", "s3:GetObjectVersion"), (DECRYPT,))
_QUEUE_CONSUME = Access(
    ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"), (DECRYPT,)
)

# Kind -> access level -> what it grants. The levels a function.yaml may name.
ACCESS: dict[Kind, dict[str, Access]] = {
    Kind.TABLE: {
        "describe": Access(("dynamodb:DescribeTable",)),  # health checks: no item is read
        "read": _TABLE_READ,
        "write": _TABLE_WRITE,
        "read_write": _TABLE_READ + _TABLE_WRITE,
        "delete": Access(("dynamodb:DeleteItem",)),
        # Only on tables with indexes: Query on every index, never a Scan.
        "query_indexes": Access(("dynamodb:Query",), (DECRYPT,), "/index/*"),
    },
    Kind.QUEUE: {
        "send": Access(("sqs:SendMessage",), (DECRYPT, GENERATE_DATA_KEY)),
        "consume": _QUEUE_CONSUME,
        "describe": Access(("sqs:GetQueueAttributes",)),  # depth for health checks; no message is read
    },
    Kind.TOPIC: {
        "publish": Access(("sns:Publish",), (DECRYPT, GENERATE_DATA_KEY)),
    },
    Kind.BUCKET: {
        "read": _BUCKET_READ,
        "write": Access(("s3:PutObject",), (DECRYPT, GENERATE_DATA_KEY)),
        "delete": Access(("s3:DeleteObject", "s3:DeleteObjectVersion")),
        # ListObjectsV2 and ListObjectVersions under the prefix (finding a run's files, deleting every version).
        "list": Access(("s3:ListBucket", "s3:ListBucketVersions"), on_bucket=True),
    },
    Kind.SECRET: {
        "read": Access(("secretsmanager:GetSecretValue",), (DECRYPT,)),
    },
}
# Trigger type -> the access its event source needs on the resource the trigger names.
TRIGGER_ACCESS: dict[str, tuple[Kind, str]] = {
    "sqs": (Kind.QUEUE, "consume"),  # the event source mapping polls with the function's role
    "s3": (Kind.BUCKET, "read"),  # the event names the object; the function reads it
    "sns": (Kind.TOPIC, ""),  # SNS invokes the function (a Lambda permission); the role needs nothing
}


@dataclass(frozen=True)
class Resource:
    """A resource functions may use. `value_key` is the export the environment variable holds
    (name, URL or ARN), `arn_key` the export IAM statements name, `key_export` the security
    layer's export of the KMS key encrypting it."""

    name: str
    kind: Kind
    layer: str
    value_key: str
    arn_key: str
    variable: str
    key_export: str = "DataKeyArn"
    prefix: str = ""  # buckets only: the key prefix this resource is (`incoming/`)
    levels: frozenset[str] = field(default=frozenset())  # restricts ACCESS[kind] (e.g. no index query)

    @property
    def arn_suffix(self) -> str:
        return f"/{self.prefix}*" if self.prefix else ""

    def access_levels(self) -> dict[str, Access]:
        return {level: access for level, access in ACCESS[self.kind].items() if not self.levels or level in self.levels}


def _snake(camel: str) -> str:
    """BatchStatus -> batch_status."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", camel).lower()


def _tables() -> list[Resource]:
    without_query = frozenset(ACCESS[Kind.TABLE]) - {"query_indexes"}
    return [
        Resource(f"{_snake(spec.export_prefix)}_table", Kind.TABLE, data.LAYER, f"{spec.export_prefix}TableName",
                 f"{spec.export_prefix}TableArn", f"{_snake(spec.export_prefix).upper()}_TABLE",
                 levels=frozenset() if spec.indexes else without_query)
        for spec in data.TABLES
    ]


def _queues() -> list[Resource]:
    return [
        Resource(queue.name, Kind.QUEUE, messaging.LAYER, queue.export_key("Queue", "Url"),
                 queue.export_key("Queue", "Arn"), queue.variable)
        for queue in messaging.QUEUES
    ]


def _secrets() -> list[Resource]:
    return [
        Resource(f"{_snake(stem)}_secret", Kind.SECRET, security.LAYER, f"{stem}SecretArn", f"{stem}SecretArn",
                 f"{_snake(stem).upper()}_SECRET_ARN", key_export="SecretsKeyArn")
        for stem in security.SECRET_PURPOSES
    ]


def _bucket_prefix(name: str, bucket: str, prefix: str, variable: str) -> Resource:
    return Resource(name, Kind.BUCKET, "storage", f"{bucket}BucketName", f"{bucket}BucketArn", variable, prefix=prefix)


# Resources no layer describes as data: the topics functions publish to and the bucket prefixes they use.
_OTHERS = (
    Resource("payment_notifications_topic", Kind.TOPIC, messaging.LAYER, "PaymentNotificationsTopicArn",
             "PaymentNotificationsTopicArn", "NOTIFICATIONS_TOPIC_ARN"),
    _bucket_prefix("audit_settlements", "Audit", "settlements/", "AUDIT_BUCKET"),
    _bucket_prefix("audit_notifications", "Audit", "notifications/", "AUDIT_BUCKET"),
    _bucket_prefix("batch_incoming", "Batch", "incoming/", "BATCH_BUCKET"),
    _bucket_prefix("batch_reports", "Batch", "reports/", "BATCH_BUCKET"),
    _bucket_prefix("batch_results", "Batch", "results/", "BATCH_BUCKET"),
)


def _catalogue() -> dict[str, Resource]:
    rows = [*_tables(), *_queues(), *_secrets(), *_OTHERS]
    catalogue = {row.name: row for row in rows}
    if len(catalogue) != len(rows):
        raise ValueError("templates_src/resources.py: two resources share a name")
    return catalogue


RESOURCES: dict[str, Resource] = _catalogue()


# --- what a function's uses grant ----------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """IAM actions on one resource ARN: `resource` names the row, `arn` is (layer, export key, suffix)."""

    resource: str
    actions: tuple[str, ...]
    arn: tuple[str, str, str]
    s3_prefixes: tuple[str, ...] = ()  # a bucket-level grant: the key prefixes a request's s3:prefix may match

    @property
    def condition(self) -> dict[str, dict[str, list[str]]]:
        """The statement's Condition: none, or s3:prefix within the resources' prefixes."""
        return {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in self.s3_prefixes]}} if self.s3_prefixes else {}


@dataclass(frozen=True)
class Grants:
    """Everything a function's uses and triggers imply, in a deterministic order."""

    variables: dict[str, tuple[str, str]]  # NAME -> (layer, export key)
    statements: tuple[Grant, ...]  # one per resource ARN, in the order of first use
    kms: dict[str, tuple[str, ...]]  # security export key -> KMS actions


def levels_of(value: str | list[str]) -> list[str]:
    """A use names one level or a list of them."""
    return [value] if isinstance(value, str) else list(value)


def check_use(name: str, value: str | list[str]) -> None:
    """ValueError naming the resource or level when the use is not in the catalogue."""
    if name not in RESOURCES:
        raise ValueError(f"unknown resource {name!r} in uses (known: {', '.join(sorted(RESOURCES))})")
    resource = RESOURCES[name]
    known = resource.access_levels()
    levels = levels_of(value)
    if not levels:
        raise ValueError(f"uses {name}: name at least one access level ({', '.join(known)})")
    for level in levels:
        if level not in known:
            raise ValueError(f"uses {name}: unknown access level {level!r} for this {resource.kind.value} "
                             f"(known: {', '.join(known)})")


def trigger_resource(trigger_type: str, name: str) -> Resource:
    """The resource an sqs/s3/sns trigger names; ValueError when it is not one of that kind."""
    kind, _ = TRIGGER_ACCESS[trigger_type]
    resource = RESOURCES.get(name)
    if resource is None or resource.kind is not kind:
        candidates = sorted(row.name for row in RESOURCES.values() if row.kind is kind)
        raise ValueError(f"{trigger_type} trigger names {name!r}, not a {kind.value} (known: {', '.join(candidates)})")
    return resource


def grants(uses: Mapping[str, str | list[str]], triggers: Iterable[tuple[str, str]] = ()) -> Grants:
    """What `uses` (resource -> level or levels) and `triggers` ((type, resource) pairs) grant.
    ValueError when two uses would set one variable to different values."""
    variables: dict[str, tuple[str, str]] = {}
    given_by: dict[str, str] = {}
    by_arn: dict[tuple[str, str, str], tuple[str, Access]] = {}
    prefixes: dict[tuple[str, str, str], tuple[str, ...]] = {}
    kms: dict[str, tuple[str, ...]] = {}
    bindings = [(name, levels_of(value)) for name, value in uses.items()]
    bindings += [(name, [TRIGGER_ACCESS[kind][1]]) for kind, name in triggers if TRIGGER_ACCESS[kind][1]]
    for name, levels in bindings:
        resource = RESOURCES[name]
        for level in levels:
            access = resource.access_levels()[level]
            arn = (resource.layer, resource.arn_key, "" if access.on_bucket else resource.arn_suffix + access.arn_suffix)
            previous = by_arn.get(arn, (name, Access((), (), access.arn_suffix, access.on_bucket)))[1]
            by_arn[arn] = (by_arn.get(arn, (name,))[0], previous + access)
            if access.on_bucket:
                prefixes[arn] = _union(prefixes.get(arn, ()), (resource.prefix,))
            if access.kms:
                kms[resource.key_export] = _union(kms.get(resource.key_export, ()), access.kms)
    for name in uses:
        resource = RESOURCES[name]
        value = (resource.layer, resource.value_key)
        if variables.get(resource.variable, value) != value:
            raise ValueError(f"uses {given_by[resource.variable]} and {name} both set {resource.variable} "
                             "to different values")
        variables[resource.variable] = value
        given_by.setdefault(resource.variable, name)
    statements = tuple(Grant(name, access.actions, arn, prefixes.get(arn, ())) for arn, (name, access) in by_arn.items())
    return Grants(dict(sorted(variables.items())), statements, dict(sorted(kms.items())))
