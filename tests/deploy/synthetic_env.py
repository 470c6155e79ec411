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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402
from fake_cfn import FakeAws, FakeProtectionApi, s3_reader_from  # noqa: E402

import deploy  # noqa: E402
from deploylib.aws import Backoff, Clock, Context  # noqa: E402
from deploylib.output import Printer  # noqa: E402

ACCOUNT = "123456789012"
# The name property of the types the synthetic tests give fixed names (as the build's manifest does).
NAME_PROPERTY = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName"}
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
    conditions: dict[str, Any] = field(default_factory=dict)
    lifecycle_parameter: str | None = None


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

    @property
    def data_policy(self) -> str:
        """As the build gives stateful resources: dev deletes, the others keep them."""
        return "Delete" if self.environment == "dev" else "RetainExceptOnCreate"

    def stack_name(self, layer: str) -> str:
        return f"payments-{self.environment}-{layer}"

    def export_name(self, layer: str, key: str = "TopicArn") -> str:
        return f"{self.stack_name(layer)}-{key}"

    def add(self, layer: Layer) -> Layer:
        self.layers[layer.layer] = layer
        return layer

    def artifacts_template(self) -> dict:
        return {
            "Resources": {"ArtifactBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": self.data_policy,
                                             "UpdateReplacePolicy": "Delete" if self.environment == "dev" else "Retain",
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
        if layer.conditions:
            template["Conditions"] = layer.conditions
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
            "account_id": ACCOUNT,
            "preflight": self.preflight(stacks),
        }
        path = env_dir / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return path

    def preflight(self, stacks: list[dict]) -> dict:
        """The account checks of a synthetic environment: identity and stack states only (no
        functions, certificate, image or network of its own)."""
        return {
            "environment": self.environment, "account_id": ACCOUNT, "region": self.region,
            "parameters_file": f"parameters/{self.environment}.yaml", "lambda_reserved_concurrency": {},
            "certificate": None, "container_image": None, "service_linked_roles": [],
            "api_gateway_logging_role": None, "network": None, "dr_region": None,
            "stacks": [{"name": stack["name"], "region": stack["region"]} for stack in stacks],
        }

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
        names = {logical_id: resource["Properties"].get(NAME_PROPERTY.get(resource["Type"], ""))
                 for logical_id, resource in template["Resources"].items()}
        return {
            "name": self.stack_name(name), "layer": name, "region": layer.region or self.region,
            "template": f"{name}.json", "template_key": f"templates/{name}/{digest}.json",
            "sha256": digest, "size_bytes": len(body), "bootstrap": bootstrap,
            "parameters": layer.parameters, "no_echo_parameters": layer.no_echo,
            "exports": exports, "imports": sorted(imports), "depends_on": sorted(layer.depends_on),
            "capabilities": layer.capabilities,
            "stateful_resources": [{"logical_id": k, "type": v, "physical_name": names.get(k)}
                                   for k, v in sorted(stateful.items())],
            "lifecycle_parameter": layer.lifecycle_parameter,
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

    def delete_bucket(region: str, resource_type: str, physical_id: str) -> str | None:
        """S3 refuses to delete a bucket that still holds an object version or delete marker."""
        if resource_type != "AWS::S3::Bucket":
            return None
        s3 = boto3.client("s3", region_name=region)
        listing = s3.list_object_versions(Bucket=physical_id, MaxKeys=1)
        if listing.get("Versions") or listing.get("DeleteMarkers"):
            return "The bucket you tried to delete is not empty. You must delete all versions in the bucket."
        s3.delete_bucket(Bucket=physical_id)
        return None

    world.on_resource_created = create_bucket
    world.on_resource_deleting = delete_bucket
    return world


def make_context(world: FakeAws, sleep: Callable[[float], None] | None = None,
                 monotonic: Callable[[], float] | None = None, poll_seconds: float = 0.0005) -> Context:
    clients: dict[tuple[str, str], Any] = {}

    def factory(service: str, region: str) -> Any:
        if service == "cloudformation":
            return world.cfn(region)
        if (service, region) not in clients:
            client = boto3.client(service, region_name=region)
            if service in ("rds", "dynamodb", "elbv2"):
                client = FakeProtectionApi(world, client)
            clients[(service, region)] = client
        return clients[(service, region)]

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


def virtual_context(world: FakeAws, poll_seconds: float = 1.0) -> Context:
    """A context whose clock is virtual and shared with the fake: time moves only when the
    deploy tool waits, so latencies are exact and no test depends on the wall clock."""
    import threading

    now = [0.0]
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            now[0] += max(seconds, 0.001)

    world.clock = lambda: now[0]
    return make_context(world, sleep=sleep, monotonic=lambda: now[0], poll_seconds=poll_seconds)
