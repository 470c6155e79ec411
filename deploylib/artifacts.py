"""Uploading function zips and templates to the artifact bucket under content-hash keys.

Keys carry the sha256 of the content, and every upload asks S3 for a SHA-256 checksum (verified
on arrival and stored with the object). A key is skipped only when S3's stored checksum is the
build's: the pull-request plan role may write to the bucket, so a key's name alone proves
nothing, and anything else under it (other bytes, or no checksum) is uploaded again (the bucket
is versioned: the replaced version stays). An old plan's templates stay readable.

How a template reaches CloudFormation: by TemplateURL (1 MB limit) from the artifact bucket,
except for two kinds of stack that go by TemplateBody (51,200 bytes):
- the bootstrap stack, which creates the bucket;
- a stack in another region than the bucket (prod's DR stack): CloudFormation reads the
  TemplateURL from the stack's region, and reading another region's bucket is not guaranteed
  (opt-in regions, bucket policies limited to a region's endpoints). A template too large for
  TemplateBody is refused before any AWS call, with the way out.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from platform_contracts import TEMPLATE_BODY_LIMIT_BYTES  # the build checks the same limit

from .aws import Context, RetryingClient, error_code
from .errors import DeployError
from .manifest import Manifest, ManifestError, StackSpec
from .stacks import describe_stack, list_stack_resources, stack_outputs


class ArtifactBucketMissing(DeployError):
    pass


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)


def artifact_bucket_name(ctx: Context, manifest: Manifest, warn: Callable[[str], None] | None = None) -> str | None:
    """The bucket name from the bootstrap stack's output, None until that stack exists.

    Fallback when the stack exists but the output is missing (moto registers no outputs for
    stacks created through a change set): the stack's only S3 bucket, with a warning.
    """
    bootstrap = manifest.bootstrap_stack
    stack = describe_stack(ctx, bootstrap.region, bootstrap.name)
    name = stack_outputs(stack).get(manifest.artifact_bucket_output)
    if name or not stack or stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        return name or None
    buckets = [s.get("PhysicalResourceId") for s in list_stack_resources(ctx, bootstrap.region, bootstrap.name)
               if s.get("ResourceType") == "AWS::S3::Bucket" and s.get("PhysicalResourceId")]
    if len(buckets) == 1:
        if warn:
            warn(f"{bootstrap.name} has no output {manifest.artifact_bucket_output}; using its only bucket {buckets[0]}")
        return buckets[0]
    return None


def template_url(bucket: str, bucket_region: str, key: str) -> str:
    return f"https://{bucket}.s3.{bucket_region}.amazonaws.com/{key}"


def _read_verified(path: Path, expected_sha256: str, what: str) -> bytes:
    try:
        body = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{what}: cannot read {path}: {error}; rerun `make build`") from None
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected_sha256:
        raise ManifestError(f"{what}: {path.name} does not match its manifest sha256; rerun `make build`")
    return body


def s3_checksum(sha256: str) -> str:
    """S3's spelling of a SHA-256 checksum: base64 of the digest."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


def object_holds(s3: RetryingClient, bucket: str, key: str, sha256: str) -> bool:
    """True when `key` exists and S3's own checksum of it is `sha256`."""
    try:
        head = s3.call("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return bool(head.get("ChecksumSHA256") == s3_checksum(sha256))


def put_unless_present(s3: RetryingClient, bucket: str, key: str, body: bytes, sha256: str, content_type: str) -> bool:
    """Uploads `body` (whose SHA-256 is `sha256`) under `key` with S3 checking that checksum,
    unless the key already holds exactly it; True when it uploaded."""
    if object_holds(s3, bucket, key, sha256):
        return False
    # botocore computes the body's SHA-256 (the caller checked the body against `sha256`) and S3
    # verifies and stores it: the checksum object_holds reads back.
    s3.call("put_object", Bucket=bucket, Key=key, Body=body, ContentType=content_type, ChecksumAlgorithm="SHA256")
    return True


def delivered_by_body(stack: StackSpec, bucket_region: str) -> bool:
    """Kept in step with Manifest.uses_artifact_bucket: by body exactly when not by the bucket."""
    return stack.bootstrap or stack.region != bucket_region


def _why_by_body(stack: StackSpec, bucket_region: str) -> str:
    if stack.bootstrap:
        return "it creates the artifact bucket, so nothing can be read from that bucket before it exists"
    return (f"its region {stack.region} differs from the artifact bucket's region {bucket_region}, and "
            f"CloudFormation is not guaranteed to read a TemplateURL from another region's bucket")


def check_template_delivery(manifest: Manifest) -> None:
    """Refuses up front (before any AWS call) a template that must go by TemplateBody but is
    over CloudFormation's 51,200-byte TemplateBody limit."""
    bucket_region = manifest.bootstrap_stack.region
    for stack in manifest.stacks:
        if delivered_by_body(stack, bucket_region):
            _checked_body(stack, bucket_region)


def _checked_body(stack: StackSpec, bucket_region: str) -> str:
    body = stack.template_bytes()
    if len(body) > TEMPLATE_BODY_LIMIT_BYTES:
        raise ManifestError(
            f"{stack.name}: template {stack.template_path.name} is {len(body):,} bytes, over the "
            f"{TEMPLATE_BODY_LIMIT_BYTES:,}-byte TemplateBody limit; it must go by TemplateBody because "
            f"{_why_by_body(stack, bucket_region)}. Make the template smaller (move resources to "
            f"another layer) and rebuild; nothing was deployed"
        )
    return body.decode()


def upload_all(ctx: Context, manifest: Manifest, bucket: str) -> UploadReport:
    """Uploads every artifact and every template that goes by TemplateURL, if not there yet."""
    bucket_region = manifest.bootstrap_stack.region
    s3 = ctx.s3(bucket_region)
    report = UploadReport()
    items: list[tuple[str, Path, str, str, str]] = [
        (a.key, a.path, a.sha256, f"artifact {a.name}", "application/zip") for a in manifest.artifacts
    ]
    items += [
        (s.template_key, s.template_path, s.sha256, f"template of {s.name}", "application/json")
        for s in manifest.stacks
        if not delivered_by_body(s, bucket_region)
    ]
    for key, path, sha256, what, content_type in items:
        body = _read_verified(path, sha256, what)
        uploaded = put_unless_present(s3, bucket, key, body, sha256, content_type)
        (report.uploaded if uploaded else report.already_present).append(key)
    return report


def template_source(stack: StackSpec, bucket: str | None, bucket_region: str) -> dict[str, str]:

    """TemplateBody for the bootstrap stack and for stacks outside the bucket's region,
    TemplateURL for everything else (1 MB limit instead of 51,200 bytes)."""
    if delivered_by_body(stack, bucket_region):
        return {"TemplateBody": _checked_body(stack, bucket_region)}
    if not bucket:
        raise ArtifactBucketMissing(f"{stack.name}: the artifact bucket does not exist yet")
    return {"TemplateURL": template_url(bucket, bucket_region, stack.template_key)}
