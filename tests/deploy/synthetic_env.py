"""Synthetic environments for deploy tests and the benchmark: manifest + templates on disk.

The real build is written elsewhere; these manifests follow docs/manifest.md (format 1) with
small templates: each layer has an SNS topic, exports its ARN, and imports the exports of the
stacks it depends on (through SSM parameters whose value is Fn::ImportValue).
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402

import deploy  # noqa: E402
from deploylib.aws import Backoff, Clock, Context  # noqa: E402
from deploylib.output import Printer  # noqa: E402
from fake_cfn import FakeAws, s3_reader_from  # noqa: E402

ACCOUNT = "123456789012"
MANAGED_BY = "payments-infra/build.py"


@dataclass
class Layer:
    layer: str
    depends_on: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    template_parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    stateful: dict[str, str] = field(default_factory=dict)
    no_echo: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    serves_traffic: bool = False
    rollback_alarms: list[dict] = field(default_factory=list)
    region: str | None = None
    timeout_minutes: int = 30


class SyntheticEnvironment:
    """Writes build/<env>/ for a graph of layers; mutate layers and write() again to change it."""

    def __init__(self, root: Path, environment: str = "staging", region: str = "eu-west-1"):
        self.root = root
        self.environment = environment
        self.region = region
        self.build_dir = root / "build"
        self.layers: dict[str, Layer] = {}
        self.termination_protection = environment != "dev"
        self.stack_policy = environment != "dev"
        self.tags = {"Application": "payments", "CostCenter": "cc-1", "Environment": environment,
                     "ManagedBy": MANAGED_BY, "Repository": "payments-infra"}
        self.artifacts: list[tuple[str, bytes]] = [("payment_api", b"zip-bytes-of-payment-api")]
        self.bucket_name = f"payments-{environment}-artifacts-{ACCOUNT}-{region}"

    def stack_name(self, layer: str) -> str:
        return f"payments-{self.environment}-{layer}"

    def export_name(self, layer: str, key: str = "TopicArn") -> str:
        return f"{self.stack_name(layer)}-{key}"

    def add(self, layer: Layer) -> Layer:
        self.layers[layer.layer] = layer
        return layer

    def artifacts_template(self) -> dict:
        return {
            "Resources": {"ArtifactBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain",
                                             "Properties": {"BucketName": self.bucket_name}}},
            "Outputs": {"ArtifactBucketName": {"Value": {"Ref": "ArtifactBucket"},
                                               "Export": {"Name": self.export_name("artifacts", "ArtifactBucketName")}}},
        }

    def layer_template(self, layer: Layer) -> dict:
        resources: dict[str, Any] = {
            "Topic": {"Type": "AWS::SNS::Topic",
                      "Properties": {"TopicName": f"{self.stack_name(layer.layer)}-topic"}},
        }
        for dep in layer.depends_on:
            dep_layer = dep.rsplit("-", 1)[-1]
            export = (self.export_name("artifacts", "ArtifactBucketName") if dep_layer == "artifacts"
                      else self.export_name(dep_layer))
            resources[f"From{dep_layer.capitalize()}"] = {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Type": "String", "Value": {"Fn::ImportValue": export}}}
        resources.update(layer.resources)
        outputs = {"TopicArn": {"Value": {"Ref": "Topic"}, "Export": {"Name": self.export_name(layer.layer)}}}
        outputs.update(layer.outputs)
        template: dict[str, Any] = {"Resources": resources, "Outputs": outputs}
        if layer.template_parameters:
            template["Parameters"] = layer.template_parameters
        return template

    def write(self) -> Path:
        env_dir = self.build_dir / self.environment
        (env_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        artifacts = []
        for name, body in self.artifacts:
            digest = hashlib.sha256(body).hexdigest()
            file = f"artifacts/{name}-{digest[:16]}.zip"
            (env_dir / file).write_bytes(body)
            artifacts.append({"name": name, "file": file, "key": f"functions/{name}/{digest}.zip",
                              "sha256": digest, "size_bytes": len(body)})
        stacks = [self._stack_entry(env_dir, "artifacts", self.artifacts_template(), Layer("artifacts"), True)]
        for layer in self.layers.values():
            stacks.append(self._stack_entry(env_dir, layer.layer, self.layer_template(layer), layer, False))
        manifest = {
            "format": 1, "application": "payments", "environment": self.environment, "region": self.region,
            "tags": self.tags, "termination_protection": self.termination_protection,
            "stack_policy": self.stack_policy,
            "artifact_bucket": {"stack": self.stack_name("artifacts"), "output": "ArtifactBucketName"},
            "artifacts": artifacts, "stacks": stacks,
        }
        path = env_dir / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return path

    def _stack_entry(self, env_dir: Path, name: str, template: dict, layer: Layer, bootstrap: bool) -> dict:
        body = json.dumps(template, indent=1, sort_keys=True).encode()
        digest = hashlib.sha256(body).hexdigest()
        (env_dir / f"{name}.json").write_bytes(body)
        imports = []
        for resource in template["Resources"].values():
            value = resource.get("Properties", {}).get("Value")
            if isinstance(value, dict) and "Fn::ImportValue" in value:
                imports.append(value["Fn::ImportValue"])
        exports = [o["Export"]["Name"] for o in template.get("Outputs", {}).values() if "Export" in o]
        stateful = dict(layer.stateful)
        if bootstrap:
            stateful["ArtifactBucket"] = "AWS::S3::Bucket"
        return {
            "name": self.stack_name(name), "layer": name, "region": layer.region or self.region,
            "template": f"{name}.json", "template_key": f"templates/{name}/{digest}.json",
            "sha256": digest, "size_bytes": len(body), "bootstrap": bootstrap,
            "parameters": layer.parameters, "no_echo_parameters": layer.no_echo,
            "exports": exports, "imports": sorted(imports), "depends_on": sorted(layer.depends_on),
            "capabilities": layer.capabilities,
            "stateful_resources": [{"logical_id": k, "type": v} for k, v in sorted(stateful.items())],
            "serves_traffic": layer.serves_traffic, "rollback_alarms": layer.rollback_alarms,
            "timeout_minutes": layer.timeout_minutes,
        }


def standard_layers(env: SyntheticEnvironment) -> None:
    """The platform's graph: network, security, data, storage, messaging, compute, workflow, api, monitoring."""
    art = env.stack_name("artifacts")
    name = env.stack_name
    graph = {
        "network": [art], "security": [art], "data": [name("network"), name("security")],
        "storage": [name("security")], "messaging": [name("security")],
        "compute": [name("data"), name("storage"), name("messaging"), name("network")],
        "workflow": [name("compute"), name("messaging")], "api": [name("compute")],
        "monitoring": [name("api"), name("workflow"), name("data")],
    }
    for layer, deps in graph.items():
        env.add(Layer(layer, depends_on=deps, serves_traffic=layer in ("compute", "api")))


def fake_world(s3_client: Any, clock: Callable[[], float] | None = None) -> FakeAws:
    """FakeAws whose S3 buckets (and templates by URL) live in moto."""
    world = FakeAws(s3_reader=s3_reader_from(s3_client), **({"clock": clock} if clock else {}))

    def create_bucket(region: str, resource_type: str, physical_id: str) -> None:
        """Like the platform's secure_bucket: default encryption SSE-KMS with its own key."""
        if resource_type == "AWS::S3::Bucket":
            s3 = boto3.client("s3", region_name=region)
            config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=physical_id, **config)
            key_arn = boto3.client("kms", region_name=region).create_key()["KeyMetadata"]["Arn"]
            s3.put_bucket_encryption(Bucket=physical_id, ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                "BucketKeyEnabled": True}]})

    world.on_resource_created = create_bucket
    return world


def make_context(world: FakeAws, sleep: Callable[[float], None] | None = None,
                 monotonic: Callable[[], float] | None = None, poll_seconds: float = 0.0005) -> Context:
    s3_clients: dict[str, Any] = {}

    def factory(service: str, region: str) -> Any:
        if service == "cloudformation":
            return world.cfn(region)
        if region not in s3_clients:
            s3_clients[region] = boto3.client(service, region_name=region)
        return s3_clients[region]

    import time
    clock = Clock(monotonic=monotonic or time.monotonic, sleep=sleep or time.sleep)
    return Context(client_factory=factory, clock=clock, backoff=Backoff(base_seconds=0.0001, cap_seconds=0.001),
                   poll_seconds=poll_seconds)


def run_deploy(env: SyntheticEnvironment, world: FakeAws, *args: str, context: Context | None = None,
               **options: Any) -> tuple[int, str]:
    """Runs deploy.main like the Makefile would; returns (exit code, printed text)."""
    stream = io.StringIO()
    argv = [args[0], "--env", env.environment, "--build-dir", str(env.build_dir), *args[1:]]
    code = deploy.main(argv, context=context or make_context(world), printer=Printer(stream),
                       options_override=options or None)
    return code, stream.getvalue()
