"""Environment configuration: `parameters/<env>.yaml`, loaded through one strict schema.

Every difference between environments lives in those files. A bad file stops the build with the
file, the key path and what is wrong (`ConfigError`), never a traceback:
- YAML is read strictly: a syntax error names the file, line and column; a key given twice in one
  mapping is an error (YAML would silently keep the second value);
- values are never coerced: `yes` is not a number, `"false"` is not a boolean (pydantic strict);
- an unknown key gets "did you mean ...", a value outside a fixed set lists the allowed values;
- rules that span fields (account and region of a certificate, what staging and prod must keep)
  are checked after the schema and name the field they are about;
- rules that span environments (overlapping VPC CIDRs) run when all files are loaded together.
"""
from __future__ import annotations

import difflib
import enum
import ipaddress
import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .batch_writes import ON_DEMAND_WARM_WRITE_UNITS_PER_S, TABLE_WRITE_QUOTA_PER_S, WRITE_UNITS_PER_CHILD_PER_S

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS_DIR = ROOT / "parameters"
# `local` is the emulator's environment (make emulator / make e2e); `make build` builds the others.
ENVIRONMENTS = ("dev", "staging", "prod", "local")
DEFAULT_BUILD = ("dev", "staging", "prod")
# Environments holding data worth keeping: termination protection and retained data are required.
PROTECTED_ENVIRONMENTS = frozenset({"staging", "prod"})

EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
CERTIFICATE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):acm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):certificate/(?P<id>[0-9a-f-]{36})$"
)
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Account ids that only ever appear in examples and documentation.
PLACEHOLDER_ACCOUNTS = frozenset({str(digit) * 12 for digit in range(10)} | {"123456789012", "012345678901"})


class ConfigError(Exception):
    """A parameter file is wrong. str() is a readable, multi-line explanation."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PeeringConfig(Section):
    """Optional VPC peering to another environment's VPC (off by default)."""

    enabled: bool = False
    peer_vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    peer_cidr: str | None = None

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> PeeringConfig:
        if self.enabled and not (self.peer_vpc_id and self.peer_cidr):
            raise ValueError("peering.enabled needs peer_vpc_id and peer_cidr")
        if self.peer_cidr:
            _network(self.peer_cidr)
        return self


class NetworkConfig(Section):
    cidr: str
    availability_zones: list[str] = Field(min_length=3, max_length=3)
    # NAT gateways in the first zones, 0 to one per zone (checked in cross_field_problems).
    nat_gateways: int
    flow_log_retention_days: int
    peering: PeeringConfig = PeeringConfig()

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = _network(value)
        if network.prefixlen != 16:
            raise ValueError("the VPC CIDR must be a /16 (nine /24 subnets are carved from it)")
        if not network.is_private:
            raise ValueError("the VPC CIDR must be a private (RFC 1918) range")
        return value

    @field_validator("availability_zones")
    @classmethod
    def _distinct_zones(cls, zones: list[str]) -> list[str]:
        if len(set(zones)) != len(zones):
            raise ValueError("availability zones must be distinct")
        return zones

    @model_validator(mode="after")
    def _peer_outside_vpc(self) -> NetworkConfig:
        peer_cidr = self.peering.peer_cidr
        if peer_cidr and _network(peer_cidr).overlaps(_network(self.cidr)):
            raise ValueError(f"peering.peer_cidr {peer_cidr} overlaps the VPC CIDR {self.cidr}: routes would clash")
        return self


class AuroraConfig(Section):
    mode: Literal["serverless_v2", "provisioned"] = "serverless_v2"
    engine_version: str = Field(pattern=r"^\d+\.\d+$")
    min_capacity_acu: float = Field(default=0.5, ge=0.5, le=256)
    max_capacity_acu: float = Field(default=4, ge=1, le=256)
    instance_class: str = Field(default="db.r6g.large", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    backup_retention_days: int = Field(ge=1, le=35)
    monitoring_interval_s: Literal[1, 5, 10, 15, 30, 60] = 60

    @model_validator(mode="after")
    def _capacity_order(self) -> AuroraConfig:
        if self.min_capacity_acu > self.max_capacity_acu:
            raise ValueError("min_capacity_acu must not exceed max_capacity_acu")
        return self


class DataConfig(Section):
    aurora: AuroraConfig
    # Warm write throughput of the tables and indexes the batch rows write (templates_src/batch_writes.py),
    # in write units per second. Absent: the on-demand default a new table starts with. It can only
    # ever be raised, never lowered (DynamoDB), and raising it is billed: see README "Write throughput".
    warm_write_units_per_s: int | None = Field(default=None, ge=1)


class StorageConfig(Section):
    """Retention of the storage layer's buckets. Audit logs are card-payment audit trail:
    PCI DSS asks for at least 12 months of history, hence the floor of 365 days.

    The audit buckets are locked (S3 Object Lock, write once read many): every new version is
    kept for `audit_lock_days` in `audit_lock_mode`. COMPLIANCE cannot be shortened or bypassed
    by anyone, GOVERNANCE only by a principal allowed s3:BypassGovernanceRetention (so a
    disposable environment can still be destroyed)."""

    audit_retention_days: int = Field(ge=365, le=3650)
    batch_report_retention_days: int = Field(ge=1, le=3650)
    audit_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"]
    audit_lock_days: int = Field(ge=1, le=3650)


class EcsConfig(Section):
    """The payment API container. The image lives in this environment's own ECR repository
    (created by the artifacts stack); `image` is its tag (`1.4.2`) or digest (`sha256:...`)."""

    image: str
    container_port: int = Field(ge=1024, le=65535)
    cpu: Literal[256, 512, 1024, 2048, 4096]
    memory_mb: int = Field(ge=512, le=30720)
    min_tasks: int = Field(ge=1, le=100)
    max_tasks: int = Field(ge=1, le=100)
    cpu_target_percent: int = Field(ge=10, le=90)
    memory_target_percent: int = Field(ge=10, le=90)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not (IMAGE_TAG.match(value) or IMAGE_DIGEST.match(value)):
            raise ValueError(
                f"{value!r} must be an image tag (letters, digits, . _ -) or a digest sha256:<64 hex>; "
                "the repository is this environment's own (payments-<env>-api)"
            )
        return value

    @property
    def image_is_digest(self) -> bool:
        return bool(IMAGE_DIGEST.match(self.image))

    @model_validator(mode="after")
    def _task_bounds(self) -> EcsConfig:
        if self.min_tasks > self.max_tasks:
            raise ValueError("min_tasks must not exceed max_tasks")
        return self

    @model_validator(mode="after")
    def _fargate_size(self) -> EcsConfig:
        allowed = FARGATE_MEMORY_MB[self.cpu]
        if self.memory_mb not in allowed:
            raise ValueError(
                f"memory_mb {self.memory_mb} is not a Fargate size for cpu {self.cpu} "
                f"(allowed: {min(allowed)}-{max(allowed)} in the steps Fargate offers)"
            )
        return self


# Fargate task sizes (Linux): the memory values each cpu value accepts.
FARGATE_MEMORY_MB = {
    256: frozenset({512, 1024, 2048}),
    512: frozenset(range(1024, 4097, 1024)),
    1024: frozenset(range(2048, 8193, 1024)),
    2048: frozenset(range(4096, 16385, 1024)),
    4096: frozenset(range(8192, 30721, 1024)),
}


class CertificateMode(enum.Enum):
    EXISTING = "existing"  # an ACM certificate issued outside the project, checked before deploy
    CREATE = "create"  # requested by the compute stack, validated by DNS in a Route 53 zone


class CertificateConfig(Section):
    """The HTTPS listener's certificate: give `arn` (an existing ISSUED certificate in the
    environment's region and account) or `hosted_zone_id` (the compute stack requests one for
    `domain_name` and validates it by DNS in that public zone). Never both."""

    domain_name: str
    arn: str | None = None
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,31}$")

    @field_validator("domain_name")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not DOMAIN_NAME.match(value):
            raise ValueError(f"{value!r} is not a lower-case DNS name such as api.example.com")
        return value

    @field_validator("arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not CERTIFICATE_ARN.match(value):
            raise ValueError("must be an ACM certificate ARN: arn:aws:acm:<region>:<account>:certificate/<id>")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CertificateConfig:
        if (self.arn is None) == (self.hosted_zone_id is None):
            raise ValueError("give exactly one of arn (an existing certificate) or hosted_zone_id (create one)")
        return self

    @property
    def mode(self) -> CertificateMode:
        return CertificateMode.EXISTING if self.arn else CertificateMode.CREATE

    @property
    def certificate_id(self) -> str:
        """The id part of the existing certificate's ARN (templates rebuild the ARN from the
        stack's own partition, region and account)."""
        match = CERTIFICATE_ARN.match(self.arn or "")
        if not match:
            raise ValueError("only an existing certificate has an id")
        return match["id"]


class ComputeConfig(Section):
    lambda_reserved_concurrency: int = Field(ge=1, le=1000)
    certificate: CertificateConfig
    ecs: EcsConfig
    # Port 80 open only to answer with a redirect to HTTPS. A program that calls http:// has sent
    # the card number in clear before it sees the redirect: staging and prod never open it.
    http_redirect: bool = False


class BatchConfig(Section):
    """Batch CSV ingestion (functions/batch_ingestion.asl.json). Objects up to
    `distributed_threshold_bytes` are ingested by one function invocation; larger ones by the
    Distributed Map in batches of `batch_rows` rows, at most `max_concurrency` batches at a time.
    The threshold comes from measurement (README, batch ingestion; benchmarks/batch_map.py): 2 MiB
    is about 40,000 rows, under 6 min at the pessimistic per-row time, against the 900 s timeout."""

    distributed_threshold_bytes: int = Field(ge=1024, le=128 * 1024 * 1024)
    # One child execution's input is at most 256 KiB; a row item is about 200 bytes of JSON.
    batch_rows: int = Field(ge=1, le=1000)
    max_concurrency: int = Field(ge=1, le=1000)
    # Reserved concurrency of the map's child function (its function.yaml: `reserved_concurrency:
    # batch`): the map's batches never take the API's functions' capacity, nor throttle each other.
    reserved_concurrency: int = Field(ge=1, le=1000)


class ApiConfig(Section):
    throttle_rate_per_s: int = Field(ge=1, le=10000)
    throttle_burst: int = Field(ge=1, le=5000)
    quota_per_day: int = Field(ge=1, le=100_000_000)
    waf_rate_limit_per_5min: int = Field(ge=100, le=2_000_000_000)
    # The stage is the URL's version segment (/v1/payments); API Gateway allows [A-Za-z0-9_].
    stage_name: str = Field(default="v1", pattern=r"^[A-Za-z0-9_]{1,64}$")
    # How long API Gateway reuses the authorizer's answer for one Authorization header: a revoked
    # key or a suspended merchant keeps working for at most this long (API Gateway's maximum 3600).
    authorizer_cache_ttl_s: int = Field(default=300, ge=0, le=3600)


class AlarmThresholds(Section):
    api_p99_latency_ms: int = Field(ge=10, le=29000)
    api_5xx_per_5min: int = Field(ge=1)
    lambda_errors_per_5min: int = Field(ge=1)
    lambda_throttles_per_5min: int = Field(ge=1)
    aurora_cpu_percent: int = Field(ge=10, le=100)
    alb_5xx_per_5min: int = Field(ge=1)
    alb_latency_p99_ms: int = Field(ge=10, le=60000)
    ecs_cpu_percent: int = Field(ge=10, le=100)


class MonitoringConfig(Section):
    alarm_email: str
    alarms: AlarmThresholds

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value


class DisasterRecoveryConfig(Section):
    enabled: bool = False
    region: str | None = None

    @model_validator(mode="after")
    def _region_when_enabled(self) -> DisasterRecoveryConfig:
        if self.enabled and not self.region:
            raise ValueError("dr.enabled needs a region")
        if self.region and not REGION.match(self.region):
            raise ValueError(f"{self.region!r} is not an AWS region name")
        return self


GITHUB_REPOSITORY = re.compile(r"^github\.com/(?P<slug>[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100})$")
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
OIDC_PROVIDER_ARN = re.compile(
    rf"^arn:aws[a-z-]*:iam::(?P<account>\d{{12}}):oidc-provider/{re.escape(GITHUB_OIDC_HOST)}$"
)


class DeliveryConfig(Section):
    """GitHub Actions deploys this environment through OIDC roles of its bootstrap stack
    (README: Continuous delivery). The repository is `repository` (github.com/<owner>/<name>).

    - `github_environment`: the GitHub environment whose jobs may assume the deploy role (its
      token's `sub` names the environment, not the branch: the environment's deployment-branch
      rule keeps it to main);
    - `pull_request_plans`: pull requests of the repository may assume the read-only plan role
      (their code is not reviewed yet: never where card data lives);
    - `oidc_provider_arn`: the account's existing GitHub OIDC provider (IAM allows one per issuer
      and account); absent, the bootstrap stack creates it."""

    github_environment: str = Field(pattern=r"^[A-Za-z0-9._-]{1,255}$")
    pull_request_plans: bool = False
    oidc_provider_arn: str | None = None

    @field_validator("oidc_provider_arn")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is not None and not OIDC_PROVIDER_ARN.match(value):
            raise ValueError(f"{value!r} is not the ARN of a GitHub OIDC provider: "
                             f"arn:aws:iam::<account>:oidc-provider/{GITHUB_OIDC_HOST}")
        return value


class EnvironmentConfig(Section):
    """One environment. `name` must match the file name."""

    name: Literal["dev", "staging", "prod", "local"]
    account_id: str
    region: str
    cost_center: str = Field(pattern=r"^[A-Za-z0-9-]{2,64}$")
    repository: str = Field(min_length=3, max_length=200)
    stateful_deletion_policy: Literal["Delete", "Retain", "Snapshot"]
    termination_protection: bool
    log_retention_days: int
    network: NetworkConfig
    data: DataConfig
    storage: StorageConfig
    compute: ComputeConfig
    api: ApiConfig
    batch: BatchConfig
    monitoring: MonitoringConfig
    dr: DisasterRecoveryConfig = DisasterRecoveryConfig()
    delivery: DeliveryConfig | None = None
    _source: Path | None = PrivateAttr(default=None)  # the parameters file it was loaded from

    @property
    def source(self) -> str:
        """The parameters file, as errors name it (rules the build checks later than loading)."""
        return display_path(self._source or PARAMETERS_DIR / f"{self.name}.yaml")

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"quote it ('{value:012d}'): YAML reads an unquoted number, which loses leading zeros")
        if isinstance(value, str) and not ACCOUNT_ID.match(value):
            raise ValueError(f"{value!r} is not a 12-digit AWS account id")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @property
    def retains_data(self) -> bool:
        return self.stateful_deletion_policy != "Delete"

    @property
    def github_repository(self) -> str:
        """`owner/name` of the GitHub repository (what GitHub's OIDC tokens name)."""
        match = GITHUB_REPOSITORY.match(self.repository)
        if not match:
            raise ValueError(f"repository {self.repository!r} is not github.com/<owner>/<name>")
        return match["slug"]


LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a valid IPv4 CIDR ({error})") from None


# --- rules across fields ------------------------------------------------------------------------


def is_placeholder_arn(arn: str) -> bool:
    """An ARN that only an example would carry: a documentation account, or an id that is mostly
    one repeated digit (00000000-0000-4000-8000-000000000001)."""
    match = CERTIFICATE_ARN.match(arn)
    if not match:
        return False
    digits = match["id"].replace("-", "")
    return match["account"] in PLACEHOLDER_ACCOUNTS or Counter(digits).most_common(1)[0][1] >= len(digits) // 2


def _allowed(values) -> str:
    return ", ".join(str(value) for value in values)


def cross_field_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    """[(key path, reason)] for rules that involve more than one field."""
    problems = []
    for index, zone in enumerate(config.network.availability_zones):
        if not zone.startswith(config.region) or len(zone) != len(config.region) + 1:
            problems.append((f"network.availability_zones[{index}]", f"{zone!r} is not a zone of {config.region}"))
    zone_count, nat_gateways = len(config.network.availability_zones), config.network.nat_gateways
    if not 0 <= nat_gateways <= zone_count:
        problems.append(("network.nat_gateways", f"{nat_gateways} NAT gateways for {zone_count} zones: allowed 0 to {zone_count}"))
    for key, days in (("log_retention_days", config.log_retention_days),
                      ("network.flow_log_retention_days", config.network.flow_log_retention_days)):
        if days not in LOG_RETENTION_DAYS:
            problems.append((key, f"{days} is not a CloudWatch Logs retention period (allowed: {_allowed(LOG_RETENTION_DAYS)})"))
    if config.dr.enabled and config.dr.region == config.region:
        problems.append(("dr.region", f"{config.dr.region} is the environment's own region; choose another"))
    problems += _protection_problems(config)
    problems += _certificate_problems(config)
    problems += _audit_trail_problems(config)
    problems += _batch_problems(config)
    problems += _delivery_problems(config)
    return problems


def _batch_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    """The map's batches at once against the function's reservation and the tables' warm writes."""
    batch, warm = config.batch, config.data.warm_write_units_per_s
    problems = []
    if batch.max_concurrency > batch.reserved_concurrency:
        problems.append(("batch.max_concurrency",
                         f"{batch.max_concurrency} batches at once cannot run on the batch map function's "
                         f"{batch.reserved_concurrency} reserved executions (batch.reserved_concurrency): "
                         f"at most {batch.reserved_concurrency}"))
    if warm is not None and not ON_DEMAND_WARM_WRITE_UNITS_PER_S <= warm <= TABLE_WRITE_QUOTA_PER_S:
        problems.append(("data.warm_write_units_per_s",
                         f"{warm:,} is outside {ON_DEMAND_WARM_WRITE_UNITS_PER_S:,} (what a new on-demand table "
                         f"serves anyway; leave the key out for that) to {TABLE_WRITE_QUOTA_PER_S:,} (an account's "
                         "default per-table quota); warm throughput can never be lowered once set"))
        return problems
    writes = batch.max_concurrency * WRITE_UNITS_PER_CHILD_PER_S
    available = warm or ON_DEMAND_WARM_WRITE_UNITS_PER_S
    if writes > available:
        problems.append(("batch.max_concurrency",
                         f"{batch.max_concurrency} batches at once write {writes:,} units/s "
                         f"({WRITE_UNITS_PER_CHILD_PER_S:,} per child) to a table warm for {available:,} "
                         f"(data.warm_write_units_per_s{'' if warm else ', absent: the on-demand default'}): "
                         f"at most {available // WRITE_UNITS_PER_CHILD_PER_S} batches, or raise "
                         f"data.warm_write_units_per_s to at least {writes:,}"))
    return problems


def _delivery_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    """The OIDC trust names the repository and the account's provider: both must be this
    environment's. Pull requests run code nobody has reviewed yet: they never reach prod."""
    delivery, problems = config.delivery, []
    if delivery is None:
        return []
    if not GITHUB_REPOSITORY.match(config.repository):
        problems.append(("repository", f"delivery trusts GitHub tokens of this repository: give it as "
                                       f"github.com/<owner>/<name> (got {config.repository})"))
    provider = OIDC_PROVIDER_ARN.match(delivery.oidc_provider_arn or "")
    if provider and provider["account"] != config.account_id:
        problems.append(("delivery.oidc_provider_arn", f"the provider belongs to account {provider['account']}, "
                                                       f"not to account_id {config.account_id}"))
    if config.name == "prod" and delivery.pull_request_plans:
        problems.append(("delivery.pull_request_plans", "prod carries card data and a pull request's code is not "
                                                        "reviewed yet: allowed false (got true)"))
    return problems


def _audit_trail_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    """The audit trail of an environment holding card data cannot be erased (PCI DSS 10.3); a
    disposable one keeps a lock it can still get past (1 day, GOVERNANCE) so destroy works."""
    storage, problems = config.storage, []
    if config.name == "prod" and storage.audit_lock_mode != "COMPLIANCE":
        problems.append(("storage.audit_lock_mode", f"prod's audit trail is locked in COMPLIANCE mode: allowed COMPLIANCE (got {storage.audit_lock_mode})"))
    if config.name in PROTECTED_ENVIRONMENTS and storage.audit_lock_days < 365:
        problems.append(("storage.audit_lock_days", f"{config.name} keeps 12 months of audit trail: at least 365 (got {storage.audit_lock_days})"))
    if config.name not in PROTECTED_ENVIRONMENTS and (storage.audit_lock_mode, storage.audit_lock_days) != ("GOVERNANCE", 1):
        problems.append(("storage", f"{config.name} is destroyed with its data: audit_lock_mode GOVERNANCE and audit_lock_days 1 "
                                    f"(got {storage.audit_lock_mode}, {storage.audit_lock_days})"))
    if storage.audit_lock_days > storage.audit_retention_days:
        problems.append(("storage.audit_lock_days", f"{storage.audit_lock_days} is longer than audit_retention_days "
                                                    f"{storage.audit_retention_days}: versions would outlive their retention"))
    if config.name in PROTECTED_ENVIRONMENTS and config.compute.http_redirect:
        problems.append(("compute.http_redirect", f"{config.name} carries card data: allowed false (got true)"))
    return problems


def _protection_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    problems = []
    protected = config.name in PROTECTED_ENVIRONMENTS
    allowed = ("Retain", "Snapshot") if protected else ("Delete",)
    if config.stateful_deletion_policy not in allowed:
        why = "keeps its data" if protected else "is disposable and deletes its data"
        problems.append(("stateful_deletion_policy",
                         f"{config.name} {why}: allowed {_allowed(allowed)} (got {config.stateful_deletion_policy})"))
    if protected and not config.termination_protection:
        problems.append(("termination_protection", f"{config.name} must be protected: allowed true (got false)"))
    return problems


def _certificate_problems(config: EnvironmentConfig) -> list[tuple[str, str]]:
    arn = config.compute.certificate.arn
    match = CERTIFICATE_ARN.match(arn or "")
    if not match:
        return []
    key = "compute.certificate.arn"
    problems = []
    if match["region"] != config.region:
        problems.append((key, f"the certificate is in {match['region']}; an ALB in {config.region} needs one from {config.region}"))
    if match["account"] != config.account_id:
        problems.append((key, f"the certificate belongs to account {match['account']}, not to account_id {config.account_id}"))
    if config.name in PROTECTED_ENVIRONMENTS and is_placeholder_arn(arn):
        problems.append((key, f"{arn} looks like a placeholder; {config.name} needs a real certificate ARN, "
                              "or hosted_zone_id to have the compute stack create one"))
    return problems


# --- reading files ------------------------------------------------------------------------------


def display_path(path: Path) -> str:
    """Paths under the repository are shown relative to it (parameters/dev.yaml)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{display_path(path)}: file not found") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _refuse_duplicate_keys(path, node, "")
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{display_path(path)}{where}: not valid YAML: {error.problem or error.context}") from None


def _refuse_duplicate_keys(path: Path, node: Any, prefix: str) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_path = f"{prefix}{key}"
            if key in first_line:
                raise ConfigError(
                    f"{display_path(path)}:{key_node.start_mark.line + 1}: {key_path}: given twice (first on line "
                    f"{first_line[key]}); YAML would silently keep the second value, so say it once"
                )
            first_line[key] = key_node.start_mark.line + 1
            _refuse_duplicate_keys(path, value_node, f"{key_path}.")
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(path, item, f"{prefix.rstrip('.')}[{index}].")


def _model_at(location: tuple) -> type[BaseModel] | None:
    """The schema section at a key path (for 'did you mean')."""
    model: Any = EnvironmentConfig
    for part in location:
        field = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            return None
        model = field.annotation
        if getattr(model, "__origin__", None) is not None:  # Optional[X]
            model = next((arg for arg in model.__args__ if isinstance(arg, type) and issubclass(arg, BaseModel)), None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def _key_path(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _reason(problem: dict) -> str:
    kind, location = problem["type"], problem["loc"]
    if kind == "extra_forbidden":
        model = _model_at(location[:-1])
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.6)
        return f"unknown key (did you mean {close[0]!r}?)" if close else f"unknown key (allowed: {_allowed(known)})"
    if kind == "missing":
        return "missing key"
    if kind == "literal_error":
        return f"{problem['input']!r} is not allowed: choose one of {problem['ctx']['expected']}"
    if kind.endswith("_type") and kind != "model_type":
        return f"{problem['msg'].lower()}, got {type(problem['input']).__name__} {problem['input']!r} (values are never converted)"
    return problem["msg"].removeprefix("Value error, ")


def _schema_problems(error: ValidationError) -> list[tuple[str, str]]:
    """(key path, reason) per problem. A misspelt key is reported once: as unknown with its
    suggestion, not a second time as the missing key it was meant to be."""
    problems = [(_key_path(p["loc"]), _reason(p)) for p in error.errors()]
    suggested = {
        _key_path((*p["loc"][:-1], match[1]))
        for p, (_, reason) in zip(error.errors(), problems, strict=False)
        if p["type"] == "extra_forbidden" and (match := re.search(r"did you mean '([^']+)'", reason))
    }
    return [(key, reason) for key, reason in problems if not (reason == "missing key" and key in suggested)]


def _report(path: Path, problems: list[tuple[str, str]]) -> str:
    lines = [f"{display_path(path)}: {len(problems)} problem(s)"]
    lines += [f"  {key}: {reason}" for key, reason in problems]
    return "\n".join(lines)


def load_environment(name: str, parameters_dir: Path = PARAMETERS_DIR) -> EnvironmentConfig:
    """Load and validate one environment's parameter file."""
    if name not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {name!r}: choose one of {', '.join(ENVIRONMENTS)}")
    path = Path(parameters_dir) / f"{name}.yaml"
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{display_path(path)}: must be a mapping of keys to values")
    if raw.get("name", name) != name:
        raise ConfigError(f"{display_path(path)}: name: {raw.get('name')!r} does not match the file name {name!r}")
    try:
        config = EnvironmentConfig(**{"name": name, **raw})
    except ValidationError as error:
        raise ConfigError(_report(path, _schema_problems(error))) from None
    problems = cross_field_problems(config)
    if problems:
        raise ConfigError(_report(path, problems))
    config._source = path
    return config


def load_environments(
    names: tuple[str, ...] = DEFAULT_BUILD, parameters_dir: Path = PARAMETERS_DIR
) -> dict[str, EnvironmentConfig]:
    """Load environments and check rules that span them. Overlap is always checked against
    every environment file present, even when building just one, so a dev change cannot
    silently collide with prod."""
    every = {
        name: load_environment(name, parameters_dir)
        for name in ENVIRONMENTS
        if name in names or (Path(parameters_dir) / f"{name}.yaml").exists()
    }
    check_no_overlapping_cidrs(every, Path(parameters_dir))
    check_one_oidc_provider_per_account(every, Path(parameters_dir))
    return {name: every[name] for name in names}


def check_no_overlapping_cidrs(configs: dict[str, EnvironmentConfig], parameters_dir: Path) -> None:
    problems = []
    for (name_a, a), (name_b, b) in itertools.combinations(configs.items(), 2):
        if _network(a.network.cidr).overlaps(_network(b.network.cidr)):
            problems.append(
                f"{display_path(parameters_dir / (name_a + '.yaml'))} network.cidr {a.network.cidr} overlaps "
                f"{display_path(parameters_dir / (name_b + '.yaml'))} network.cidr {b.network.cidr}: "
                "environments must not overlap so they can be peered"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def check_one_oidc_provider_per_account(configs: dict[str, EnvironmentConfig], parameters_dir: Path) -> None:
    """IAM holds one OIDC provider per issuer and account: a second bootstrap stack creating it
    in the same account would fail, so the second environment must name the first one's."""
    creators: dict[str, str] = {}
    problems = []
    for name, config in configs.items():
        if config.delivery is None or config.delivery.oidc_provider_arn:
            continue
        if config.account_id in creators:
            first = creators[config.account_id]
            problems.append(
                f"{display_path(parameters_dir / (name + '.yaml'))} delivery.oidc_provider_arn: {first} and {name} "
                f"share account {config.account_id}, which holds one GitHub OIDC provider: give {name} the "
                f"provider {first}'s bootstrap stack creates (arn:aws:iam::{config.account_id}:oidc-provider/"
                f"{GITHUB_OIDC_HOST})"
            )
        creators.setdefault(config.account_id, name)
    if problems:
        raise ConfigError("\n".join(problems))
