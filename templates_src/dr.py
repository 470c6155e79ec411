"""dr layer: the replica buckets of prod's audit logs and documents, in `dr.region`.

Design decisions:
- Deployed only where `dr.enabled` (prod) and in `dr.region`, as stack payments-<env>-dr. It
  imports nothing: Fn::ImportValue cannot cross regions, and the security layer's keys live in
  the primary region. The stack therefore has its own KMS key.
- The storage layer's replication rules address these buckets and the key alias by name. Both
  layers derive those names from blocks.dr_bucket_name / blocks.dr_key_alias_name, so they
  cannot drift apart.
- Replicas are secure buckets like their sources (KMS, versioning, public access blocked,
  TLS-only, access logs to a DR access-log bucket) with lifecycle rules mirroring the sources'
  retention: a replica never outlives, nor dies before, what it protects.
- The exports are for people (and the console); nothing imports them.
"""
from __future__ import annotations

from troposphere import Equals, GetAtt, Ref, Sub, Template, s3

from .blocks import (
    DR_KEY_PURPOSE,
    access_log_bucket,
    archive_then_expire_lifecycle,
    audit_lock,
    dr_bucket_name,
    kms_key,
    secure_bucket,
    tiered_documents_lifecycle,
)
from .common import export, new_template, skip_checkov
from .config import EnvironmentConfig

LAYER = "dr"


class DrNotEnabled(ValueError):
    """The DR stack was asked for in an environment without DR."""


def build(config: EnvironmentConfig) -> Template:
    if not config.dr.enabled:
        raise DrNotEnabled(f"{config.name}: dr.enabled is false, there is no DR stack to build")
    template = new_template(config, LAYER, f"replicas of audit logs and documents in {config.dr.region}")
    _deploy_only_in_dr_region(template, config)
    key = kms_key(template, config, "ReplicaKey", DR_KEY_PURPOSE, statements=[])
    key_arn = GetAtt(key, "Arn")
    log_bucket = access_log_bucket(template, config, "AccessLogBucket", "dr-access-logs")

    retention = config.storage.audit_retention_days
    audit_lifecycle = archive_then_expire_lifecycle("ArchiveThenExpireAuditReplicas", retention)
    audit = _replica_bucket(template, config, "ReplicaAuditBucket", "audit", key_arn, log_bucket, audit_lifecycle,
                            **audit_lock(config))
    documents_lifecycle = tiered_documents_lifecycle("TierDocumentReplicas")
    documents = _replica_bucket(
        template, config, "ReplicaDocumentsBucket", "documents", key_arn, log_bucket, documents_lifecycle
    )

    export(template, config, LAYER, "ReplicaAuditBucketArn", GetAtt(audit, "Arn"), "replica of the audit bucket")
    export(template, config, LAYER, "ReplicaDocumentsBucketArn", GetAtt(documents, "Arn"), "replica of documents")
    export(template, config, LAYER, "ReplicaKeyArn", key_arn, "KMS key of the replicas")
    return template


def _replica_bucket(
    template: Template,
    config: EnvironmentConfig,
    logical_id: str,
    purpose: str,
    key_arn,
    log_bucket: s3.Bucket,
    lifecycle: s3.LifecycleConfiguration,
    **properties,
) -> s3.Bucket:
    bucket = secure_bucket(
        template, config, logical_id, f"dr-{purpose}", key_arn, Ref(log_bucket), LifecycleConfiguration=lifecycle,
        **properties,
    )
    # The name storage.py replicates to: one function names it for both stacks. The region is
    # ${AWS::Region} like every bucket name; the template's rule pins it to dr.region.
    bucket.BucketName = Sub(dr_bucket_name(config, purpose, region="${AWS::Region}"))
    skip_checkov(bucket, "CKV_AWS_144", "this bucket is the cross-region replica; replicating it again adds nothing")
    return bucket


def _deploy_only_in_dr_region(template: Template, config: EnvironmentConfig) -> None:
    """The primary region's replication rules spell out dr.region: a DR stack anywhere else would
    create buckets nothing replicates to. CloudFormation refuses it before creating anything."""
    template.add_rule(
        "DeployedInDrRegion",
        {
            "Assertions": [
                {
                    "Assert": Equals(Ref("AWS::Region"), config.dr.region),
                    "AssertDescription": f"the {LAYER} stack of {config.name} belongs in {config.dr.region}",
                }
            ]
        },
    )
