"""artifacts layer: the bootstrap stack holding the bucket for templates and function zips.

Design decisions:
- deploy.py creates this stack first, by TemplateBody (the bucket it creates is where every
  other template goes), so the template must stay under CloudFormation's 51,200-byte body
  limit; a test guards that for every environment.
- It has its own KMS key: the security layer's keys deploy later, from this very bucket.
  Only the account's roles use the key (deploy uploads, CloudFormation and Lambda read with the
  caller's credentials), so its policy is the account statement alone, through S3.
- Objects are content-addressed (the key is the sha256), so old versions are never read again:
  noncurrent versions expire after 90 days, which keeps rollbacks possible for a quarter.
- No cross-region replication: every object can be rebuilt byte for byte from the repository.
"""
from __future__ import annotations

from troposphere import GetAtt, Ref, Template, s3

from .blocks import access_log_bucket, kms_key, secure_bucket, via_services_statement
from .common import export, new_template, skip_checkov
from .config import EnvironmentConfig

LAYER = "artifacts"
NONCURRENT_VERSION_DAYS = 90
# Purposes stay short: bucket names carry account and region and must fit in 63 characters.
BUCKET_PURPOSE = "artifacts"
ACCESS_LOG_PURPOSE = "artifact-logs"


def build(config: EnvironmentConfig) -> Template:
    template = new_template(config, LAYER, "artifact bucket for templates and function packages (bootstrap)")
    key = _artifact_key(template, config)
    logs = access_log_bucket(template, config, "ArtifactAccessLogBucket", ACCESS_LOG_PURPOSE)
    bucket = secure_bucket(
        template,
        config,
        "ArtifactBucket",
        BUCKET_PURPOSE,
        GetAtt(key, "Arn"),
        Ref(logs),
        LifecycleConfiguration=s3.LifecycleConfiguration(
            Rules=[
                s3.LifecycleRule(
                    Id="ExpireOldVersions",
                    Status="Enabled",
                    NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=NONCURRENT_VERSION_DAYS),
                    AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=1),
                )
            ]
        ),
    )
    skip_checkov(bucket, "CKV_AWS_144", "build artifacts are reproducible from the repository; no DR copy needed")
    export(template, config, LAYER, "ArtifactBucketName", Ref(bucket), "bucket for templates and function zips")
    export(template, config, LAYER, "ArtifactBucketArn", GetAtt(bucket, "Arn"), "ARN of the artifact bucket")
    export(template, config, LAYER, "ArtifactKeyArn", GetAtt(key, "Arn"), "KMS key encrypting the artifact bucket")
    return template


def _artifact_key(template: Template, config: EnvironmentConfig):
    return kms_key(
        template,
        config,
        "ArtifactKey",
        "artifacts",
        [
            via_services_statement("AllowAccountThroughS3", ("s3",)),
        ],
    )
