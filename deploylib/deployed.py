"""The resource manifest: build/<env>/deployed.json, what is deployed where.

Written after every `deploy` / `execute` run, also one that failed part-way: it describes what
CloudFormation has now, stack by stack, and marks what this run did to each (deployed,
unchanged, no-op, failed, blocked, not started, needs a new plan).

Design decisions:
- Read back from CloudFormation (DescribeStacks, ListStackResources, GetTemplate), never
  assembled from what we meant to deploy: after a failure the truth is what is there.
- No parameters at all, not even masked ones: the document is published to S3 and read by
  people and tools that have no business with parameter values. Outputs are kept (they hold
  no secrets by design); as a second line of defence every NoEcho parameter value of the
  manifest is masked wherever it appears (an output that Refs a NoEcho parameter shows it in
  plain text in real CloudFormation).
- No generation time: the same deployed state and run result give the same bytes, so the
  content-addressed copy `manifests/<env>/<sha256>.json` is a real history by content.
- Template hash: the build's sha256 when the deployed template (GetTemplate, Original, parsed)
  is this build's template; otherwise the bytes as built are not known, and the hash is of the
  deployed template's canonical JSON (sorted keys, compact), with template_matches_build false.
- S3 objects get no SSE headers: a PutObject without them is encrypted with the bucket's default
  (SSE-KMS with the artifact key, bucket key on). `ServerSideEncryption="aws:kms"` without a key
  id would select the AWS-managed aws/s3 key instead of the bucket's.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_contracts import NO_ECHO_MASK

from .artifacts import artifact_bucket_name, put_unless_present
from .aws import Context
from .changesets import deployed_template
from .manifest import Manifest, StackSpec
from .output import Printer
from .plans import Label
from .scheduler import RunResult
from .shapes import JsonObject, ReviewRow, Template
from .stacks import describe_stack, list_stack_resources

DEPLOYED_FORMAT = 1
S3_PREFIX = "manifests"
NOT_DEPLOYED = "NOT_DEPLOYED"
FAILED_RESULTS = frozenset({Label.FAILED, Label.BLOCKED})
# "needs a new plan": execute does not create change sets nobody reviewed, so the stack was not touched
NOT_STARTED_RESULTS = frozenset({Label.NOT_STARTED, Label.NEEDS_PLAN})


@dataclass
class Publication:
    local_path: Path
    sha256: str
    s3_urls: list[str]


def deployed_path(manifest: Manifest) -> Path:
    return manifest.build_dir / "deployed.json"


def s3_keys(environment: str, sha256: str) -> tuple[str, str]:
    """(the current document's key, its content-addressed copy's key)."""
    return f"{S3_PREFIX}/{environment}/deployed.json", f"{S3_PREFIX}/{environment}/{sha256}.json"


def _timestamp(value: Any) -> Any:
    """ISO 8601 for boto3's datetimes; anything else as CloudFormation (or the fake) gave it."""
    return value.isoformat() if isinstance(value, (datetime.datetime, datetime.date)) else value


def _canonical_sha256(template: Template) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _run_results(result: RunResult) -> dict[str, tuple[Label, str]]:
    results = {name: (outcome.label, outcome.detail) for name, outcome in result.outcomes.items()}
    results.update({name: (Label.NOT_STARTED, "") for name in result.not_started})
    return results


def _stack_entry(ctx: Context, spec: StackSpec, run_result: str, detail: str) -> JsonObject:
    entry: JsonObject = {"name": spec.name, "region": spec.region, "run_result": run_result}
    if detail:
        entry["run_detail"] = detail
    deployed = describe_stack(ctx, spec.region, spec.name)
    if not deployed:
        entry.update(status=NOT_DEPLOYED, stack_id=None, creation_time=None, last_updated_time=None,
                     template_sha256=None, template_matches_build=None, outputs={}, resources=[])
        return entry
    template = deployed_template(ctx, spec.region, deployed["StackId"])
    matches = template == spec.template()
    entry.update(
        status=deployed["StackStatus"],
        stack_id=deployed["StackId"],
        creation_time=_timestamp(deployed.get("CreationTime")),
        last_updated_time=_timestamp(deployed.get("LastUpdatedTime")),
        template_sha256=spec.sha256 if matches else _canonical_sha256(template),
        template_matches_build=matches,
        outputs={o["OutputKey"]: {"value": o.get("OutputValue", ""), "export_name": o.get("ExportName")}
                 for o in deployed.get("Outputs", [])},
        resources=_resources(ctx, spec.region, deployed["StackId"]),
    )
    return entry


def _resources(ctx: Context, region: str, stack_id: str) -> list[ReviewRow]:
    summaries = list_stack_resources(ctx, region, stack_id)
    rows = [{"logical_id": s["LogicalResourceId"], "type": s.get("ResourceType"),
             "physical_id": s.get("PhysicalResourceId"), "status": s.get("ResourceStatus")} for s in summaries]
    return sorted(rows, key=lambda row: row["logical_id"])


def no_echo_values(manifest: Manifest) -> set[str]:
    return {value for spec in manifest.stacks for name, value in spec.parameters.items()
            if name in spec.no_echo_parameters and value}


def _masked(node: Any, secrets: set[str], found: list[str], where: str) -> Any:
    if isinstance(node, dict):
        return {key: _masked(value, secrets, found, f"{where}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [_masked(item, secrets, found, f"{where}[{index}]") for index, item in enumerate(node)]
    if isinstance(node, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in node:
                node = node.replace(secret, NO_ECHO_MASK)
                found.append(where)
    return node


def build_document(ctx: Context, manifest: Manifest, result: RunResult) -> tuple[JsonObject, list[str]]:
    """The document, and where a NoEcho value had to be masked (for a warning)."""
    run_results = _run_results(result)
    secrets = no_echo_values(manifest)
    masked_at: list[str] = []
    stacks = [_masked(_stack_entry(ctx, spec, *run_results.get(spec.name, ("not in this run", ""))),
                      secrets, masked_at, spec.name)
              for spec in manifest.stacks]
    document = {
        "format": DEPLOYED_FORMAT,
        "environment": manifest.environment,
        "region": manifest.region,
        "regions": sorted({spec.region for spec in manifest.stacks}),
        "build_manifest_sha256": hashlib.sha256(manifest.path.read_bytes()).hexdigest(),
        "complete": result.ok,
        "failed_stacks": sorted(name for name, (label, _) in run_results.items() if label in FAILED_RESULTS),
        "not_started_stacks": sorted(name for name, (label, _) in run_results.items() if label in NOT_STARTED_RESULTS),
        "interrupted": result.interrupted,
        "stacks": stacks,
    }
    return document, masked_at


def render(document: JsonObject) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def write_and_publish(ctx: Context, manifest: Manifest, printer: Printer, result: RunResult) -> Publication:
    """Writes build/<env>/deployed.json, then publishes it to the artifact bucket if that exists.

    AWS errors propagate: the caller reports them and fails the command, since a deploy whose
    resource manifest was not published is not finished.
    """
    document, masked_at = build_document(ctx, manifest, result)
    for where in masked_at:
        printer.line(f"WARNING {where} contained a NoEcho parameter value; masked as {NO_ECHO_MASK} in deployed.json")
    body = render(document)
    sha256 = hashlib.sha256(body).hexdigest()
    path = deployed_path(manifest)
    path.write_bytes(body)
    publication = Publication(path, sha256, [])
    printer.line(f"\nresource manifest written to {path} (sha256 {sha256})")
    bucket = artifact_bucket_name(ctx, manifest)
    if not bucket:
        printer.line(f"artifact bucket does not exist ({manifest.artifact_bucket_stack} is not deployed): "
                     f"resource manifest NOT published to S3, only written locally")
        return publication
    s3 = ctx.s3(manifest.bootstrap_stack.region)
    current_key, content_key = s3_keys(manifest.environment, sha256)
    s3.call("put_object", Bucket=bucket, Key=current_key, Body=body, ContentType="application/json")
    put_unless_present(s3, bucket, content_key, body, sha256, "application/json")  # same bytes: written once
    publication.s3_urls = [f"s3://{bucket}/{current_key}", f"s3://{bucket}/{content_key}"]
    printer.line(f"published to {publication.s3_urls[0]} and {publication.s3_urls[1]}")
    return publication
