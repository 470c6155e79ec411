"""Access declared once: `uses:` in function.yaml, the resource catalogue and what it grants.

The loader refuses what the catalogue does not know (naming the file), each access level grants
the IAM and KMS actions AWS needs for it, and in every rendered role a variable never comes
without its permission nor a permission without its variable (triggers aside: their event names
the resource)."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from templates_src import compute, resources
from templates_src.config import load_environment
from templates_src.function_catalog import DeclarationError, load_functions

from ..policy_eval import Request, allowed
from .test_compute import write_catalog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import policy_diff  # noqa: E402  (a script under tools/, not a package)

HEAD = """
    description: A function under test.
    memory_mb: 256
    timeout_s: 10
    returns: nothing
    triggers:
      - type: stepfunctions
"""


def load_one(tmp_path: Path, extra: str) -> list:
    return load_functions(write_catalog(tmp_path, {"subject": textwrap.dedent(HEAD) + textwrap.dedent(extra)}))


def subject_role(tmp_path: Path) -> dict[str, dict]:
    """The subject's role statements by Sid, from the compute template of its catalogue."""
    template = json.loads(compute.build(load_environment("dev"), tmp_path).to_json())
    statements = template["Resources"]["SubjectRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return {statement["Sid"]: statement for statement in statements}


# --- the loader refuses, naming the file and the key ---------------------------------------------


@pytest.mark.parametrize("extra, message", [
    ("uses: {transactions_tabel: read}",
     r"uses: unknown resource 'transactions_tabel' in uses \(known: .*transactions_table"),
    ("uses: {payment_queue: write}",
     r"uses: uses payment_queue: unknown access level 'write' for this queue \(known: send, consume, describe\)"),
    ("uses: {velocity_table: query_indexes}",  # the velocity table has no index to query
     r"unknown access level 'query_indexes' for this table"),
    ("uses: {transactions_table: []}", r"uses transactions_table: name at least one access level"),
    ("uses: {transactions_table: read}\nenvironment:\n  TRANSACTIONS_TABLE: {value: mine}\n",
     r"environment TRANSACTIONS_TABLE is also set by `uses`"),
    ("environment:\n  TABLE: {export: data.TransactionsTableName, reason: an old habit of this function}\n",
     r"environment TABLE: data.TransactionsTableName is the resource transactions_table; declare it under `uses`"),
    ("environment:\n  REPO: {export: artifacts.ApiRepositoryName}\n", r"environment.REPO.*reason.*Field required"),
    ("permissions:\n  - actions: [dynamodb:ConditionCheckItem]\n    resources: [{export: data.VelocityTableArn}]\n",
     r"permissions.0.reason: Field required"),
    ("permissions:\n  - actions: [dynamodb:*]\n    resources: [{export: data.VelocityTableArn}]\n"
     "    reason: everything on the table, for now\n", r"action 'dynamodb:\*' must be 'service:Action' with no wildcard"),
])
def test_the_loader_refuses_what_the_catalogue_does_not_say(tmp_path, extra, message):
    with pytest.raises(DeclarationError, match=rf"subject/function.yaml: (?s:.*){message}"):
        load_one(tmp_path, extra)


def test_two_resources_giving_one_variable_different_values_are_refused(monkeypatch):
    clash = resources.Resource("ledger_table", resources.Kind.TABLE, "data", "LedgerTableName", "LedgerTableArn",
                               "TRANSACTIONS_TABLE")
    monkeypatch.setitem(resources.RESOURCES, "ledger_table", clash)
    with pytest.raises(ValueError, match="uses transactions_table and ledger_table both set TRANSACTIONS_TABLE"):
        resources.grants({"transactions_table": "read", "ledger_table": "read"})


def test_two_prefixes_of_one_bucket_share_its_variable():
    grants = resources.grants({"batch_incoming": "delete", "batch_reports": "write"})
    assert grants.variables == {"BATCH_BUCKET": ("storage", "BatchBucketName")}
    assert [(g.arn, g.actions) for g in grants.statements] == [
        (("storage", "BatchBucketArn", "/incoming/*"), ("s3:DeleteObject", "s3:DeleteObjectVersion")),
        (("storage", "BatchBucketArn", "/reports/*"), ("s3:PutObject",)),
    ]


def test_an_escape_hatch_with_its_reason_is_kept(tmp_path):
    load_one(tmp_path, """
        uses: {velocity_table: read_write}
        permissions:
          - actions: [dynamodb:ConditionCheckItem]
            resources: [{export: data.VelocityTableArn}]
            reason: conditions on counters written by another transaction
    """)
    by_sid = subject_role(tmp_path)
    assert by_sid["Exception0"]["Action"] == ["dynamodb:ConditionCheckItem"]
    assert by_sid["VelocityTable"]["Action"] == [
        "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


# --- what each access level grants (AWS's requirements, stated once here) ------------------------

DATA_KEY, SECRETS_KEY = "DataKeyArn", "SecretsKeyArn"
EXPECTED = [
    # resource, level, variable, ARN (export, suffix), IAM actions, KMS key, KMS actions
    ("transactions_table", "describe", "TRANSACTIONS_TABLE", ("TransactionsTableArn", ""),
     ("dynamodb:DescribeTable",), None, ()),
    ("transactions_table", "read", "TRANSACTIONS_TABLE", ("TransactionsTableArn", ""),
     ("dynamodb:BatchGetItem", "dynamodb:GetItem"), DATA_KEY, ("kms:Decrypt",)),
    ("transactions_table", "write", "TRANSACTIONS_TABLE", ("TransactionsTableArn", ""),
     ("dynamodb:PutItem", "dynamodb:UpdateItem"), DATA_KEY, ("kms:Decrypt", "kms:GenerateDataKey")),
    ("transactions_table", "query_indexes", "TRANSACTIONS_TABLE", ("TransactionsTableArn", "/index/*"),
     ("dynamodb:Query",), DATA_KEY, ("kms:Decrypt",)),
    ("batch_status_table", "delete", "BATCH_STATUS_TABLE", ("BatchStatusTableArn", ""),
     ("dynamodb:DeleteItem",), None, ()),
    ("payment_queue", "send", "PAYMENT_QUEUE_URL", ("PaymentQueueArn", ""),
     ("sqs:SendMessage",), DATA_KEY, ("kms:Decrypt", "kms:GenerateDataKey")),
    ("payment_queue", "consume", "PAYMENT_QUEUE_URL", ("PaymentQueueArn", ""),
     ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"),
     DATA_KEY, ("kms:Decrypt",)),
    ("payment_queue", "describe", "PAYMENT_QUEUE_URL", ("PaymentQueueArn", ""), ("sqs:GetQueueAttributes",), None, ()),
    ("payment_notifications_topic", "publish", "NOTIFICATIONS_TOPIC_ARN", ("PaymentNotificationsTopicArn", ""),
     ("sns:Publish",), DATA_KEY, ("kms:Decrypt", "kms:GenerateDataKey")),
    ("audit_settlements", "write", "AUDIT_BUCKET", ("AuditBucketArn", "/settlements/*"),
     ("s3:PutObject",), DATA_KEY, ("kms:Decrypt", "kms:GenerateDataKey")),
    ("batch_incoming", "read", "BATCH_BUCKET", ("BatchBucketArn", "/incoming/*"),
     ("s3:GetObject", "s3:GetObjectVersion"), DATA_KEY, ("kms:Decrypt",)),
    ("card_fingerprint_secret", "read", "CARD_FINGERPRINT_SECRET_ARN", ("CardFingerprintSecretArn", ""),
     ("secretsmanager:GetSecretValue",), SECRETS_KEY, ("kms:Decrypt",)),
]


@pytest.mark.parametrize("name, level, variable, arn, actions, key, kms", EXPECTED, ids=lambda v: str(v))
def test_each_access_level_grants_its_variable_actions_and_key(name, level, variable, arn, actions, key, kms):
    grants = resources.grants({name: level})
    row = resources.RESOURCES[name]
    assert grants.variables == {variable: (row.layer, row.value_key)}
    (statement,) = grants.statements
    assert (statement.arn[1:], statement.actions) == (arn, actions)
    assert grants.kms == ({key: kms} if key else {})


def test_levels_of_one_resource_on_one_arn_become_one_statement():
    grants = resources.grants({"transactions_table": ["read_write", "query_indexes"], "payment_queue": "send"})
    assert [(g.resource, g.arn[2]) for g in grants.statements] == [
        ("transactions_table", ""), ("transactions_table", "/index/*"), ("payment_queue", "")]
    assert grants.kms == {DATA_KEY: ("kms:Decrypt", "kms:GenerateDataKey")}


def test_triggers_bind_permissions_without_a_variable():
    grants = resources.grants({}, [("sqs", "payment_queue"), ("s3", "batch_incoming"), ("sns", "payment_notifications_topic")])
    assert grants.variables == {}
    assert [(g.resource, g.actions) for g in grants.statements] == [
        ("payment_queue", resources.ACCESS[resources.Kind.QUEUE]["consume"].actions),
        ("batch_incoming", ("s3:GetObject", "s3:GetObjectVersion")),
    ]


def test_an_s3_trigger_that_reads_no_object_grants_nothing(tmp_path):
    head = textwrap.dedent(HEAD).replace("  - type: stepfunctions",
                                         "  - type: s3\n    bucket: batch_incoming\n    reads_object: false")
    (declaration,) = load_functions(write_catalog(tmp_path, {"subject": head}))
    assert declaration.trigger_bindings() == [] and declaration.grants().statements == ()
    assert set(subject_role(tmp_path)) == {"OwnLogGroup", "SendFailures", "EncryptFailures"}  # invoke only


# --- listing a bucket prefix: the bucket ARN, the request's s3:prefix within the prefix -----------

BATCH_BUCKET_ARN = "arn:aws:s3:::payments-dev-batch"


def _concrete(node):
    """The role's statements with the imported bucket ARN in place of its import (other resources: a
    string that matches nothing the test asks about)."""
    if isinstance(node, dict) and node.get("Fn::ImportValue", "").endswith("-storage-BatchBucketArn"):
        return BATCH_BUCKET_ARN
    if isinstance(node, dict) and set(node) & {"Fn::ImportValue", "Fn::GetAtt"}:
        return f"arn:other:{json.dumps(node)}"  # another resource: never the bucket
    if isinstance(node, dict):
        return {key: _concrete(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_concrete(item) for item in node]
    return node


def test_list_grants_listing_only_under_the_resource_prefix(tmp_path):
    load_one(tmp_path, "uses: {batch_results: [list, read]}\n")
    policy = {"Statement": _concrete(list(subject_role(tmp_path).values()))}
    listing = subject_role(tmp_path)["BatchResultsListing"]
    assert listing["Action"] == ["s3:ListBucket", "s3:ListBucketVersions"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["results/*"]}}

    def lists(action: str, prefix: str | None) -> bool:
        context = {} if prefix is None else {"s3:prefix": prefix}
        return allowed(policy, Request(action, {"AWS": "role"}, context, resource=BATCH_BUCKET_ARN))

    assert lists("s3:ListBucket", "results/0123/") and lists("s3:ListBucketVersions", "results/0123/")
    assert not lists("s3:ListBucket", "incoming/") and not lists("s3:ListBucketVersions", "reports/")
    assert not lists("s3:ListBucket", None)  # a listing of the whole bucket names no prefix
    assert not lists("s3:ListBucket", "")
    assert allowed(policy, Request("s3:GetObject", {"AWS": "role"}, resource=f"{BATCH_BUCKET_ARN}/results/0123/x.json"))
    assert not allowed(policy, Request("s3:GetObject", {"AWS": "role"}, resource=f"{BATCH_BUCKET_ARN}/incoming/m/x.csv"))


def test_list_of_two_prefixes_of_one_bucket_is_one_statement_with_both():
    grants = resources.grants({"batch_results": "list", "batch_incoming": "list"})
    (statement,) = grants.statements
    assert statement.arn == ("storage", "BatchBucketArn", "") and statement.s3_prefixes == ("incoming/", "results/")
    assert grants.kms == {}


# --- the invariant, on every rendered role of the real catalogue ---------------------------------


def _import_name(node) -> str | None:
    if isinstance(node, dict) and "Fn::ImportValue" in node:
        return node["Fn::ImportValue"]
    if isinstance(node, dict) and "Fn::Join" in node:
        return _import_name(node["Fn::Join"][1][0])
    return None


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_no_variable_without_its_permission_and_no_permission_without_its_variable(env):
    template = json.loads(compute.build(load_environment(env)).to_json())["Resources"]
    by_value = {f"payments-{env}-{r.layer}-{r.value_key}": (r.layer, r.arn_key) for r in resources.RESOURCES.values()}
    by_arn = {f"payments-{env}-{r.layer}-{r.arn_key}": (r.layer, r.arn_key) for r in resources.RESOURCES.values()}
    for declaration in load_functions():
        variables = template[f"{declaration.logical_name}Function"]["Properties"]["Environment"]["Variables"]
        given = {by_value[name] for name in map(_import_name, variables.values()) if name in by_value}
        statements = template[f"{declaration.logical_name}Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        reached = {by_arn[name] for s in statements for name in map(_import_name, s["Resource"]) if name in by_arn}
        triggered = {(resources.RESOURCES[name].layer, resources.RESOURCES[name].arn_key)
                     for _, name in declaration.trigger_bindings()}
        assert given <= reached, (declaration.name, given - reached)
        assert reached - given <= triggered, (declaration.name, reached - given - triggered)
        keys = {_import_name(s["Resource"][0]).rsplit("-", 1)[1]: s["Action"] for s in statements
                if _import_name(s["Resource"][0]) and _import_name(s["Resource"][0]).endswith("KeyArn")}
        expected_keys = {resources.RESOURCES[name].key_export for name, levels in declaration.uses.items()
                         for level in resources.levels_of(levels) if resources.ACCESS[resources.RESOURCES[name].kind][level].kms}
        expected_keys |= {resources.RESOURCES[name].key_export for kind, name in declaration.trigger_bindings() if kind != "sns"}
        assert set(keys) == expected_keys, declaration.name


# --- comparing old and new policies (tools/policy_diff.py) ---------------------------------------


def _role(statements: list[dict]) -> dict:
    return {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": statements}}]}}}}


def test_policy_diff_names_what_became_broader_and_narrower():
    old = _role([{"Effect": "Allow", "Action": ["dynamodb:GetItem", "kms:Decrypt"], "Resource": ["t"]}])
    new = _role([{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem"], "Resource": "t"},
                 {"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": ["b"]}])
    assert policy_diff.compare(old, new) == {"R": ({("dynamodb:BatchGetItem", '"t"')}, {("kms:Decrypt", '"t"')})}
    assert policy_diff.compare(old, old) == {}
