"""Preflight: read-only checks of the AWS account before a deploy creates anything.

Every check answers with rows (check, subject, status, detail); the runner collects the rows
of every check so one run shows every problem at once, and never raises for an AWS error:
an error in an essential check (identity, blocked stacks) is a FAIL row, in any other check
a WARN row "could not check: <code>". The only write is `iam:CreateServiceLinkedRole`, made
only with fix=True and only once the credentials are known to be for the environment's account.

Input is the `preflight` section of build/<env>/manifest.json (see parse_preflight).
"""
from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, TypeGuard

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from platform_contracts import LAMBDA_MIN_UNRESERVED  # the build keeps reservations within the same floor

from .aws import Context, RetryingClient, ServiceName, error_code, error_message
from .manifest import Manifest, ManifestError, manifest_path
from .shapes import JsonObject, Stack
from .stackops import BLOCKED_STATUSES
from .stacks import describe_stack, is_in_progress

# ---------------------------------------------------------------------------------------------
# Input: the manifest's preflight section
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExistingCertificate:
    """mode: existing (an ACM certificate the stacks use)."""

    domain_name: str
    arn: str

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]  # arn:<partition>:acm:<region>:<account>:certificate/<id>


@dataclass(frozen=True)
class CertificateToCreate:
    """mode: create (the stacks request one, validated by DNS in the hosted zone)."""

    domain_name: str
    hosted_zone_id: str


CertificateSpec = ExistingCertificate | CertificateToCreate


@dataclass(frozen=True)
class ContainerImageSpec:
    repository: str
    repository_stack: str
    tag: str | None = None
    digest: str | None = None
    used_by: tuple[str, ...] = ()  # the stacks whose tasks run it: they wait until it exists

    @property
    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or ""}

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class ServiceLinkedRoleSpec:
    service: str
    role_name: str
    required: bool
    needed_by: str


@dataclass(frozen=True)
class NetworkSpec:
    stack: str
    vpcs: int
    nat_gateways: int
    elastic_ips: int
    availability_zones: tuple[str, ...]


@dataclass(frozen=True)
class StackRef:
    name: str
    region: str


@dataclass(frozen=True)
class PreflightSpec:
    environment: str
    account_id: str
    region: str
    parameters_file: str
    lambda_reserved_concurrency: dict[str, int]
    certificate: CertificateSpec | None
    container_image: ContainerImageSpec | None
    service_linked_roles: tuple[ServiceLinkedRoleSpec, ...]
    api_gateway_logging_role: str | None
    network: NetworkSpec | None
    dr_region: str | None
    stacks: tuple[StackRef, ...]


ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:([a-z0-9-]+):(\d{12}):certificate/[\w-]+$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _field(mapping: Any, key: str, where: str, kind: type | tuple[type, ...] = str, nullable: bool = False) -> Any:
    if not isinstance(mapping, dict):
        raise ManifestError(f"{where}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise ManifestError(f"{where}: missing field '{key}'")
    value = mapping[key]
    if value is None and nullable:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{where}.{key}: expected {_kind_name(kind)}, got {value!r}")
    if isinstance(value, str) and not value:
        raise ManifestError(f"{where}.{key}: must not be empty")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _matching(value: str, pattern: re.Pattern[str], where: str, what: str) -> str:
    if not pattern.match(value):
        raise ManifestError(f"{where}: {value!r} is not {what}")
    return value


def _count(mapping: JsonObject, key: str, where: str) -> int:
    value: int = _field(mapping, key, where, int)
    if value < 0:
        raise ManifestError(f"{where}.{key}: must be 0 or more, got {value}")
    return value


def _parse_certificate(raw: Any, where: str) -> CertificateSpec | None:
    if raw is None:
        return None
    mode = _field(raw, "mode", where)
    domain = _field(raw, "domain_name", where).rstrip(".").lower()
    if mode == "existing":
        arn = _matching(_field(raw, "arn", where), ACM_ARN, f"{where}.arn", "an ACM certificate ARN")
        return ExistingCertificate(domain, arn)
    if mode == "create":
        return CertificateToCreate(domain, _field(raw, "hosted_zone_id", where))
    raise ManifestError(f"{where}.mode: expected 'existing' or 'create', got {mode!r}")


def _parse_image(raw: Any, where: str) -> ContainerImageSpec | None:
    if raw is None:
        return None
    repository = _field(raw, "repository", where)
    stack = _field(raw, "repository_stack", where)
    has_tag, has_digest = raw.get("tag") is not None, raw.get("digest") is not None
    if has_tag == has_digest:
        raise ManifestError(f"{where}: exactly one of 'tag' and 'digest' is needed")
    used_by = tuple(raw.get("used_by") or ())
    if has_digest:
        digest = _matching(_field(raw, "digest", where), DIGEST, f"{where}.digest", "sha256:<64 hex>")
        return ContainerImageSpec(repository, stack, digest=digest, used_by=used_by)
    return ContainerImageSpec(repository, stack, tag=_field(raw, "tag", where), used_by=used_by)


def _parse_roles(raw: Any, where: str) -> tuple[ServiceLinkedRoleSpec, ...]:
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: expected a list")
    return tuple(
        ServiceLinkedRoleSpec(
            service=_field(item, "service", f"{where}[{i}]"),
            role_name=_field(item, "role_name", f"{where}[{i}]"),
            required=_field(item, "required", f"{where}[{i}]", bool),
            needed_by=_field(item, "needed_by", f"{where}[{i}]"),
        )
        for i, item in enumerate(raw)
    )


def _parse_network(raw: Any, where: str) -> NetworkSpec | None:
    if raw is None:
        return None
    zones = _field(raw, "availability_zones", where, list)
    if not zones or not all(isinstance(zone, str) and zone for zone in zones):
        raise ManifestError(f"{where}.availability_zones: expected a non-empty list of zone names")
    network = NetworkSpec(
        stack=_field(raw, "stack", where), vpcs=_count(raw, "vpcs", where),
        nat_gateways=_count(raw, "nat_gateways", where), elastic_ips=_count(raw, "elastic_ips", where),
        availability_zones=tuple(zones),
    )
    if network.nat_gateways > len(zones):
        raise ManifestError(f"{where}.nat_gateways: {network.nat_gateways} is more than the {len(zones)} zones")
    return network


def _parse_concurrency(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object of function name -> reserved concurrency")
    return {name: _count(raw, name, where) for name in raw}


def _parse_stacks(raw: Any, where: str) -> tuple[StackRef, ...]:
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: expected a list")
    return tuple(
        StackRef(name=_field(item, "name", f"{where}[{i}]"),
                 region=_matching(_field(item, "region", f"{where}[{i}]"), REGION, f"{where}[{i}].region", "a region"))
        for i, item in enumerate(raw)
    )


def parse_preflight(raw: JsonObject, where: str) -> PreflightSpec:
    """The manifest's `preflight` section (the section itself, not the whole manifest).

    Raises ManifestError naming the missing or bad field. certificate, container_image,
    api_gateway_logging_role and network may be null: that check is then not run."""
    here = f"{where} preflight"
    dr_region = _field(raw, "dr_region", here, nullable=True)
    return PreflightSpec(
        environment=_field(raw, "environment", here),
        account_id=_matching(_field(raw, "account_id", here), ACCOUNT_ID, f"{here}.account_id",
                             "a 12-digit account id"),
        region=_matching(_field(raw, "region", here), REGION, f"{here}.region", "a region"),
        parameters_file=_field(raw, "parameters_file", here),
        lambda_reserved_concurrency=_parse_concurrency(
            _field(raw, "lambda_reserved_concurrency", here, dict), f"{here}.lambda_reserved_concurrency"),
        certificate=_parse_certificate(_field(raw, "certificate", here, dict, True), f"{here}.certificate"),
        container_image=_parse_image(_field(raw, "container_image", here, dict, True), f"{here}.container_image"),
        service_linked_roles=_parse_roles(_field(raw, "service_linked_roles", here, list),
                                          f"{here}.service_linked_roles"),
        api_gateway_logging_role=_field(raw, "api_gateway_logging_role", here, nullable=True),
        network=_parse_network(_field(raw, "network", here, dict, True), f"{here}.network"),
        dr_region=dr_region and _matching(dr_region, REGION, f"{here}.dr_region", "a region"),
        stacks=_parse_stacks(_field(raw, "stacks", here, list), f"{here}.stacks"),
    )


def preflight_of(manifest: Manifest) -> PreflightSpec:
    """The manifest's preflight section, parsed (it is required: the build always writes it)."""
    if not manifest.preflight:
        raise ManifestError(f"{manifest.path}: missing field 'preflight'; rebuild with `make build ENV={manifest.environment}`")
    return parse_preflight(manifest.preflight, str(manifest.path))


def load_preflight(build_dir: Path, environment: str) -> PreflightSpec:
    """The preflight section of build/<env>/manifest.json, parsed."""
    path = manifest_path(build_dir, environment)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"cannot read {path} ({error}); run `make build ENV={environment}`") from None
    if not isinstance(raw, dict) or "preflight" not in raw:
        raise ManifestError(f"{path}: missing field 'preflight'; rebuild with `make build ENV={environment}`")
    spec = parse_preflight(raw["preflight"], str(path))
    if spec.environment != environment:
        raise ManifestError(f"{path} preflight: written for environment {spec.environment!r}, not {environment!r}")
    return spec


# ---------------------------------------------------------------------------------------------
# Output: rows and the report
# ---------------------------------------------------------------------------------------------

class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    PENDING = "PENDING"  # satisfied later in the deploy (e.g. created by an earlier stack)
    FIXED = "FIXED"  # created now because fix=True


class Scope(Enum):
    PREFLIGHT = "preflight"
    PLAN = "plan"
    DEPLOY = "deploy"
    DESTROY = "destroy"
    RECOVER = "recover"  # recover and adopt: the account only (the stack states are what they act on)


@dataclass(frozen=True)
class Row:
    check: str
    subject: str
    status: Status
    detail: str
    commands: tuple[str, ...] = ()  # exact shell commands that fix the problem, one per entry


@dataclass
class PreflightReport:
    environment: str
    account_id: str
    region: str
    scope: Scope
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Row]:
        return self.with_status(Status.FAIL)

    def with_status(self, status: Status) -> list[Row]:
        return [row for row in self.rows if row.status is status]


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    ctx: Context
    spec: PreflightSpec
    fix: bool
    configured_region: str | None
    account_verified: bool = False

    def client(self, service: ServiceName, region: str | None = None) -> RetryingClient:
        return self.ctx.client(service, region or self.spec.region)

    def stack_region(self, stack_name: str) -> str:
        return next((s.region for s in self.spec.stacks if s.name == stack_name), self.spec.region)


# ResponseParserError: an emulator (AWS_ENDPOINT_URL) answering an API it lacks with an HTML page.
AWS_ERRORS = (ClientError, BotoCoreError, ResponseParserError)
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})


def _code(error: Exception) -> str:
    return error_code(error) if isinstance(error, ClientError) else type(error).__name__


def _message(error: Exception) -> str:
    return error_message(error) if isinstance(error, ClientError) else str(error)


def _error_row(check: str, subject: str, error: Exception, essential: bool) -> Row:
    detail = f"could not check: {_code(error)}"
    if _message(error):
        detail += f" ({_message(error)})"
    return Row(check, subject, Status.FAIL if essential else Status.WARN, detail)


def _guarded(check: str, subject: str, essential: bool, work: Callable[[], Row | list[Row]]) -> list[Row]:
    """work()'s row(s), or one row for the AWS error it raised: no error escapes a check."""
    try:
        rows = work()
        return rows if isinstance(rows, list) else [rows]
    except AWS_ERRORS as error:
        return [_error_row(check, subject, error, essential)]


def _quota_command(region: str, service_code: str, quota_code: str, value: int) -> str:
    return (f"aws service-quotas request-service-quota-increase --region {region} "
            f"--service-code {service_code} --quota-code {quota_code} --desired-value {value}")


# 1. identity -----------------------------------------------------------------------------------

IDENTITY = "identity"


def check_identity(run: _Run) -> list[Row]:
    spec = run.spec
    try:
        caller = run.client("sts").call("get_caller_identity")
    except AWS_ERRORS as error:
        row = _error_row(IDENTITY, "account", error, essential=True)
        hint = f"; use credentials for account {spec.account_id} (AWS_PROFILE, `aws sso login`)"
        return [Row(row.check, row.subject, row.status, row.detail + hint), _region_row(run)]
    account, arn = caller["Account"], caller["Arn"]
    run.account_verified = account == spec.account_id
    if run.account_verified:
        row = Row(IDENTITY, "account", Status.PASS, f"{account} as {arn}")
    else:
        row = Row(IDENTITY, "account", Status.FAIL, (
            f"your credentials are for account {account} ({arn}), {spec.parameters_file} says "
            f"account_id {spec.account_id}: switch to credentials for {spec.account_id}"))
    return [row, _region_row(run)]


def _region_row(run: _Run) -> Row:
    spec, configured = run.spec, run.configured_region
    if configured is None:
        return Row(IDENTITY, "region", Status.PASS, f"no session region set; the deploy uses {spec.region}")
    if configured == spec.region:
        return Row(IDENTITY, "region", Status.PASS, f"{configured}")
    return Row(IDENTITY, "region", Status.FAIL, (
        f"your AWS session's region is {configured}, the {spec.environment} environment is in "
        f"{spec.region} ({spec.parameters_file}): unset AWS_REGION and AWS_DEFAULT_REGION (and the "
        f"profile's region) or set them to {spec.region}"))


# 2. Lambda concurrency -------------------------------------------------------------------------

LAMBDA = "lambda concurrency"
LAMBDA_QUOTA_CODE = "L-B99A9384"


def _reserved_today(client: RetryingClient, function_name: str) -> int:
    try:
        answer = client.call("get_function_concurrency", FunctionName=function_name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return 0
        raise
    return int(answer.get("ReservedConcurrentExecutions") or 0)


def check_lambda_concurrency(run: _Run) -> list[Row]:
    wanted = run.spec.lambda_reserved_concurrency
    if not wanted:
        return [Row(LAMBDA, "account", Status.PASS, "no reserved concurrency requested")]
    client = run.client("lambda")
    limit = client.call("get_account_settings")["AccountLimit"]
    total, unreserved = limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]
    held = sum(_reserved_today(client, name) for name in sorted(wanted))
    reserving = sum(wanted.values())
    pool = unreserved - (reserving - held)
    numbers = (f"account quota {total}, unreserved now {unreserved}; these {len(wanted)} functions reserve "
               f"{reserving} ({held} reserved by them today)")
    if pool >= LAMBDA_MIN_UNRESERVED:
        return [Row(LAMBDA, "account", Status.PASS, f"{pool} stay unreserved after the deploy: {numbers}")]
    needed = (total - unreserved - held) + reserving + LAMBDA_MIN_UNRESERVED
    detail = (f"the unreserved pool would drop to {pool}, Lambda refuses a reservation that leaves fewer "
              f"than {LAMBDA_MIN_UNRESERVED}: {numbers}. Request a concurrency quota of at least {needed} "
              f"(new accounts may start at a quota of 10)")
    command = _quota_command(run.spec.region, "lambda", LAMBDA_QUOTA_CODE, needed)
    return [Row(LAMBDA, "account", Status.FAIL, detail, (command,))]


# 3. certificate --------------------------------------------------------------------------------

CERTIFICATE = "certificate"
ISSUED = "ISSUED"


def covers(name: str, domain: str) -> bool:
    """True when a certificate name covers the domain; a wildcard covers exactly one label."""
    name, domain = name.rstrip(".").lower(), domain.rstrip(".").lower()
    if not name.startswith("*."):
        return name == domain
    label, _, parent = domain.partition(".")
    return bool(label) and label != "*" and parent == name[2:]


def check_certificate(run: _Run) -> list[Row]:
    certificate = run.spec.certificate
    if certificate is None:
        return []
    if isinstance(certificate, ExistingCertificate):
        return _existing_certificate(run, certificate)
    return _certificate_to_create(run, certificate)


def _existing_certificate(run: _Run, cert: ExistingCertificate) -> list[Row]:
    spec, domain = run.spec, cert.domain_name
    arn_region = cert.region
    if arn_region != spec.region:
        return [Row(CERTIFICATE, domain, Status.FAIL, (
            f"{cert.arn} is in {arn_region}, the environment is in {spec.region}: an ALB takes a "
            f"certificate from its own region; request or import one for {domain} in {spec.region}"))]
    try:
        described = run.client("acm").call("describe_certificate", CertificateArn=cert.arn)["Certificate"]
    except ClientError as error:
        if error_code(error) not in ("ResourceNotFoundException", "InvalidArnException"):
            raise
        return [Row(CERTIFICATE, domain, Status.FAIL, (
            f"{cert.arn} not found in account {spec.account_id} ({error_code(error)}): check "
            f"certificate_arn in {spec.parameters_file}"))]
    problems = _certificate_problems(described, cert)
    if problems:
        return [Row(CERTIFICATE, domain, Status.FAIL, problem) for problem in problems]
    return [Row(CERTIFICATE, domain, Status.PASS, f"ISSUED, covers {domain}: {cert.arn}")]


def _certificate_problems(described: JsonObject, cert: ExistingCertificate) -> list[str]:
    problems = []
    status = described.get("Status", "UNKNOWN")
    if status != ISSUED:
        hint = ("finish its validation (the DNS records ACM asks for)" if status == "PENDING_VALIDATION"
                else "request or import a new one")
        problems.append(f"the certificate is {status}, not ISSUED: {hint} ({cert.arn})")
    names = list(dict.fromkeys([described.get("DomainName", ""), *described.get("SubjectAlternativeNames", [])]))
    names = [name for name in names if name]
    if not any(covers(name, cert.domain_name) for name in names):
        problems.append(f"the certificate does not cover {cert.domain_name}: it covers "
                        f"{', '.join(names) or 'nothing'} (a wildcard covers exactly one label; {cert.arn})")
    return problems


def _certificate_to_create(run: _Run, cert: CertificateToCreate) -> list[Row]:
    zone_id, domain = cert.hosted_zone_id, cert.domain_name
    try:
        zone = run.client("route53").call("get_hosted_zone", Id=zone_id)["HostedZone"]
    except ClientError as error:
        if error_code(error) not in ("NoSuchHostedZone", "InvalidInput"):
            raise
        return [Row(CERTIFICATE, domain, Status.FAIL, (
            f"hosted zone {zone_id} not found in account {run.spec.account_id} ({error_code(error)}): "
            f"the certificate for {domain} is validated by DNS in it; check hosted_zone_id in "
            f"{run.spec.parameters_file}"))]
    zone_name = zone["Name"].rstrip(".").lower()
    problems = []
    if zone.get("Config", {}).get("PrivateZone"):
        problems.append(f"hosted zone {zone_name} ({zone_id}) is private: DNS validation needs a public zone")
    if domain != zone_name and not domain.endswith("." + zone_name):
        problems.append(f"{domain} is not in hosted zone {zone_name} ({zone_id}): use the public zone of "
                        f"{domain} or of a parent domain")
    if problems:
        return [Row(CERTIFICATE, domain, Status.FAIL, problem) for problem in problems]
    return [Row(CERTIFICATE, domain, Status.PASS, (
        f"the compute stack creates the certificate and validates it by DNS in public zone "
        f"{zone_name} ({zone_id})"))]


# 4. container image ----------------------------------------------------------------------------

IMAGE = "container image"


def check_container_image(run: _Run) -> list[Row]:
    image = run.spec.container_image
    if image is None:
        return []
    try:
        run.client("ecr").call("describe_images", repositoryName=image.repository, imageIds=[image.image_id])
    except ClientError as error:
        if error_code(error) == "ImageNotFoundException":
            return [_image_missing(run, image)]
        if error_code(error) == "RepositoryNotFoundException":
            return [_repository_missing(run, image)]
        raise
    return [Row(IMAGE, image.reference, Status.PASS, f"found in {_registry(run)}/{image.repository}")]


def image_gate(ctx: Context, spec: PreflightSpec, stack_name: str) -> Row | None:
    """Before a stack that runs the image gets its change set: a row saying why it must wait
    (the image is not pushed yet), or None when it may go on."""
    image = spec.container_image
    if image is None or stack_name not in image.used_by:
        return None
    rows = _guarded(IMAGE, image.reference, False, lambda: check_container_image(_Run(ctx, spec, False, None)))
    return next((row for row in rows if row.status is not Status.PASS), None)


# A stack in these states holds none of its resources (an interrupted plan's empty stack, a failed
# first create): what it creates still counts as "to be created".
EMPTY_STACK_STATUSES = frozenset({"REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"})


def _holds_resources(stack: Stack | None) -> TypeGuard[Stack]:
    return stack is not None and stack["StackStatus"] not in EMPTY_STACK_STATUSES


def _registry(run: _Run) -> str:
    return f"{run.spec.account_id}.dkr.ecr.{run.spec.region}.amazonaws.com"


def _push_commands(run: _Run, image: ContainerImageSpec) -> tuple[str, ...]:
    registry = _registry(run)
    target = f"{registry}/{image.repository}:{image.tag or '<tag>'}"
    return (
        f"aws ecr get-login-password --region {run.spec.region} | docker login --username AWS "
        f"--password-stdin {registry}",
        f"docker tag <local image> {target}",
        f"docker push {target}",
    )


def _image_missing(run: _Run, image: ContainerImageSpec) -> Row:
    detail = f"{image.reference} is not in {_registry(run)}: push it"
    if image.digest:
        detail += f" (by any tag; the pushed image must have the digest {image.digest})"
    return Row(IMAGE, image.reference, Status.FAIL, detail, _push_commands(run, image))


def _repository_missing(run: _Run, image: ContainerImageSpec) -> Row:
    stack_name = image.repository_stack
    stack = describe_stack(run.ctx, run.stack_region(stack_name), stack_name)
    if not _holds_resources(stack) or stack["StackStatus"] == "CREATE_IN_PROGRESS":
        return Row(IMAGE, image.reference, Status.PENDING, (
            f"repository {image.repository} is created by {stack_name}; push the image after it is "
            f"deployed, the deploy stops before compute until it exists"), _push_commands(run, image))
    return Row(IMAGE, image.reference, Status.FAIL, (
        f"repository {image.repository} does not exist although {stack_name}, which creates it, is "
        f"deployed ({stack['StackStatus']}): check the repository name in {run.spec.parameters_file} "
        f"and the stack's resources"))


# 5. service-linked roles -----------------------------------------------------------------------

SLR = "service-linked role"
NO_SUCH_ENTITY = frozenset({"NoSuchEntity", "NoSuchEntityException"})
INVALID_INPUT = frozenset({"InvalidInput", "InvalidInputException"})


def check_service_linked_roles(run: _Run) -> list[Row]:
    rows: list[Row] = []
    for role in run.spec.service_linked_roles:
        rows += _guarded(SLR, role.role_name, False, partial(_service_linked_role, run, role))
    return rows


def _service_linked_role(run: _Run, role: ServiceLinkedRoleSpec) -> Row:
    try:
        run.client("iam").call("get_role", RoleName=role.role_name)
    except ClientError as error:
        if error_code(error) not in NO_SUCH_ENTITY:
            raise
    else:
        return Row(SLR, role.role_name, Status.PASS, f"exists ({role.needed_by})")
    if run.fix:
        return _create_service_linked_role(run, role)
    fix = f"make preflight ENV={run.spec.environment} FIX=1"
    if role.required:
        return Row(SLR, role.role_name, Status.FAIL, (
            f"missing, needed by {role.needed_by}: in a never-used account ECS's first cluster can race "
            f"its creation; create it first with `{fix}`"), (fix,))
    return Row(SLR, role.role_name, Status.WARN, (
        f"missing, needed by {role.needed_by}: created on first use if the deploying role may "
        f"iam:CreateServiceLinkedRole for {role.service}; FIX=1 creates it now"))


def _create_service_linked_role(run: _Run, role: ServiceLinkedRoleSpec) -> Row:
    try:
        run.client("iam").call("create_service_linked_role", AWSServiceName=role.service)
    except ClientError as error:
        if error_code(error) in INVALID_INPUT and "has been taken" in error_message(error):
            return Row(SLR, role.role_name, Status.PASS, "exists (created meanwhile by another caller)")
        return Row(SLR, role.role_name, Status.FAIL if role.required else Status.WARN, (
            f"missing, needed by {role.needed_by}, and creating it failed: {error_code(error)} "
            f"({error_message(error)})"))
    return Row(SLR, role.role_name, Status.FIXED, f"created for {role.service} ({role.needed_by})")


# 6. API Gateway account logging role -----------------------------------------------------------

APIGW = "api gateway logging"


def check_api_gateway_logging_role(run: _Run) -> list[Row]:
    ours = run.spec.api_gateway_logging_role
    if ours is None:
        return []
    subject = f"account setting {run.spec.region}"
    current = run.client("apigateway").call("get_account").get("cloudwatchRoleArn")
    if not current:
        return [Row(APIGW, subject, Status.PASS, "not set; the api stack sets it")]
    if current.rsplit("/", 1)[-1] == ours:
        return [Row(APIGW, subject, Status.PASS, f"already this environment's role: {current}")]
    return [Row(APIGW, subject, Status.WARN, (
        f"the account-wide setting currently points at {current}; the api stack will point it at its "
        f"own role ({ours}), which carries AWS's managed policy AmazonAPIGatewayPushToCloudWatchLogs "
        f"so every other API in the account keeps logging"))]


# 7. network quotas -----------------------------------------------------------------------------

NETWORK = "network quota"
DEFAULT_QUOTA = 5


@dataclass(frozen=True)
class Quota:
    name: str
    service_code: str
    quota_code: str


VPC_QUOTA = Quota("VPCs per Region", "vpc", "L-F678F1CE")
EIP_QUOTA = Quota("EC2-VPC Elastic IPs", "ec2", "L-0263D0A3")
NAT_QUOTA = Quota("NAT gateways per Availability Zone", "vpc", "L-FE5A380F")


def check_network_quotas(run: _Run) -> list[Row]:
    network = run.spec.network
    if network is None:
        return []
    if _holds_resources(describe_stack(run.ctx, run.stack_region(network.stack), network.stack)):
        return [Row(NETWORK, network.stack, Status.PASS,
                    "already deployed: its VPC, Elastic IPs and NAT gateways are already counted")]
    return (_guarded(NETWORK, "VPCs", False, lambda: [_vpc_row(run, network)])
            + _guarded(NETWORK, "Elastic IPs", False, lambda: [_eip_row(run, network)])
            + _guarded(NETWORK, "NAT gateways", False, lambda: _nat_rows(run, network)))


def _quota_value(run: _Run, quota: Quota) -> tuple[int, str]:
    """The applied quota, or AWS's default when it cannot be read (and a note saying so)."""
    try:
        answer = run.client("service-quotas").call(
            "get_service_quota", ServiceCode=quota.service_code, QuotaCode=quota.quota_code)
    except ClientError as error:
        if error_code(error) not in ACCESS_DENIED | {"NoSuchResourceException"}:
            raise
        return DEFAULT_QUOTA, f" (AWS's default: the applied quota could not be read, {error_code(error)})"
    return int(answer["Quota"]["Value"]), ""


def _quota_row(run: _Run, quota: Quota, subject: str, limit: tuple[int, str], used: int, adds: int) -> Row:
    value, note = limit
    numbers = f"{quota.name}: quota {value}{note}, in use {used}, this deploy adds {adds}"
    if used + adds <= value:
        return Row(NETWORK, subject, Status.PASS, numbers)
    wanted = used + adds
    return Row(NETWORK, subject, Status.FAIL, (
        f"{numbers}, {wanted - value} short: free some or request quota {quota.quota_code} "
        f"({quota.service_code}) of at least {wanted}"),
        (_quota_command(run.spec.region, quota.service_code, quota.quota_code, wanted),))


def _paged(client: RetryingClient, operation: str, key: str, **kwargs: Any) -> list[JsonObject]:
    items: list[JsonObject] = []
    while True:
        answer = client.call(operation, **kwargs)
        items += answer.get(key, [])
        if not answer.get("NextToken"):
            return items
        kwargs["NextToken"] = answer["NextToken"]


def _vpc_row(run: _Run, network: NetworkSpec) -> Row:
    if not network.vpcs:
        return Row(NETWORK, "VPCs", Status.PASS, "none needed")
    used = len(_paged(run.client("ec2"), "describe_vpcs", "Vpcs"))
    return _quota_row(run, VPC_QUOTA, "VPCs", _quota_value(run, VPC_QUOTA), used, network.vpcs)


def _eip_row(run: _Run, network: NetworkSpec) -> Row:
    if not network.elastic_ips:
        return Row(NETWORK, "Elastic IPs", Status.PASS, "none needed")
    addresses = run.client("ec2").call("describe_addresses", Filters=[{"Name": "domain", "Values": ["vpc"]}])
    used = len(addresses.get("Addresses", []))
    return _quota_row(run, EIP_QUOTA, "Elastic IPs", _quota_value(run, EIP_QUOTA), used, network.elastic_ips)


def _nat_gateways_per_zone(run: _Run) -> Counter[str]:
    ec2 = run.client("ec2")
    gateways = _paged(ec2, "describe_nat_gateways", "NatGateways",
                      Filter=[{"Name": "state", "Values": ["pending", "available"]}])
    subnet_ids = sorted({gateway["SubnetId"] for gateway in gateways if gateway.get("SubnetId")})
    zones: dict[str, str] = {}
    if subnet_ids:
        subnets = _paged(ec2, "describe_subnets", "Subnets", SubnetIds=subnet_ids)
        zones = {subnet["SubnetId"]: subnet["AvailabilityZone"] for subnet in subnets}
    return Counter(zones.get(gateway.get("SubnetId", ""), "?") for gateway in gateways)


def _nat_rows(run: _Run, network: NetworkSpec) -> list[Row]:
    if not network.nat_gateways:
        return [Row(NETWORK, "NAT gateways", Status.PASS, "none needed")]
    per_zone = _nat_gateways_per_zone(run)
    limit = _quota_value(run, NAT_QUOTA)
    return [_quota_row(run, NAT_QUOTA, f"NAT gateways {zone}", limit, per_zone[zone], 1)
            for zone in network.availability_zones[:network.nat_gateways]]


# 8. DR region ----------------------------------------------------------------------------------

DR = "dr region"
ENABLED_REGION_STATUSES = frozenset({"opt-in-not-required", "opted-in"})


def check_dr_region(run: _Run) -> list[Row]:
    region = run.spec.dr_region
    if not region:
        return []
    regions = run.client("ec2").call("describe_regions", AllRegions=True, RegionNames=[region])["Regions"]
    status = regions[0].get("OptInStatus", "unknown") if regions else "not a region"
    if status in ENABLED_REGION_STATUSES:
        rows = [Row(DR, region, Status.PASS, f"enabled ({status})")]
        return rows + _guarded(DR, region, True, lambda: [_dr_identity_row(run, region)])
    hint = {"enabling": "it is being enabled; wait until the account settings show it Enabled"}.get(
        status, "enable the region in the account settings (Account > AWS Regions)")
    commands = () if status == "enabling" else (f"aws account enable-region --region-name {region}",)
    return [Row(DR, region, Status.FAIL, f"{region} is {status} in this account: {hint}", commands)]


def _dr_identity_row(run: _Run, region: str) -> Row:
    account = run.client("sts", region).call("get_caller_identity")["Account"]
    if account != run.spec.account_id:
        return Row(DR, region, Status.FAIL, f"credentials in {region} are for account {account}, "
                                            f"not {run.spec.account_id}")
    return Row(DR, region, Status.PASS, f"credentials work in {region} (account {account})")


# 9. blocked stacks -----------------------------------------------------------------------------

STACKS = "stack state"


def check_stacks(run: _Run) -> list[Row]:
    rows: list[Row] = []
    for ref in run.spec.stacks:
        rows += _guarded(STACKS, ref.name, True, partial(_stack_row, run, ref))
    return rows


def _stack_row(run: _Run, ref: StackRef) -> Row:
    stack = describe_stack(run.ctx, ref.region, ref.name)
    if stack is None:
        return Row(STACKS, ref.name, Status.PASS, "not created yet")
    status = stack["StackStatus"]
    if status in BLOCKED_STATUSES:
        command = f"make recover ENV={run.spec.environment} STACK={ref.name}"
        return Row(STACKS, ref.name, Status.FAIL,
                   f"{status}: CloudFormation accepts no change until it is recovered", (command,))
    if status == "REVIEW_IN_PROGRESS":
        return Row(STACKS, ref.name, Status.WARN, "REVIEW_IN_PROGRESS: an interrupted plan's empty stack; "
                                                  "the next plan replaces it")
    if is_in_progress(status):
        return Row(STACKS, ref.name, Status.WARN, f"{status}: an operation is running; the deploy waits for it")
    if status == "ROLLBACK_COMPLETE":
        return Row(STACKS, ref.name, Status.WARN, "ROLLBACK_COMPLETE: a failed first create, holds no "
                                                  "resources; deploy recreates it, destroy deletes it")
    return Row(STACKS, ref.name, Status.PASS, status)


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------

ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[_Run], list[Row]]
    subject: str  # the subject of the row an unexpected AWS error becomes
    essential: bool = False  # an error is a FAIL (else a WARN "could not check")
    scopes: frozenset[Scope] = ALL_SCOPES - {Scope.DESTROY, Scope.RECOVER}


# In order. Identity runs first: the checks after it run only once the credentials are known to
# be for the environment's account (else they would inspect, and with fix=True change, another one).
CHECKS: tuple[Check, ...] = (
    Check(IDENTITY, check_identity, "account", essential=True, scopes=ALL_SCOPES),
    Check(LAMBDA, check_lambda_concurrency, "account"),
    Check(CERTIFICATE, check_certificate, "certificate"),
    Check(IMAGE, check_container_image, "image"),
    Check(SLR, check_service_linked_roles, "roles"),
    Check(APIGW, check_api_gateway_logging_role, "account setting"),
    Check(NETWORK, check_network_quotas, "network"),
    Check(DR, check_dr_region, "dr region"),
    Check(STACKS, check_stacks, "stacks", essential=True, scopes=ALL_SCOPES - {Scope.RECOVER}),
)


def run_preflight(ctx: Context, spec: PreflightSpec, scope: Scope, fix: bool = False,
                  configured_region: str | None = None) -> PreflightReport:
    """Runs the checks of the scope and returns every row; raises nothing for AWS errors.

    configured_region: the region of the user's AWS session (None when unset). fix=True creates
    missing service-linked roles (the only write)."""
    run = _Run(ctx, spec, fix, configured_region)
    report = PreflightReport(spec.environment, spec.account_id, spec.region, scope)
    selected = [check for check in CHECKS if scope in check.scopes]
    for check in selected:
        if check.name != IDENTITY and not run.account_verified:
            report.rows.append(_not_run_row(spec, [c.name for c in selected if c.name != IDENTITY]))
            break
        report.rows += _guarded(check.name, check.subject, check.essential, partial(check.run, run))
    return report


def _not_run_row(spec: PreflightSpec, names: list[str]) -> Row:
    return Row(IDENTITY, "other checks", Status.WARN, (
        f"not run until the credentials are for account {spec.account_id}: {', '.join(names)}"))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

WIDTH = 100
GAP = "  "
STATUS_WIDTH = max(len(status.value) for status in Status)
CHECK_WIDTH_MAX, SUBJECT_WIDTH_MAX = 20, 26
COMMAND_INDENT = 4


def render(report: PreflightReport) -> str:
    """The report as an aligned table WIDTH columns wide (a line is longer only where one word,
    such as an ARN, is longer than its column), with a verdict last."""
    check_width = min(CHECK_WIDTH_MAX, max([len("CHECK"), *(len(r.check) for r in report.rows)]))
    subject_width = min(SUBJECT_WIDTH_MAX, max([len("SUBJECT"), *(len(r.subject) for r in report.rows)]))
    detail_width = WIDTH - STATUS_WIDTH - check_width - subject_width - 3 * len(GAP)
    widths = (STATUS_WIDTH, check_width, subject_width, detail_width)
    lines = [f"preflight ({report.scope.value}) of {report.environment}: account {report.account_id}, "
             f"region {report.region}",
             _table_line(widths, ("STATUS", "CHECK", "SUBJECT", "DETAIL"))]
    for row in report.rows:
        lines += _row_lines(widths, row)
    lines.append(_verdict(report))
    return "\n".join(lines)


def _wrap(text: str, width: int, cut_words: bool = True) -> list[str]:
    """In the detail column words are never cut: an ARN or a registry host must stay copyable,
    so a single word longer than the column overflows the table instead."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=cut_words) or [""]


def _table_line(widths: tuple[int, ...], cells: tuple[str, ...]) -> str:
    return GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()


def _row_lines(widths: tuple[int, ...], row: Row) -> list[str]:
    cells = (row.status.value, row.check, row.subject, row.detail)
    columns = [_wrap(text, width, cut_words=index < len(cells) - 1)
               for index, (text, width) in enumerate(zip(cells, widths, strict=False))]
    height = max(len(column) for column in columns)
    lines = [_table_line(widths, tuple(column[i] if i < len(column) else "" for column in columns))
             for i in range(height)]
    for command in row.commands:
        lines += _command_lines(command, WIDTH - COMMAND_INDENT)
    return lines


def _command_lines(command: str, width: int) -> list[str]:
    """A shell command wrapped with backslash continuations, so it still pastes as one command."""
    indent, lines, current = " " * COMMAND_INDENT, list[str](), ""
    for word in command.split(" "):
        limit = width - 2 - (2 if lines else 0)  # room for " \" and the continuation indent
        if current and len(current) + 1 + len(word) > limit:
            lines.append(current + " \\")
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return [indent + ("  " if i else "") + line for i, line in enumerate(lines)]


def _verdict(report: PreflightReport) -> str:
    failures = len(report.failures)
    if failures:
        return f"preflight refused: {failures} problem(s)"
    notes = [f"{len(report.with_status(status))} {status.value.lower()}"
             for status in (Status.WARN, Status.PENDING, Status.FIXED) if report.with_status(status)]
    return "preflight passed" + (f" ({', '.join(notes)})" if notes else "")
