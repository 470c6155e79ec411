"""Environment configuration: `parameters/<env>.yaml`, loaded through one schema.

Every difference between dev, staging and prod lives in those files. A bad file stops the build
with the file, the key path and what is wrong (`ConfigError`), never a traceback. Checks that
span environments (overlapping VPC CIDRs) run when all of them are loaded together.
"""
from __future__ import annotations

import ipaddress
import itertools
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMETERS_DIR = Path(__file__).resolve().parent.parent / "parameters"
ENVIRONMENTS = ("dev", "staging", "prod")

EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
CONTAINER_IMAGE = re.compile(r"^[a-z0-9.-]+(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$")


class ConfigError(Exception):
    """A parameter file is wrong. str() is a readable, multi-line explanation."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeeringConfig(Section):
    """Optional VPC peering to another environment's VPC (off by default)."""

    enabled: bool = False
    peer_vpc_id: Optional[str] = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    peer_cidr: Optional[str] = None

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "PeeringConfig":
        if self.enabled and not (self.peer_vpc_id and self.peer_cidr):
            raise ValueError("peering.enabled needs peer_vpc_id and peer_cidr")
        if self.peer_cidr:
            _network(self.peer_cidr)
        return self


class NetworkConfig(Section):
    cidr: str
    availability_zones: list[str] = Field(min_length=3, max_length=3)
    nat: Literal["per_az", "single", "none"]
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
    def _peer_outside_vpc(self) -> "NetworkConfig":
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
    def _capacity_order(self) -> "AuroraConfig":
        if self.min_capacity_acu > self.max_capacity_acu:
            raise ValueError("min_capacity_acu must not exceed max_capacity_acu")
        return self


class DataConfig(Section):
    aurora: AuroraConfig


class StorageConfig(Section):
    """Retention of the storage layer's buckets. Audit logs are card-payment audit trail:
    PCI DSS asks for at least 12 months of history, hence the floor of 365 days."""

    audit_retention_days: int = Field(ge=365, le=3650)
    batch_report_retention_days: int = Field(ge=1, le=3650)


class EcsConfig(Section):
    container_image: str
    container_port: int = Field(ge=1024, le=65535)
    cpu: Literal[256, 512, 1024, 2048, 4096]
    memory_mb: int = Field(ge=512, le=30720)
    min_tasks: int = Field(ge=1, le=100)
    max_tasks: int = Field(ge=1, le=100)
    cpu_target_percent: int = Field(ge=10, le=90)
    memory_target_percent: int = Field(ge=10, le=90)

    @field_validator("container_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not CONTAINER_IMAGE.match(value):
            raise ValueError("must be a registry/repository image with a tag or sha256 digest")
        return value

    @model_validator(mode="after")
    def _task_bounds(self) -> "EcsConfig":
        if self.min_tasks > self.max_tasks:
            raise ValueError("min_tasks must not exceed max_tasks")
        return self

    @model_validator(mode="after")
    def _fargate_size(self) -> "EcsConfig":
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


class ComputeConfig(Section):
    lambda_reserved_concurrency: int = Field(ge=1, le=1000)
    certificate_arn: str
    ecs: EcsConfig

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str) -> str:
        if not CERTIFICATE_ARN.match(value):
            raise ValueError("must be an ACM certificate ARN")
        return value


class ApiConfig(Section):
    throttle_rate_per_s: int = Field(ge=1, le=10000)
    throttle_burst: int = Field(ge=1, le=5000)
    quota_per_day: int = Field(ge=1, le=100_000_000)
    waf_rate_limit_per_5min: int = Field(ge=100, le=2_000_000_000)
    # The stage is the URL's version segment (/v1/payments); API Gateway allows [A-Za-z0-9_].
    stage_name: str = Field(default="v1", pattern=r"^[A-Za-z0-9_]{1,64}$")


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
    region: Optional[str] = None

    @model_validator(mode="after")
    def _region_when_enabled(self) -> "DisasterRecoveryConfig":
        if self.enabled and not self.region:
            raise ValueError("dr.enabled needs a region")
        if self.region and not REGION.match(self.region):
            raise ValueError(f"{self.region!r} is not an AWS region name")
        return self


class EnvironmentConfig(Section):
    """One environment. `name` must match the file name."""

    name: Literal["dev", "staging", "prod"]
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
    monitoring: MonitoringConfig
    dr: DisasterRecoveryConfig = DisasterRecoveryConfig()

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> "EnvironmentConfig":
        for zone in self.network.availability_zones:
            if not zone.startswith(self.region) or len(zone) != len(self.region) + 1:
                raise ValueError(f"network.availability_zones: {zone!r} is not a zone of {self.region}")
        for field_name, days in (
            ("log_retention_days", self.log_retention_days),
            ("network.flow_log_retention_days", self.network.flow_log_retention_days),
        ):
            if days not in LOG_RETENTION_DAYS:
                raise ValueError(f"{field_name}: {days} is not a CloudWatch Logs retention period")
        if self.dr.enabled and self.dr.region == self.region:
            raise ValueError("dr.region must differ from region")
        if self.name == "dev" and self.stateful_deletion_policy != "Delete":
            raise ValueError("stateful_deletion_policy: dev deletes its data (Delete)")
        if self.name != "dev" and self.stateful_deletion_policy == "Delete":
            raise ValueError(f"stateful_deletion_policy: {self.name} must Retain or Snapshot its data")
        return self

    @property
    def retains_data(self) -> bool:
        return self.stateful_deletion_policy != "Delete"


LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a valid IPv4 CIDR ({error})") from None


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s)"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "missing":
            message = "missing key"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def load_environment(name: str, parameters_dir: Path = PARAMETERS_DIR) -> EnvironmentConfig:
    """Load and validate one environment's parameter file."""
    if name not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {name!r}: choose one of {', '.join(ENVIRONMENTS)}")
    path = parameters_dir / f"{name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    if raw.get("name", name) != name:
        raise ConfigError(f"{path}: name: {raw.get('name')!r} does not match the file name {name!r}")
    try:
        return EnvironmentConfig(**{"name": name, **raw})
    except ValidationError as error:
        raise ConfigError(_format_validation_error(path, error)) from None


def load_environments(
    names: tuple[str, ...] = ENVIRONMENTS, parameters_dir: Path = PARAMETERS_DIR
) -> dict[str, EnvironmentConfig]:
    """Load environments and check rules that span them. Overlap is always checked against
    every environment file present, even when building just one, so a dev change cannot
    silently collide with prod."""
    every = {name: load_environment(name, parameters_dir) for name in ENVIRONMENTS}
    check_no_overlapping_cidrs(every, parameters_dir)
    return {name: every[name] for name in names}


def check_no_overlapping_cidrs(configs: dict[str, EnvironmentConfig], parameters_dir: Path) -> None:
    for (name_a, a), (name_b, b) in itertools.combinations(sorted(configs.items()), 2):
        if _network(a.network.cidr).overlaps(_network(b.network.cidr)):
            raise ConfigError(
                f"{parameters_dir / (name_b + '.yaml')}: network.cidr: {b.network.cidr} overlaps "
                f"{name_a}'s {a.network.cidr} ({parameters_dir / (name_a + '.yaml')}); "
                "environments must not overlap so they can be peered"
            )
