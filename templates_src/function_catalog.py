"""The function declarations: `functions/<name>/function.yaml`, one per function.

The compute, workflow and api layers, `functions/README.md` and the build's packaging all read
the functions through this module, so a function cannot exist in one place and not the other.

A declaration looks like this (every key is checked; unknown keys are refused):

    description: Creates and reads payments (POST /payments, GET /payments/{payment_id}).
    handler: app.handler
    memory_mb: 512
    timeout_s: 10
    returns: API Gateway proxy response (see openapi.yaml)
    triggers:
      - type: api                 # routes come from functions/openapi.yaml (x-function)
      - type: sqs                 # queue worker: grants `consume` on the queue
        queue: payment_queue
        batch_size: 10
      - type: s3                  # via EventBridge "Object Created": grants `read` on the prefix
        bucket: batch_incoming    # a bucket prefix of the catalogue (its prefix filters the events)
        suffix: .csv
        reads_object: false       # optional: the event is enough, grant no `read` (invoke only)
      - type: sns
        topic: payment_notifications_topic
      - type: stepfunctions       # invoked by the workflow state machine
      - type: authorizer          # the API's Lambda REQUEST authorizer (Authorization header)
    uses:                         # resource -> access level (or a list of levels)
      transactions_table: [read_write, query_indexes]
      payment_queue: send
      card_fingerprint_secret: read
    environment:                  # settings only; resources come from `uses`
      LOG_LEVEL: {value: DEBUG}
    reserved_concurrency: batch   # optional: batch.reserved_concurrency instead of compute.lambda_reserved_concurrency
    permissions:                  # the escape hatch: what no access level says, with the reason
      - actions: [dynamodb:ConditionCheckItem]
        resources: [{export: data.VelocityTableArn}]
        reason: conditions on counters written by another transaction

Resources and access levels are those of `templates_src/resources.py`: each use gives the
function an environment variable, the IAM actions and the KMS actions on the resource's key.
`layer.Key` (escape hatch only) names an export published by another layer: the compute layer
turns it into `Fn::ImportValue` of `payments-<env>-<layer>-<Key>`. Permissions never carry a `*`
action.
"""
from __future__ import annotations

import functools
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import resources

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
SHARED_LIBRARY = "paylib"  # functions/paylib is packaged into every function's zip

EXPORT_REF = re.compile(r"^[a-z]+\.[A-Za-z0-9]+$")
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")  # no wildcards, ever
ENV_VAR = re.compile(r"^[A-Z][A-Z0-9_]*$")


def split_export_ref(reference: str) -> tuple[str, str]:
    """`messaging.PaymentQueueArn` -> ("messaging", "PaymentQueueArn"): the one reading of a
    "layer.ExportKey" reference; ValueError when it is not one."""
    layer, _, key = reference.partition(".")
    if not layer or not key or "." in key:
        raise ValueError(f"{reference!r} must be 'layer.ExportKey', e.g. messaging.PaymentQueueArn")
    return layer, key


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportRef(Strict):
    export: str
    suffix: str = ""

    @field_validator("export")
    @classmethod
    def _export_form(cls, value: str) -> str:
        if not EXPORT_REF.match(value):
            raise ValueError("must be 'layer.ExportKey', for example data.TransactionsTableArn")
        return value

    @property
    def layer(self) -> str:
        return split_export_ref(self.export)[0]

    @property
    def key(self) -> str:
        return split_export_ref(self.export)[1]


class LiteralValue(Strict):
    value: str


class ExportedSetting(ExportRef):
    """An environment variable holding an export that is not a usable resource (escape hatch)."""

    reason: str = Field(min_length=10)


class Permission(Strict):
    """The escape hatch for what no access level of `resources.ACCESS` expresses; `reason` says why."""

    actions: list[str] = Field(min_length=1)
    resources: list[ExportRef] = Field(min_length=1)
    reason: str = Field(min_length=10)

    @field_validator("actions")
    @classmethod
    def _no_wildcards(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not ACTION.match(action):
                raise ValueError(f"action {action!r} must be 'service:Action' with no wildcard")
        return actions


def _named_resource(trigger_type: str) -> AfterValidator:
    """Checks that a trigger names a resource of the kind its event source reads."""
    def check(value: str) -> str:
        resources.trigger_resource(trigger_type, value)
        return value
    return AfterValidator(check)


class ApiTrigger(Strict):
    type: Literal["api"]


class SqsTrigger(Strict):
    type: Literal["sqs"]
    queue: Annotated[str, _named_resource("sqs")]  # a queue of resources.RESOURCES
    batch_size: int = Field(default=10, ge=1, le=10)

    @property
    def resource(self) -> str:
        return self.queue


class S3Trigger(Strict):
    type: Literal["s3"]
    bucket: Annotated[str, _named_resource("s3")]  # a bucket prefix of resources.RESOURCES: its prefix filters the events
    suffix: str = ""
    # False for a function that only reacts to the event (it carries bucket, key, version and
    # size) and never reads the object: the trigger then grants nothing, only the invoke.
    reads_object: bool = True

    @property
    def resource(self) -> str:
        return self.bucket

    @property
    def prefix(self) -> str:
        return resources.RESOURCES[self.bucket].prefix


class SnsTrigger(Strict):
    type: Literal["sns"]
    topic: Annotated[str, _named_resource("sns")]  # a topic of resources.RESOURCES

    @property
    def resource(self) -> str:
        return self.topic


class StepFunctionsTrigger(Strict):
    type: Literal["stepfunctions"]


class AuthorizerTrigger(Strict):
    """API Gateway calls the function as the REQUEST authorizer of every operation that names
    the merchant security scheme (identity source: the Authorization header)."""

    type: Literal["authorizer"]


Trigger = Annotated[
    ApiTrigger | SqsTrigger | S3Trigger | SnsTrigger | StepFunctionsTrigger | AuthorizerTrigger,
    Field(discriminator="type"),
]


class ReservedConcurrency(Enum):
    """Which setting of parameters/<env>.yaml reserves the function's concurrency."""

    COMPUTE = "compute"  # compute.lambda_reserved_concurrency: every function's, by default
    BATCH = "batch"  # batch.reserved_concurrency: the batch map's child function (sized to batch.max_concurrency)


class FunctionDeclaration(Strict):
    name: str
    description: str = Field(min_length=10)
    handler: str = "app.handler"
    memory_mb: int = Field(ge=128, le=10240)
    timeout_s: int = Field(ge=1, le=900)
    returns: str = Field(min_length=3)
    triggers: list[Trigger] = Field(min_length=1)
    uses: dict[str, str | list[str]] = Field(default_factory=dict)
    environment: dict[str, LiteralValue | ExportedSetting] = Field(default_factory=dict)
    permissions: list[Permission] = Field(default_factory=list)
    # Lambda SnapStart on published versions (the `live` alias points at one): restores from a
    # snapshot taken after the handler's imports instead of initialising on a cold start.
    snapstart: bool = False
    reserved_concurrency: ReservedConcurrency = ReservedConcurrency.COMPUTE

    @field_validator("uses")
    @classmethod
    def _known_uses(cls, uses: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for name, levels in uses.items():
            resources.check_use(name, levels)
        return uses

    @field_validator("environment")
    @classmethod
    def _env_names(cls, environment: dict[str, LiteralValue | ExportedSetting]) -> dict[str, LiteralValue | ExportedSetting]:
        usable = {(row.layer, row.value_key): row.name for row in resources.RESOURCES.values()}
        for name, value in environment.items():
            if not ENV_VAR.match(name):
                raise ValueError(f"environment variable {name!r} must be UPPER_SNAKE_CASE")
            if isinstance(value, ExportedSetting) and (value.layer, value.key) in usable:
                raise ValueError(f"environment {name}: {value.export} is the resource "
                                 f"{usable[value.layer, value.key]}; declare it under `uses` instead")
        return environment

    @model_validator(mode="after")
    def _one_value_per_variable(self) -> FunctionDeclaration:
        derived = self.grants().variables  # ValueError when two uses set one variable differently
        clashes = sorted(set(derived) & set(self.environment))
        if clashes:
            raise ValueError(f"environment {', '.join(clashes)} is also set by `uses`; remove it from environment")
        return self

    def trigger_bindings(self) -> list[tuple[str, str]]:
        """(trigger type, resource) for every trigger that names a resource."""
        return [(trigger.type, trigger.resource) for trigger in self.triggers
                if isinstance(trigger, SqsTrigger | SnsTrigger) or (isinstance(trigger, S3Trigger) and trigger.reads_object)]

    def grants(self) -> resources.Grants:
        """The variables, IAM statements and KMS actions the uses and triggers imply."""
        return resources.grants(self.uses, self.trigger_bindings())

    @property
    def directory(self) -> Path:
        return FUNCTIONS_DIR / self.name

    @property
    def logical_name(self) -> str:
        """CamelCase name used for logical ids and exports: payment_api -> PaymentApi."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    def trigger_types(self) -> set[str]:
        return {trigger.type for trigger in self.triggers}


def alias_export_key(logical_name: str) -> str:
    """The compute layer's export of a function's `live` alias ARN, the one ARN other layers invoke:
    api, workflow and monitoring import what compute exports under this one name."""
    return f"{logical_name}AliasArn"


def function_name_export_key(logical_name: str) -> str:
    """The compute layer's export of a function's name (metric dimensions, dashboards)."""
    return f"{logical_name}FunctionName"


class DeclarationError(ValueError):
    """A function declaration is missing or invalid; the message names the file."""


def load_functions(functions_dir: Path = FUNCTIONS_DIR) -> list[FunctionDeclaration]:
    """Every declared function, sorted by name. A directory with app.py but no declaration
    (or the reverse) is an error, so code and templates cannot drift apart. Parsed once per
    state of the directory (every layer of every environment asks; a changed file is re-read)."""
    return list(_load_functions(functions_dir.resolve(), _catalog_state(functions_dir)))


def _catalog_state(functions_dir: Path) -> tuple:
    """What the parse depends on: the directory's entries and each declaration's size and mtime."""
    if not functions_dir.is_dir():
        return ()
    state = []
    for directory in sorted(p for p in functions_dir.iterdir() if p.is_dir()):
        for name in ("function.yaml", "app.py"):
            path = directory / name
            stat = path.stat() if path.exists() else None
            state.append((directory.name, name, stat and (stat.st_size, stat.st_mtime_ns)))
    return tuple(state)


@functools.lru_cache(maxsize=8)
def _load_functions(functions_dir: Path, _state: tuple) -> tuple[FunctionDeclaration, ...]:
    declarations = []
    for directory in sorted(p for p in functions_dir.iterdir() if p.is_dir()):
        if directory.name == SHARED_LIBRARY or directory.name.startswith((".", "_")):
            continue
        declaration_file = directory / "function.yaml"
        app_file = directory / "app.py"
        if not declaration_file.exists() and not app_file.exists():
            continue
        if not declaration_file.exists():
            raise DeclarationError(f"{app_file}: function has code but no function.yaml")
        if not app_file.exists():
            raise DeclarationError(f"{declaration_file}: declared function has no app.py")
        raw = yaml.safe_load(declaration_file.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise DeclarationError(f"{declaration_file}: must be a mapping")
        try:
            declarations.append(FunctionDeclaration(name=directory.name, **raw))
        except ValidationError as error:
            raise DeclarationError(f"{declaration_file}: {_problems(error)}") from None
        except Exception as error:  # anything else pydantic raises, reported with the file name
            raise DeclarationError(f"{declaration_file}: {error}") from None
    return tuple(declarations)


def _problems(error: ValidationError) -> str:
    """`uses.payment_queue: unknown access level ...`, one per problem, without pydantic's boilerplate."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg'].removeprefix('Value error, ')}"
        for problem in error.errors()
    )


def _describe_value(value: ExportRef | LiteralValue) -> str:
    if isinstance(value, LiteralValue):
        return f"`{value.value}`"
    return f"export `{value.export}`{value.suffix}"


def _describe_use(name: str, levels: str | list[str]) -> str:
    row = resources.RESOURCES[name]
    return f"`{name}` ({row.kind.value}): {', '.join(resources.levels_of(levels))}, in `{row.variable}`"


def _access_lines(declaration: FunctionDeclaration) -> list[str]:
    """What the function uses and, for the odd cases, what it declares beyond its uses."""
    lines = ["- uses:" if declaration.uses else "- uses: nothing"]
    lines += [f"  - {_describe_use(name, levels)}" for name, levels in sorted(declaration.uses.items())]
    for trigger_type, name in declaration.trigger_bindings():
        kind, level = resources.TRIGGER_ACCESS[trigger_type]
        if level:
            lines.append(f"  - `{name}` ({kind.value}): {level}, for its {trigger_type} trigger")
    if declaration.environment:
        lines.append("- environment (settings):")
        lines += [f"  - `{name}`: {_describe_value(value)}" for name, value in sorted(declaration.environment.items())]
    if declaration.permissions:
        lines.append("- permissions beyond its uses:")
        for permission in declaration.permissions:
            targets = ", ".join(_describe_value(resource) for resource in permission.resources)
            lines.append(f"  - {', '.join(permission.actions)} on {targets}: {permission.reason}")
    return lines


def _describe_trigger(trigger) -> str:
    if trigger.type == "api":
        return "API Gateway (routes: see openapi.yaml, x-function)"
    if trigger.type == "sqs":
        return f"SQS `{trigger.queue}` (batch {trigger.batch_size}, partial batch responses)"
    if trigger.type == "s3":
        reads = "" if trigger.reads_object else ", invoke only (reads no object)"
        return f"S3 Object Created via EventBridge on `{trigger.bucket}` (`{trigger.prefix}*{trigger.suffix}`){reads}"
    if trigger.type == "sns":
        return f"SNS `{trigger.topic}`"
    if trigger.type == "authorizer":
        return "API Gateway Lambda REQUEST authorizer (identity source: Authorization header)"
    return "Step Functions task (workflow.asl.json)"


def _api_routes(openapi_file: Path) -> dict[str, list[str]]:
    if not openapi_file.exists():
        return {}
    document = yaml.safe_load(openapi_file.read_text(encoding="utf-8")) or {}
    routes: dict[str, list[str]] = {}
    for path, operations in sorted((document.get("paths") or {}).items()):
        for method, operation in sorted(operations.items()):
            if isinstance(operation, dict) and "x-function" in operation:
                routes.setdefault(operation["x-function"], []).append(f"{method.upper()} {path}")
    return routes


DESIGN_NOTES = """
## Design notes

- **Contract.** `openapi.yaml` (OpenAPI 3.0.3) is the source of the API layer; every operation
  names its function with `x-function`. Handlers validate every rule again and answer errors as
  `{"error": {"code", "message", "field"}}`: 400 (malformed JSON, schema, field values), 404,
  409 (same Idempotency-Key in flight), 413 (body over 16 KiB), 415 (not application/json),
  422 (same Idempotency-Key, other body). Unexpected failures are a bare 500, never a trace.
- **Money.** Integer minor units end to end; JSON numbers with a fraction or exponent are parsed
  as Decimal and refused. `paylib/money.py` holds the circulating ISO 4217 currencies with their
  exponents (checked by a test against the `iso4217` package); fund codes and the X-codes that
  are not money (metals, XDR, XTS, XXX...) are refused, the circulating XAF/XOF/XCD/XCG/XPF are
  accepted. Per-currency cap: one million major units (larger for low-value units).
- **Card data.** Numbers are 13-19 ASCII digits, Luhn-checked, brand detected, and leave memory
  only as brand, last four and an HMAC-SHA256 fingerprint keyed by the Secrets Manager secret
  `CARD_FINGERPRINT_SECRET_ARN` (plain string, or JSON `{"key": ...}`, at least 16 bytes; cached
  5 minutes). The CVC is checked and dropped. Free-text fields, customer ids and Idempotency-Keys
  that contain a card number are refused. Logs carry ids and codes, never a body.
- **Merchants.** Every API operation is behind the `authorizer` function (Lambda REQUEST
  authorizer, `Authorization: Bearer sk_...`): 401 without a known key, 403 for a revoked or
  expired key or a suspended merchant. Handlers read the merchant from the authorizer's context
  and refuse (401) without one. Payments carry `merchant_id`; another merchant's payment is a
  404. Keys are stored only as peppered HMACs (`paylib/merchants.py`, `tools/merchants.py`).
- **Idempotency.** IETF Idempotency-Key draft, scoped per merchant. The record holding the answer
  is written in the same transaction as the payment (payment ids are random); a record past its
  24 h expiry counts as absent. The request hash is an HMAC under its own key of the validated
  request with the card fingerprint in place of the number and without the CVC.
- **Keys.** One secret; a key per purpose derived with HKDF-SHA256; AWSCURRENT and AWSPREVIOUS
  both honoured, so the secret may rotate (at most once per 26 h). See `docs/payments.md`.
- **Fraud.** Velocity per customer and per card fingerprint over exact sliding windows (10 min,
  24 h), read consistently and written in the payment's transaction on an unchanged version;
  amount anomaly (over 5x the median of the customer's recent payments in the currency),
  country mismatch, high amounts. Score 0-100: below 30 approve, below 70 review, else decline.
- **Settlement.** Approved payments are queued; the worker moves approved -> settled (or failed
  when the card expired) with a conditional write, writes `settlements/...` to the audit bucket
  and publishes on the notifications topic (`event_id` for de-duplication); failures are partial
  batch failures and reach the DLQ after maxReceiveCount. The queue's visibility timeout must be
  at least 6 x the worker timeout (60 s -> 360 s).
- **Batch.** CSV under `incoming/<merchant_id>/` (a file outside a known, active merchant's
  prefix is refused row by row in its report; UTF-8, optional BOM, RFC 4180 quoting, header required):
  `merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year`; rows are
  numbered from 1 after the header. Every row is screened with the API's rules and counters and
  written by a conditional Put in a transaction with its velocity events, so re-uploads and
  repeated rows are duplicates, never second payments; a report `reports/<name>-<batch_id>.json`
  holds counts, statuses and `{row, field, code}` per rejected row. Decisions and figures:
  `docs/payments.md`.
- **Workflow.** `workflow.asl.json` runs on a stored payment (`{"payment_id"}` in, so no card
  data enters the execution history): Validate, FraudCheck, Decision (approve/review/decline),
  Process with retry and backoff, SNS notification of success, review or failure.
- **Toolkit.** Powertools for AWS Lambda (Logger, Metrics in namespace `Payments`: PaymentsAccepted,
  PaymentsDeclined, PaymentsSettled, ProcessingTime in ms, BatchRowsAccepted/Rejected), from
  the public layer (arm64), pinned to the same version as in tests (3.37.0). Active X-Ray tracing;
  the SDK's per-call subsegments only where `PAYMENTS_XRAY_SUBSEGMENTS=true`. SnapStart where a
  declaration says `snapstart: true` (payment_api), with restore hooks in every API function.
"""


def render_functions_readme(declarations: list[FunctionDeclaration],
                            openapi_file: Path | None = None) -> str:
    """functions/README.md, generated from the declarations (a test keeps the file equal)."""
    routes = _api_routes(openapi_file or FUNCTIONS_DIR / "openapi.yaml")
    lines = [
        "# Payment functions",
        "",
        "<!-- Generated by templates_src.function_catalog.render_functions_readme from the",
        "     function.yaml declarations; do not edit by hand. -->",
        "",
        "Every function lives in `functions/<name>/` (`app.py` with `handler(event, context)` and",
        "`function.yaml`); `functions/paylib/` is packaged into each zip. The API contract is",
        "`openapi.yaml`, the workflow `workflow.asl.json`, the table keys `paylib/TABLES.md`.",
        "Logging, metrics (namespace `Payments`) and tracing use Powertools for AWS Lambda",
        "(public layer, same pinned version in tests). The compute layer sets `ENVIRONMENT` and the",
        "defaults `POWERTOOLS_SERVICE_NAME=payments`, `POWERTOOLS_METRICS_NAMESPACE=Payments` and",
        "`LOG_LEVEL=INFO`; a declaration's `environment` may override the defaults. What a function",
        "uses (`uses:`) gives it the variable, the IAM actions and the KMS actions of each access level",
        "(`templates_src/resources.py`); triggers grant what their event source needs.",
        "",
        "| function | trigger | memory / timeout | returns |",
        "|---|---|---|---|",
    ]
    for declaration in declarations:
        triggers = "; ".join(_describe_trigger(trigger) for trigger in declaration.triggers)
        lines.append(
            f"| `{declaration.name}` | {triggers} | {declaration.memory_mb} MB / {declaration.timeout_s} s"
            f" | {declaration.returns} |"
        )
    for declaration in declarations:
        lines += ["", f"## {declaration.name}", "", declaration.description, ""]
        for route in routes.get(declaration.name, []):
            lines.append(f"- route: `{route}`")
        for trigger in declaration.triggers:
            lines.append(f"- trigger: {_describe_trigger(trigger)}")
        lines.append(f"- returns: {declaration.returns}")
        if declaration.snapstart:
            lines.append("- SnapStart: on published versions (the `live` alias)")
        if declaration.reserved_concurrency is ReservedConcurrency.BATCH:
            lines.append("- reserved concurrency: `batch.reserved_concurrency` (not compute's per-function value)")
        lines += _access_lines(declaration)
    return "\n".join(lines + _access_level_table()) + "\n" + DESIGN_NOTES


def _access_level_table() -> list[str]:
    """What each access level grants (templates_src/resources.py ACCESS), for reviewers."""
    lines = ["", "## Access levels", "", "What `uses: {<resource>: <level>}` grants: the IAM actions on the resource "
             "(a bucket resource is one prefix), the KMS actions on the key encrypting it, and the resource's variable.",
             "", "| kind | level | IAM actions | KMS actions |", "|---|---|---|---|"]
    for kind, levels in resources.ACCESS.items():
        for level, access in levels.items():
            where = f" on `<arn>{access.arn_suffix}`" if access.arn_suffix else ""
            if access.on_bucket:
                where = " on the bucket, `s3:prefix` within the resource's prefix"
            lines.append(f"| {kind.value} | `{level}` | {', '.join(access.actions)}{where} | {', '.join(access.kms) or '-'} |")
    return lines
