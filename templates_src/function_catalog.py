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
      - type: sqs                 # queue worker
        queue: messaging.PaymentQueueArn
        batch_size: 10
      - type: s3                  # via EventBridge "Object Created" (no bucket notification)
        bucket: storage.BatchBucketName
        prefix: incoming/
        suffix: .csv
      - type: sns
        topic: messaging.PaymentNotificationsTopicArn
      - type: stepfunctions       # invoked by the workflow state machine
      - type: authorizer          # the API's Lambda REQUEST authorizer (Authorization header)
    environment:
      TRANSACTIONS_TABLE: {export: data.TransactionsTableName}
      LOG_LEVEL: {value: INFO}
    permissions:
      - actions: [dynamodb:GetItem, dynamodb:PutItem]
        resources:
          - {export: data.TransactionsTableArn}
          - {export: data.TransactionsTableArn, suffix: /index/*}

`layer.Key` names an export published by another layer: the compute layer turns it into
`Fn::ImportValue` of `payments-<env>-<layer>-<Key>`. Permissions never carry a `*` action.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class Permission(Strict):
    actions: list[str] = Field(min_length=1)
    resources: list[ExportRef] = Field(min_length=1)

    @field_validator("actions")
    @classmethod
    def _no_wildcards(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not ACTION.match(action):
                raise ValueError(f"action {action!r} must be 'service:Action' with no wildcard")
        return actions


class ApiTrigger(Strict):
    type: Literal["api"]


class SqsTrigger(Strict):
    type: Literal["sqs"]
    queue: str
    batch_size: int = Field(default=10, ge=1, le=10)


class S3Trigger(Strict):
    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    suffix: str = ""


class SnsTrigger(Strict):
    type: Literal["sns"]
    topic: str


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


class FunctionDeclaration(Strict):
    name: str
    description: str = Field(min_length=10)
    handler: str = "app.handler"
    memory_mb: int = Field(ge=128, le=10240)
    timeout_s: int = Field(ge=1, le=900)
    returns: str = Field(min_length=3)
    triggers: list[Trigger] = Field(min_length=1)
    environment: dict[str, ExportRef | LiteralValue] = Field(default_factory=dict)
    permissions: list[Permission] = Field(default_factory=list)
    # Lambda SnapStart on published versions (the `live` alias points at one): restores from a
    # snapshot taken after the handler's imports instead of initialising on a cold start.
    snapstart: bool = False

    @field_validator("environment")
    @classmethod
    def _env_names(cls, environment: dict) -> dict:
        for name in environment:
            if not ENV_VAR.match(name):
                raise ValueError(f"environment variable {name!r} must be UPPER_SNAKE_CASE")
        return environment

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
        except Exception as error:  # pydantic.ValidationError, reported with the file name
            raise DeclarationError(f"{declaration_file}: {error}") from None
    return tuple(declarations)


def _describe_value(value: ExportRef | LiteralValue) -> str:
    if isinstance(value, LiteralValue):
        return f"`{value.value}`"
    return f"export `{value.export}`{value.suffix}"


def _describe_trigger(trigger) -> str:
    if trigger.type == "api":
        return "API Gateway (routes: see openapi.yaml, x-function)"
    if trigger.type == "sqs":
        return f"SQS `{trigger.queue}` (batch {trigger.batch_size}, partial batch responses)"
    if trigger.type == "s3":
        return f"S3 Object Created via EventBridge on `{trigger.bucket}` `{trigger.prefix}*{trigger.suffix}`"
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
        "`LOG_LEVEL=INFO`; a declaration's `environment` may override the defaults.",
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
        lines.append("- environment:")
        for name, value in sorted(declaration.environment.items()):
            lines.append(f"  - `{name}`: {_describe_value(value)}")
        lines.append("- permissions:")
        for permission in declaration.permissions:
            resources = ", ".join(_describe_value(resource) for resource in permission.resources)
            lines.append(f"  - {', '.join(permission.actions)} on {resources}")
    return "\n".join(lines) + "\n" + DESIGN_NOTES
