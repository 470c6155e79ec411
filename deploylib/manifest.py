"""Reading build/<env>/manifest.json (format 1, see docs/manifest.md).

The manifest is deploy's only input. Everything is validated up front so a bad manifest
fails before any AWS call, with a message naming the field.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_contracts import DependencyCycle, dependency_order

from .errors import REFUSED_EXIT, DeployError
from .shapes import JsonObject, Template

SUPPORTED_FORMAT = 1


class ManifestError(DeployError):
    """The manifest is missing or malformed; the message says what to do."""

    exit_code = REFUSED_EXIT


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path
    key: str
    sha256: str


@dataclass(frozen=True)
class RollbackAlarm:
    stack: str
    output: str
    type: str = "AWS::CloudWatch::Alarm"  # or AWS::CloudWatch::CompositeAlarm


@dataclass(frozen=True)
class StackSpec:
    name: str
    layer: str
    region: str
    template_path: Path
    template_key: str
    sha256: str
    bootstrap: bool
    parameters: dict[str, str]
    no_echo_parameters: frozenset[str]
    exports: tuple[str, ...]
    imports: tuple[str, ...]
    depends_on: tuple[str, ...]
    capabilities: tuple[str, ...]
    stateful_resources: dict[str, str]  # logical id -> resource type
    serves_traffic: bool
    rollback_alarms: tuple[RollbackAlarm, ...]
    timeout_minutes: int
    # stateful resources with a fixed physical name: logical id -> (resource type, name)
    named_resources: dict[str, tuple[str, str]] = field(default_factory=dict)
    lifecycle_parameter: str | None = None  # the deploy-managed StackLifecycle parameter, if any
    # Deployed by an administrator only: never with the CloudFormation service role (it holds it).
    administered: bool = False
    resource_types: tuple[str, ...] = ()  # every type the template holds (change sets' ResourceTypes)

    def template_bytes(self) -> bytes:
        """The template as built, refused if it does not match the manifest's hash."""
        try:
            body = self.template_path.read_bytes()
        except OSError as error:
            raise ManifestError(f"{self.name}: cannot read template {self.template_path}: {error}") from None
        actual = hashlib.sha256(body).hexdigest()
        if actual != self.sha256:
            raise ManifestError(
                f"{self.name}: {self.template_path.name} has sha256 {actual[:12]}..., the manifest "
                f"says {self.sha256[:12]}...; rebuild with `make build`"
            )
        return body

    def template(self) -> Template:
        template: Template = json.loads(self.template_bytes())
        return template


@dataclass(frozen=True)
class Manifest:
    path: Path
    environment: str
    region: str
    account_id: str | None
    tags: dict[str, str]
    termination_protection: bool
    stack_policy: bool
    artifact_bucket_stack: str
    artifact_bucket_output: str
    artifacts: tuple[Artifact, ...]
    stacks: tuple[StackSpec, ...]
    by_name: dict[str, StackSpec] = field(repr=False)
    preflight: JsonObject = field(default_factory=dict, repr=False)  # parsed by deploylib.preflight
    service_role_arn: str | None = None  # the role CloudFormation acts as (RoleARN)
    service_role_stack: str | None = None  # the stack that creates it

    def role_arn(self, stack: StackSpec) -> dict[str, str]:
        """RoleARN for an operation on `stack`: CloudFormation acts as the service role for every
        stack but the administered ones (which hold that role)."""
        if stack.administered or not self.service_role_arn:
            return {}
        return {"RoleARN": self.service_role_arn}

    @property
    def build_dir(self) -> Path:
        return self.path.parent

    @property
    def bootstrap_stack(self) -> StackSpec:
        return self.by_name[self.artifact_bucket_stack]

    def dependencies(self) -> dict[str, set[str]]:
        """The scheduling graph: depends_on, plus every stack in the artifact bucket's region
        waits for the bootstrap stack because its template and zips live in that bucket.
        A stack in another region goes by TemplateBody and cannot use the bucket (Lambda code
        and TemplateURL must be in-region), so it does not wait for it unless depends_on says so."""
        graph = {stack.name: set(stack.depends_on) for stack in self.stacks}
        for stack in self.stacks:
            if self.uses_artifact_bucket(stack):
                graph[stack.name].add(self.artifact_bucket_stack)
            # A stack deployed as the service role waits for the stack creating that role.
            if self.role_arn(stack) and self.service_role_stack in self.by_name:
                graph[stack.name].add(self.service_role_stack)
        return graph

    def uses_artifact_bucket(self, stack: StackSpec) -> bool:
        return not stack.bootstrap and stack.region == self.bootstrap_stack.region

    def find(self, name_or_layer: str) -> StackSpec:
        """A stack by its name (payments-dev-data) or its layer (data)."""
        for stack in self.stacks:
            if name_or_layer in (stack.name, stack.layer):
                return stack
        raise ManifestError(
            f"{self.environment} has no stack {name_or_layer!r}: one of {', '.join(s.layer for s in self.stacks)}"
        )


def manifest_path(build_dir: Path, environment: str) -> Path:
    return Path(build_dir) / environment / "manifest.json"


def load_manifest(build_dir: Path, environment: str) -> Manifest:
    path = manifest_path(build_dir, environment)
    if not path.is_file():
        raise ManifestError(
            f"no manifest at {path}: run `make build ENV={environment}` first"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path} is not valid JSON ({error}); rerun `make build ENV={environment}`") from None
    return parse_manifest(raw, path, environment)


def _require(mapping: JsonObject, key: str, where: str) -> Any:
    if key not in mapping:
        raise ManifestError(f"{where}: missing field '{key}'")
    return mapping[key]


def parse_manifest(raw: JsonObject, path: Path, environment: str) -> Manifest:
    where = str(path)
    if raw.get("format") != SUPPORTED_FORMAT:
        raise ManifestError(f"{where}: format {raw.get('format')!r} is not supported (expected 1)")
    if _require(raw, "environment", where) != environment:
        raise ManifestError(
            f"{where}: written for environment {raw['environment']!r}, not {environment!r}"
        )
    base = path.parent
    bucket = _require(raw, "artifact_bucket", where)
    artifacts = tuple(
        Artifact(
            name=_require(item, "name", f"{where} artifacts"),
            path=base / _require(item, "file", f"{where} artifacts"),
            key=_require(item, "key", f"{where} artifacts"),
            sha256=_require(item, "sha256", f"{where} artifacts"),
        )
        for item in raw.get("artifacts", [])
    )
    stacks = tuple(_parse_stack(item, base, raw, where) for item in _require(raw, "stacks", where))
    by_name = {stack.name: stack for stack in stacks}
    if len(by_name) != len(stacks):
        raise ManifestError(f"{where}: duplicate stack names")
    manifest = Manifest(
        path=path,
        environment=environment,
        region=_require(raw, "region", where),
        account_id=raw.get("account_id"),
        tags=dict(_require(raw, "tags", where)),
        termination_protection=bool(raw.get("termination_protection", False)),
        stack_policy=bool(raw.get("stack_policy", False)),
        artifact_bucket_stack=_require(bucket, "stack", f"{where} artifact_bucket"),
        artifact_bucket_output=_require(bucket, "output", f"{where} artifact_bucket"),
        artifacts=artifacts,
        stacks=stacks,
        by_name=by_name,
        preflight=raw.get("preflight") or {},
        service_role_arn=(raw.get("service_role") or {}).get("arn"),
        service_role_stack=(raw.get("service_role") or {}).get("stack"),
    )
    _check_graph(manifest, where)
    return manifest


def _parse_stack(item: JsonObject, base: Path, raw: JsonObject, where: str) -> StackSpec:

    name = _require(item, "name", f"{where} stacks")
    here = f"{where} stack {name}"
    alarms = tuple(
        RollbackAlarm(stack=_require(a, "stack", here), output=_require(a, "output", here),
                      type=a.get("type", "AWS::CloudWatch::Alarm"))
        for a in item.get("rollback_alarms", [])
    )
    if len(alarms) > 5:
        raise ManifestError(f"{here}: at most 5 rollback alarms, got {len(alarms)}")
    return StackSpec(
        name=name,
        layer=item.get("layer", name),
        region=item.get("region") or _require(raw, "region", where),
        template_path=base / _require(item, "template", here),
        template_key=_require(item, "template_key", here),
        sha256=_require(item, "sha256", here),
        bootstrap=bool(item.get("bootstrap", False)),
        parameters={k: str(v) for k, v in item.get("parameters", {}).items()},
        no_echo_parameters=frozenset(item.get("no_echo_parameters", [])),
        exports=tuple(item.get("exports", [])),
        imports=tuple(item.get("imports", [])),
        depends_on=tuple(item.get("depends_on", [])),
        capabilities=tuple(item.get("capabilities", [])),
        stateful_resources={
            _require(r, "logical_id", here): r.get("type", "") for r in item.get("stateful_resources", [])
        },
        serves_traffic=bool(item.get("serves_traffic", False)),
        rollback_alarms=alarms,
        timeout_minutes=int(item.get("timeout_minutes", 30)),
        named_resources={
            r["logical_id"]: (r.get("type", ""), r["physical_name"])
            for r in item.get("stateful_resources", []) if r.get("physical_name")
        },
        lifecycle_parameter=item.get("lifecycle_parameter"),
        administered=bool(item.get("administered", item.get("bootstrap", False))),
        resource_types=tuple(item.get("resource_types", [])),
    )


def _check_graph(manifest: Manifest, where: str) -> None:
    if manifest.artifact_bucket_stack not in manifest.by_name:
        raise ManifestError(f"{where}: artifact_bucket.stack {manifest.artifact_bucket_stack} is not a stack")
    if not manifest.bootstrap_stack.bootstrap:
        raise ManifestError(f"{where}: {manifest.artifact_bucket_stack} must be marked bootstrap")
    for stack in manifest.stacks:
        for dep in stack.depends_on:
            if dep not in manifest.by_name:
                raise ManifestError(f"{where}: {stack.name} depends on unknown stack {dep}")
        for alarm in stack.rollback_alarms:
            if alarm.stack not in manifest.by_name:
                raise ManifestError(f"{where}: {stack.name} rollback alarm {alarm.output} names unknown stack {alarm.stack}")
    try:
        dependency_order(manifest.dependencies())
    except DependencyCycle as cycle:
        raise ManifestError(f"{where}: dependency cycle {cycle}") from None
