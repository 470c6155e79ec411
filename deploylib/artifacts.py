"""Uploading function zips and templates to the artifact bucket under content-hash keys.

Keys carry the sha256 of the content, so a key that exists already holds exactly these bytes:
it is never uploaded again (HeadObject first), and an old plan's templates stay readable.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from .aws import Context, error_code
from .manifest import Manifest, ManifestError, StackSpec
from .stacks import describe_stack, stack_outputs


class ArtifactBucketMissing(Exception):
    pass


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)


def artifact_bucket_name(ctx: Context, manifest: Manifest) -> str | None:
    """The bucket name from the bootstrap stack's output, None until that stack exists."""
    bootstrap = manifest.bootstrap_stack
    outputs = stack_outputs(describe_stack(ctx, bootstrap.region, bootstrap.name))
    return outputs.get(manifest.artifact_bucket_output) or None


def template_url(bucket: str, bucket_region: str, key: str) -> str:
    return f"https://{bucket}.s3.{bucket_region}.amazonaws.com/{key}"


def _read_verified(path: Path, expected_sha256: str, what: str) -> bytes:
    try:
        body = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{what}: cannot read {path}: {error}; rerun `make build`")
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected_sha256:
        raise ManifestError(f"{what}: {path.name} does not match its manifest sha256; rerun `make build`")
    return body


def _object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.call("head_object", Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error_code(error) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise


def upload_all(ctx: Context, manifest: Manifest, bucket: str) -> UploadReport:
    """Uploads every artifact and every non-bootstrap template that is not there yet."""
    s3 = ctx.s3(manifest.bootstrap_stack.region)
    report = UploadReport()
    items: list[tuple[str, Path, str, str, str]] = [
        (a.key, a.path, a.sha256, f"artifact {a.name}", "application/zip") for a in manifest.artifacts
    ]
    items += [
        (s.template_key, s.template_path, s.sha256, f"template of {s.name}", "application/json")
        for s in manifest.stacks
        if not s.bootstrap
    ]
    for key, path, sha256, what, content_type in items:
        body = _read_verified(path, sha256, what)
        if _object_exists(s3, bucket, key):
            report.already_present.append(key)
            continue
        s3.call("put_object", Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        report.uploaded.append(key)
    return report


def template_source(stack: StackSpec, bucket: str | None, bucket_region: str) -> dict:
    """TemplateBody for the bootstrap stack (the bucket does not exist before it),
    TemplateURL for everything else (1 MB limit instead of 51,200 bytes)."""
    if stack.bootstrap:
        return {"TemplateBody": stack.template_bytes().decode()}
    if not bucket:
        raise ArtifactBucketMissing(f"{stack.name}: the artifact bucket does not exist yet")
    return {"TemplateURL": template_url(bucket, bucket_region, stack.template_key)}
