"""Fixtures for the payment function tests: one moto account per session, function loading,
API Gateway event builders, and the card-number scanner.

Design decisions:
- moto is started once per session (creating clients and tables is the slow part) and tests
  isolate themselves with fresh customer ids and idempotency keys.
- Every card number a test uses goes through `card_number()` (or `register_number()`), and the
  session ends by scanning every table item, S3 object version, queued message and log line for
  those numbers; finding one fails the run. Merchant secret keys are registered and scanned
  for the same way (`issue_test_key()` / `register_secret_key()`).
- Every API event carries the authorizer's context of TEST_MERCHANT unless a test names another
  merchant (or None: no authorizer context at all); batch uploads go under its prefix.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import sys
import uuid
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
REGION = "eu-west-1"
ACCOUNT = "123456789012"

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_SERVICE_NAME": "payments",
    "POWERTOOLS_METRICS_NAMESPACE": "Payments", "POWERTOOLS_DEV": "0", "LOG_LEVEL": "INFO",
    "TRANSACTIONS_TABLE": "payments-test-transactions", "IDEMPOTENCY_TABLE": "payments-test-idempotency",
    "VELOCITY_TABLE": "payments-test-velocity", "BATCH_STATUS_TABLE": "payments-test-batch-status",
    "AUDIT_BUCKET": "payments-test-audit", "BATCH_BUCKET": "payments-test-batch",
    "MERCHANTS_TABLE": "payments-test-merchants",
})
for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)
if str(FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS))

from moto import mock_aws  # noqa: E402

# Handlers that emit no metric (a refused request) make Powertools warn; that is expected here.
warnings.filterwarnings("ignore", message="No application metrics to publish")

KNOWN_NUMBERS: set[str] = set()
SECRET_KEYS: set[str] = set()
LOG_LINES: list[str] = []
TEST_MERCHANT = "mer_" + "7e57" * 6  # created with the resources; the default caller of every test

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
CVC = "737"
CVC_FIELD = re.compile(r'"cvc"\s*:')  # a stored or logged cvc value, not the word in a report


def register_number(number: str) -> str:
    """Scan for `number` at the end of the session if the API would take it as a card number
    (13-19 digits passing Luhn, any brand). Other digit runs a property test sends as a card
    number are refused by the API and may legitimately appear elsewhere (an order number in an
    Idempotency-Key, a customer id), so scanning for them would only report false findings."""
    from paylib.cards import CardError, check_number
    try:
        check_number(number)
    except CardError:
        return number
    KNOWN_NUMBERS.add(number)
    return number


def register_secret_key(secret_key: str) -> str:
    """Scan for this merchant secret key (and its random part) at the end of the session."""
    SECRET_KEYS.add(secret_key)
    return secret_key


def card_number(number: str = VISA) -> str:
    return register_number(number)


def fresh_card(prefix: str = "4", length: int = 16, rng=None) -> str:
    """A random Luhn-valid number (so card velocity of one test never leaks into another)."""
    import random
    rng = rng or random
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        from paylib.cards import luhn_valid
        if luhn_valid(body + check):
            return register_number(body + check)
    raise AssertionError("unreachable: one check digit always works")


def pytest_collection_modifyitems(config, items):
    marker = pytest.mark.filterwarnings("ignore:No application metrics to publish")
    for item in items:
        if "tests/functions" in str(item.fspath):
            item.add_marker(marker)


for _number in (VISA, MASTERCARD, AMEX, "4000056655665556"):
    register_number(_number)


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            LOG_LINES.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still scanned raw
            LOG_LINES.append(str(record.__dict__))


def _install_log_capture() -> None:
    from paylib.observability import logger
    capture = _Capture()
    capture.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.service).addHandler(capture)
    raw = _Capture()
    raw.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(raw)


def load_app(name: str):
    """Import functions/<name>/app.py under a unique module name (every function has app.py)."""
    module_name = f"function_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    function_name = "payments-test"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:payments-test"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/payments-test"
    log_stream_name = "test"

    def __init__(self, remaining_ms: int = 60_000):
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining


def _create_table(client, name, keys, gsis=()):
    definitions = {}
    for attribute, kind, _ in keys:
        definitions[attribute] = kind
    for _, index_keys in gsis:
        for attribute, kind, _ in index_keys:
            definitions[attribute] = kind
    arguments = {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": a, "KeyType": t} for a, _, t in keys],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": k} for a, k in definitions.items()],
    }
    if gsis:
        arguments["GlobalSecondaryIndexes"] = [
            {"IndexName": index, "KeySchema": [{"AttributeName": a, "KeyType": t} for a, _, t in index_keys],
             "Projection": {"ProjectionType": "ALL"}}
            for index, index_keys in gsis
        ]
    client.create_table(**arguments)


def create_resources() -> SimpleNamespace:
    """Tables with the keys of functions/paylib/TABLES.md, buckets, queues, topic, secret."""
    import boto3
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    _create_table(dynamodb, os.environ["TRANSACTIONS_TABLE"], [("payment_id", "S", "HASH")], [
        ("by-customer", [("customer_id", "S", "HASH"), ("created_at", "S", "RANGE")]),
        ("by-status", [("status", "S", "HASH"), ("created_at", "S", "RANGE")]),
    ])
    _create_table(dynamodb, os.environ["IDEMPOTENCY_TABLE"], [("idempotency_key", "S", "HASH")])
    _create_table(dynamodb, os.environ["VELOCITY_TABLE"], [("counter_key", "S", "HASH"), ("window_start", "N", "RANGE")])
    _create_table(dynamodb, os.environ["BATCH_STATUS_TABLE"], [("batch_id", "S", "HASH")])
    _create_table(dynamodb, os.environ["MERCHANTS_TABLE"], [("pk", "S", "HASH")])
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (os.environ["AUDIT_BUCKET"], os.environ["BATCH_BUCKET"]):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName="payments-test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName="payments-test-queue", Attributes={
        "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
    })["QueueUrl"]
    capture_url = sqs.create_queue(QueueName="payments-test-notifications-capture")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="payments-test-notifications")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=capture_arn, Attributes={"RawMessageDelivery": "true"})
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secret_arn = secrets.create_secret(Name="payments-test-card-fingerprint", SecretString="k" * 48)["ARN"]
    pepper_arn = secrets.create_secret(Name="payments-test-merchant-key-pepper", SecretString="p" * 48)["ARN"]
    os.environ.update({"PAYMENT_QUEUE_URL": queue_url, "NOTIFICATIONS_TOPIC_ARN": topic_arn,
                       "CARD_FINGERPRINT_SECRET_ARN": secret_arn, "MERCHANT_KEY_PEPPER_SECRET_ARN": pepper_arn})
    put_merchant(dynamodb, TEST_MERCHANT)
    return SimpleNamespace(dynamodb=dynamodb, s3=s3, sqs=sqs, sns=sns, queue_url=queue_url, dlq_url=dlq_url,
                           capture_url=capture_url, topic_arn=topic_arn, secret_arn=secret_arn)


def queued_bodies(queue_name: str) -> list[str]:
    """Messages in a moto queue, read without receiving them (so tests do not disturb them)."""
    from moto.sqs.models import sqs_backends
    queue = sqs_backends[ACCOUNT][REGION].queues[queue_name]
    return [message.body for message in queue._messages]


def every_stored_text(aws) -> list[tuple[str, str]]:
    """(where, text) for every table item, S3 object version and queued message."""
    texts = []
    for table in aws.dynamodb.list_tables()["TableNames"]:
        paginator = aws.dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=table):
            for item in page["Items"]:
                texts.append((f"dynamodb:{table}", json.dumps(item)))
    for bucket in aws.s3.list_buckets()["Buckets"]:
        versions = aws.s3.list_object_versions(Bucket=bucket["Name"]).get("Versions", [])
        for version in versions:
            body = aws.s3.get_object(Bucket=bucket["Name"], Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            texts.append((f"s3:{bucket['Name']}/{version['Key']}", body.decode("utf-8", errors="replace")))
    from moto.sqs.models import sqs_backends
    for name in list(sqs_backends[ACCOUNT][REGION].queues):
        for body in queued_bodies(name):
            texts.append((f"sqs:{name}", body))
    return texts


def unkeyed_digests(number: str) -> list[str]:
    """Derived values that can be searched back to the number without any key (a 16-digit number
    with a known BIN and last four has about 10^9 candidates): none may be stored."""
    import hashlib
    data = number.encode("ascii")
    return [hashlib.new(name, prefix + data).hexdigest() for name in ("sha256", "sha1", "md5", "sha512")
            for prefix in (b"", b"card:")]


def find_card_numbers(aws) -> list[str]:
    needles = {number: unkeyed_digests(number) for number in KNOWN_NUMBERS}
    findings = []
    haystacks = every_stored_text(aws) + [("log", line) for line in LOG_LINES]
    for where, text in haystacks:
        findings += [f"{where}: merchant secret key ending {key[-4:]}" for key in SECRET_KEYS
                     if key.split("_", 2)[2][:24] in text]
        for number, digests in needles.items():
            if number in text:
                findings.append(f"{where}: card number ending {number[-4:]}")
            if any(digest in text for digest in digests):
                findings.append(f"{where}: an unkeyed digest of the card number ending {number[-4:]}")
        if CVC_FIELD.search(text):
            findings.append(f"{where}: a cvc field")
    return findings


@pytest.fixture(scope="session")
def aws():
    with mock_aws():
        from paylib import aws as paylib_aws
        from paylib import keys
        paylib_aws.reset()
        keys.clear_cache()
        resources = create_resources()
        _install_log_capture()
        yield resources
        findings = find_card_numbers(resources)
        paylib_aws.reset()
        if findings:
            pytest.fail("card data or secret keys found after the test session:\n" + "\n".join(sorted(set(findings))[:50]))


@pytest.fixture()
def context():
    return LambdaContext()


def api_event(method: str, resource: str, body=None, headers=None, path_parameters=None, raw_body: str | None = None,
              base64_body: bool = False, merchant_id: str | None = TEST_MERCHANT) -> dict:
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    if base64_body and raw_body is not None:
        raw_body = base64.b64encode(raw_body.encode("utf-8")).decode("ascii")
    path = resource
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    request_context = {"resourcePath": resource, "httpMethod": method, "stage": "test", "requestId": str(uuid.uuid4()),
                       "identity": {"apiKeyId": "usage-plan-key", "sourceIp": "127.0.0.1"}}
    if merchant_id is not None:  # what API Gateway passes on from the authorizer's context
        request_context["authorizer"] = {"merchant_id": merchant_id, "key_id": "key_" + "0" * 12,
                                         "principalId": merchant_id, "integrationLatency": 3}
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "pathParameters": path_parameters, "queryStringParameters": None,
        "requestContext": request_context, "body": raw_body, "isBase64Encoded": base64_body,
    }


def batch_key(name: str | None = None, merchant_id: str = TEST_MERCHANT) -> str:
    """Where a merchant uploads a batch file."""
    return f"incoming/{merchant_id}/{name or uuid.uuid4().hex}.csv"


def put_merchant(dynamodb, merchant_id: str, status: str = "active") -> dict:
    """A MERCHANT item written directly (the operator tool has its own tests)."""
    from paylib import aws as paylib_aws
    from paylib import merchants
    item = {**merchants.merchant_item(merchant_id, f"Merchant {merchant_id[-4:]}", f"usage-{merchant_id}",
                                      f"apikey-{merchant_id[-6:]}", "2030-01-01T00:00:00.000000Z"), "status": status}
    dynamodb.put_item(TableName=os.environ["MERCHANTS_TABLE"], Item=paylib_aws.to_dynamo(item))
    return item


def issue_test_key(dynamodb, merchant: dict, expires_at: int | None = None, revoked: bool = False) -> tuple[str, str]:
    """(secret key, key_id) of a KEY item written directly under the session's pepper."""
    from paylib import aws as paylib_aws
    from paylib import merchants
    secret_key = register_secret_key(merchants.new_secret_key("test"))
    key_id = merchants.new_key_id()
    hashed = merchants.key_hash(merchants.current_pepper(), secret_key)
    item = {**merchants.key_item(hashed, merchant, key_id, "2030-01-01T00:00:00.000000Z", expires_at), "revoked": revoked}
    dynamodb.put_item(TableName=os.environ["MERCHANTS_TABLE"], Item=paylib_aws.to_dynamo(item))
    return secret_key, key_id


def payment_body(**overrides) -> dict:
    body = {
        "amount": 1250, "currency": "EUR", "customer_id": f"cus_{uuid.uuid4().hex[:12]}",
        "merchant_reference": "order-1", "description": "Two books",
        "metadata": {"channel": "web"}, "ip_address": "203.0.113.7", "billing_country": "FR",
    }
    if "card" not in overrides:
        body["card"] = {"number": fresh_card(), "exp_month": 12, "exp_year": 2030, "cvc": CVC}
    body.update(overrides)
    return body


# Digits become letters: a random uuid can hold a digit run the API rightly refuses as a card
# number (separators are ignored), which made tests using fresh keys fail now and then.
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def new_key() -> str:
    return f"idem-{uuid.uuid4().hex.translate(_NO_DIGITS)}"


@pytest.fixture(scope="session")
def openapi_document() -> dict:
    import yaml
    return yaml.safe_load((FUNCTIONS / "openapi.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def schema_validator(openapi_document):
    """validate(name, instance): check an answer against components/schemas/<name>."""
    from openapi_schema_validator import OAS30Validator

    def validate(name: str, instance) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": openapi_document["components"]}
        OAS30Validator(schema).validate(instance)
    return validate


def table_counts(aws) -> dict:
    from moto.dynamodb.models import dynamodb_backends
    backend = dynamodb_backends[ACCOUNT][REGION]
    return {name: len(table) for name, table in backend.tables.items()}


def queue_depths() -> dict:
    from moto.sqs.models import sqs_backends
    return {name: len(queue._messages) for name, queue in sqs_backends[ACCOUNT][REGION].queues.items()}


def drain(aws, url: str) -> list[dict]:
    messages = []
    while True:
        answer = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        batch = answer.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)


# ---------------------------------------------------------------- rotation, concurrency, round trips

@pytest.fixture()
def own_secret(aws, monkeypatch):
    """A fingerprint secret of this test only (so a rotation here cannot disturb other tests)."""
    import boto3
    from paylib import keys
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"payments-test-fp-{uuid.uuid4().hex[:8]}", SecretString=uuid.uuid4().hex * 2)["ARN"]
    monkeypatch.setenv("CARD_FINGERPRINT_SECRET_ARN", arn)
    keys.clear_cache()
    yield arn
    keys.clear_cache()


def rotate_secret(arn: str) -> None:
    """What a Secrets Manager rotation does (new AWSCURRENT, old one AWSPREVIOUS), then the end of
    the functions' key cache (which a function reaches after its cache lifetime)."""
    import boto3
    from paylib import keys
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(SecretId=arn, SecretString=uuid.uuid4().hex * 2)
    keys.clear_cache()


@pytest.fixture()
def atomic_aws_calls(monkeypatch):
    """Each emulated AWS call runs alone, as every DynamoDB request is atomic on its items; threads
    interleave only between calls, which is where read-then-write races live. (moto alone checks
    a condition and writes in two steps that another thread can split.)"""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber
    lock = threading.RLock()
    original = BotocoreStubber.__call__

    def serialized(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)
    monkeypatch.setattr(BotocoreStubber, "__call__", serialized)


DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def tables_written(operation: str, params: dict) -> set[str]:
    if operation == "TransactWriteItems":
        return {action[kind]["TableName"] for action in params.get("TransactItems", []) for kind in action}
    if operation == "BatchWriteItem":
        return set(params.get("RequestItems", {}))
    return {params["TableName"]} if operation in DYNAMODB_WRITES else set()


class ReadsBeforeWrites:
    """The worst interleaving, forced rather than hoped for: every thread's first DynamoDB write
    to `table` waits until all `parties` threads have got there, so all of them have read that
    table before any of them changes it. Later writes (retries) pass freely. No timing is
    involved: a barrier that cannot fill raises BrokenBarrierError after `timeout` (a safety
    net against a hung run, never reached when the code under test is right or plainly wrong)."""

    def __init__(self, parties: int, table: str, timeout: float = 30):
        import threading
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.table = table
        self.local = threading.local()

    def __call__(self, model, params, **kwargs):
        if self.table in tables_written(model.name, params) and not getattr(self.local, "passed", False):
            self.local.passed = True
            self.barrier.wait()

    def __enter__(self):
        from paylib import aws as paylib_aws
        paylib_aws.client("dynamodb").meta.events.register("before-parameter-build.dynamodb", self)
        return self

    def __exit__(self, *exc):
        from paylib import aws as paylib_aws
        paylib_aws.client("dynamodb").meta.events.unregister("before-parameter-build.dynamodb", self)


def run_together(functions: list) -> list:
    """Run each callable in its own thread, all released by one barrier; results in order
    (an exception is returned in place of its result)."""
    import threading
    start = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def runner(index, function):
        start.wait()
        try:
            results[index] = function()
        except BaseException as error:  # noqa: BLE001 - reported to the test as a value
            results[index] = error
    threads = [threading.Thread(target=runner, args=(index, function)) for index, function in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
