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
- The payment API's container repository (ECR) lives here too: it must exist, and hold the
  image, before the compute stack's first deploy, and the compute stack reads the image from it by
  `${AWS::AccountId}`/`${AWS::Region}`, never from an account id written in a file. Tags are
  immutable (a tag names one image forever, so a deploy is reproducible), images are scanned on
  push and encrypted with this stack's key. The lifecycle policy expires untagged images after
  UNTAGGED_IMAGE_DAYS and keeps the newest KEPT_IMAGES: a running task's image is among the
  newest, so scale-out and task restarts never lose their image. Dev deletes its images with the
  stack (EmptyOnDelete); staging and prod keep the repository like every other stateful resource.
"""
from __future__ import annotations

import json

from troposphere import GetAtt, Ref, Template, ecr, s3

from .blocks import access_log_bucket, kms_key, secure_bucket, via_services_statement
from .common import export, keep_data, new_template, resource_name, skip_checkov, tags
from .config import EnvironmentConfig

LAYER = "artifacts"
NONCURRENT_VERSION_DAYS = 90
# Purposes stay short: bucket names carry account and region and must fit in 63 characters.
BUCKET_PURPOSE = "artifacts"
ACCESS_LOG_PURPOSE = "artifact-logs"
API_REPOSITORY_PURPOSE = "api"
UNTAGGED_IMAGE_DAYS = 14
KEPT_IMAGES = 200


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
    repository = _api_repository(template, config, key)
    export(template, config, LAYER, "ApiRepositoryName", Ref(repository), "ECR repository of the payment API image")
    export(template, config, LAYER, "ApiRepositoryArn", GetAtt(repository, "Arn"), "ARN of the payment API image repository")
    return template


def api_repository_name(config: EnvironmentConfig) -> str:
    return resource_name(config, API_REPOSITORY_PURPOSE)


def _lifecycle_policy() -> str:
    rules = [
        {
            "rulePriority": 1,
            "description": f"untagged images go after {UNTAGGED_IMAGE_DAYS} days",
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                          "countNumber": UNTAGGED_IMAGE_DAYS},
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"keep the newest {KEPT_IMAGES} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEPT_IMAGES},
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules}, sort_keys=True, separators=(",", ":"))


def _api_repository(template: Template, config: EnvironmentConfig, key) -> ecr.Repository:
    name = api_repository_name(config)
    return template.add_resource(
        keep_data(
            ecr.Repository(
                "ApiRepository",
                RepositoryName=name,
                ImageTagMutability="IMMUTABLE",
                ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
                EncryptionConfiguration=ecr.EncryptionConfiguration(EncryptionType="KMS", KmsKey=GetAtt(key, "Arn")),
                LifecyclePolicy=ecr.LifecyclePolicy(LifecyclePolicyText=_lifecycle_policy()),
                EmptyOnDelete=not config.retains_data,
                Tags=tags(config, name),
            ),
            config,
        )
    )


def _artifact_key(template: Template, config: EnvironmentConfig):
    return kms_key(
        template,
        config,
        "ArtifactKey",
        "artifacts",
        [
            # S3 for templates and zips; ECR for the images it encrypts with this key.
            via_services_statement("AllowAccountThroughS3AndEcr", ("ecr", "s3")),
        ],
    )
