"""storage layer: the S3 buckets of the platform.

Design decisions:
- Every bucket comes from blocks.secure_bucket (KMS with the security layer's data key,
  versioning, public access blocked, TLS-only policy, access logs) except the access-log bucket
  itself (blocks.access_log_bucket: S3 delivers server access logs to SSE-S3 buckets only).
- Batch uploads reach the batch function through EventBridge ("Object Created" events, enabled
  here; the compute layer owns the rule). A bucket notification to Lambda would make storage
  depend on compute while compute already imports storage: a cycle.
- Uploaded batch CSVs may carry card numbers, so `incoming/` objects and their old versions
  expire after one day. Reports and audit logs are kept as long as `storage.*_retention_days`
  says (audit: at least 12 months, PCI DSS; prod keeps 7 years).
- Audit log versions that are overwritten or deleted stay as long as current ones would
  (blocks.archive_then_expire_lifecycle); the DR replicas use the same lifecycle functions.
- The audit bucket, and its DR replica, are locked (S3 Object Lock, blocks.audit_lock): no
  version can be deleted or overwritten before its retention ends, whatever a principal's IAM
  permissions (COMPLIANCE in prod). Replicating locked versions needs the replica locked too,
  and the replication role reads each version's retention and legal hold.
- Prod (dr.enabled) replicates audit logs and documents to the DR stack in `dr.region`.
  Fn::ImportValue cannot cross regions, so the replica bucket and key alias ARNs are derived
  from blocks.dr_bucket_name / dr_key_alias_name (the DR layer names its resources with the same
  functions) and the reference is recorded in the template metadata for the build's stack graph.
  Delete markers are not replicated: deleting in the primary region never hides the DR copy.
- The replication role's policy is a separate resource so it can name the buckets by GetAtt while
  the buckets name the role (role -> buckets -> policy, no cycle).
- The access-log bucket also receives the compute layer's ALB access logs (ALB delivers only to
  SSE-S3 buckets, like S3 server access logging) under `alb/`. Elastic Load Balancing writes as
  the regional ELB account in regions opened before August 2022 and as the service principal
  `logdelivery.elasticloadbalancing.amazonaws.com` in newer ones. The principal is chosen in
  Python from config.region (ELB_ACCOUNT_BY_REGION) rather than with a Mapping and Fn::If:
  templates are rendered per environment and region (the storage stack deploys in
  config.region), so the template shows the one principal that applies and the tests can check
  it. The grant is s3:PutObject under `alb/AWSLogs/<this account>/` only.
"""
from __future__ import annotations

import awacs.kms as kms_actions
import awacs.s3 as s3_actions
from awacs.aws import Allow, Condition, ForAnyValueStringEquals, Policy, Principal, Statement, StringEquals
from troposphere import GetAtt, Ref, Sub, Template, iam, s3

from .blocks import (
    ALB_ACCESS_LOG_PREFIX,
    access_log_bucket,
    archive_then_expire_lifecycle,
    audit_lock,
    dr_bucket_name,
    dr_key_alias_name,
    secure_bucket,
    service_trust,
    tiered_documents_lifecycle,
)
from .common import (
    export,
    import_value,
    new_template,
    record_cross_region_reference,
    resource_name,
    skip_checkov,
    stack_name,
    tags,
)
from .config import EnvironmentConfig

LAYER = "storage"

REPLICATED_PURPOSES = ("audit", "documents")
BATCH_UPLOAD_PREFIX = "incoming/"
# The Distributed Map's ResultWriter output (per-batch counts; a child that failed outside its
# catch carries its input rows, card numbers included): batch_report deletes it after the report,
# this rule is the backstop with the uploads' lifetime.
BATCH_RESULTS_PREFIX = "results/"
BATCH_REPORT_PREFIX = "reports/"
BATCH_UPLOAD_LIFETIME_DAYS = 1  # uploaded CSVs may carry card numbers
REPORT_OLD_VERSION_DAYS = 30
ABORT_MULTIPART_AFTER_DAYS = 7
ACCESS_LOG_BUCKET = "AccessLogBucket"
ELB_LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
# AWS-owned accounts that deliver ELB access logs in regions opened before August 2022 (AWS docs,
# "Enable access logs for your Application Load Balancer"). Newer regions use the service principal.
ELB_ACCOUNT_BY_REGION = {
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-south-1": "718504428378",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-north-1": "897822967062",
    "eu-south-1": "635631232127",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
}


def build(config: EnvironmentConfig) -> Template:
    template = new_template(config, LAYER, "S3 buckets for audit logs, batch files and documents")
    data_key = import_value(config, "security", "DataKeyArn")
    logs_to = Ref(
        access_log_bucket(
            template, config, ACCESS_LOG_BUCKET, "access-logs", extra_statements=[alb_log_delivery_statement(config)]
        )
    )
    replication_role = _replication_role(template, config) if config.dr.enabled else None

    audit = secure_bucket(
        template,
        config,
        "AuditBucket",
        "audit",
        data_key,
        logs_to,
        LifecycleConfiguration=archive_then_expire_lifecycle(
            "ArchiveThenExpireAuditLogs", config.storage.audit_retention_days
        ),
        **audit_lock(config),
        **_replication(config, "audit", replication_role),
    )
    batch = secure_bucket(
        template,
        config,
        "BatchBucket",
        "batch",
        data_key,
        logs_to,
        LifecycleConfiguration=_batch_lifecycle(config),
        NotificationConfiguration=s3.NotificationConfiguration(
            EventBridgeConfiguration=s3.EventBridgeConfiguration(EventBridgeEnabled=True)
        ),
    )
    skip_checkov(batch, "CKV_AWS_144", "batch uploads expire within a day; reports can be regenerated")
    documents = secure_bucket(
        template,
        config,
        "DocumentsBucket",
        "documents",
        data_key,
        logs_to,
        LifecycleConfiguration=tiered_documents_lifecycle("TierDocuments"),
        **_replication(config, "documents", replication_role),
    )
    if replication_role is not None:
        _replication_policy(template, config, replication_role, [audit, documents])
        _record_dr_reference(template, config)
    else:
        for bucket in (audit, documents):
            skip_checkov(bucket, "CKV_AWS_144", f"{config.name} holds no data needing DR (dr.enabled is false)")
    _exports(template, config, {"Audit": audit, "Batch": batch, "Documents": documents}, logs_to)
    return template


def _exports(template: Template, config: EnvironmentConfig, buckets: dict[str, s3.Bucket], logs_to: Ref) -> None:
    for key, bucket in buckets.items():
        export(template, config, LAYER, f"{key}BucketName", Ref(bucket), f"{key.lower()} bucket name")
        export(template, config, LAYER, f"{key}BucketArn", GetAtt(bucket, "Arn"), f"{key.lower()} bucket ARN")
    export(template, config, LAYER, "AccessLogBucketName", logs_to, "S3 server and ALB access log bucket name")


# --- ALB access logs -----------------------------------------------------------------------------


def elb_log_delivery_principal(region: str) -> Principal:
    """Who Elastic Load Balancing writes access logs as in `region` (see the module docstring)."""
    account = ELB_ACCOUNT_BY_REGION.get(region)
    if account is None:
        return Principal("Service", ELB_LOG_DELIVERY_SERVICE)
    return Principal("AWS", Sub(f"arn:${{AWS::Partition}}:iam::{account}:root"))


def alb_log_delivery_statement(config: EnvironmentConfig) -> Statement:
    """Lets ELB put access logs of this account's load balancers under `alb/`, nothing else."""
    return Statement(
        Sid="AllowAlbAccessLogs",
        Effect=Allow,
        Principal=elb_log_delivery_principal(config.region),
        Action=[s3_actions.PutObject],
        Resource=[
            Sub(
                f"${{Arn}}/{ALB_ACCESS_LOG_PREFIX}/AWSLogs/${{AWS::AccountId}}/*",
                Arn=GetAtt(ACCESS_LOG_BUCKET, "Arn"),
            )
        ],
    )


# --- lifecycle ----------------------------------------------------------------------------------


def _abort_multipart(days: int = ABORT_MULTIPART_AFTER_DAYS) -> s3.AbortIncompleteMultipartUpload:
    return s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=days)


def _expiring(rule_id: str, prefix: str, days: int, old_version_days: int, abort_days: int) -> s3.LifecycleRule:
    """Objects under `prefix` expire `days` after upload, their old versions `old_version_days`
    after they stop being current, unfinished multipart uploads after `abort_days`."""
    return s3.LifecycleRule(
        Id=rule_id,
        Status="Enabled",
        Prefix=prefix,
        ExpirationInDays=days,
        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=old_version_days),
        AbortIncompleteMultipartUpload=_abort_multipart(abort_days),
    )


def _batch_lifecycle(config: EnvironmentConfig) -> s3.LifecycleConfiguration:
    short = BATCH_UPLOAD_LIFETIME_DAYS
    return s3.LifecycleConfiguration(
        Rules=[
            _expiring("ExpireUploadedCsvs", BATCH_UPLOAD_PREFIX, short, short, short),
            _expiring("ExpireMapResults", BATCH_RESULTS_PREFIX, short, short, short),
            _expiring("ExpireReports", BATCH_REPORT_PREFIX, config.storage.batch_report_retention_days,
                      REPORT_OLD_VERSION_DAYS, ABORT_MULTIPART_AFTER_DAYS),
            # Expiring a current version leaves a delete marker; remove it once it hides nothing.
            s3.LifecycleRule(Id="RemoveExpiredDeleteMarkers", Status="Enabled", ExpiredObjectDeleteMarker=True),
        ]
    )


# --- replication to the DR region ---------------------------------------------------------------


def replica_bucket_arn(config: EnvironmentConfig, purpose: str) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:s3:::{dr_bucket_name(config, purpose)}")


def replica_key_alias_arn(config: EnvironmentConfig) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:kms:{config.dr.region}:${{AWS::AccountId}}:{dr_key_alias_name(config)}")


def _replication(config: EnvironmentConfig, purpose: str, role: iam.Role | None) -> dict:
    """Bucket properties that replicate every object to the DR replica of `purpose`."""
    if role is None:
        return {}
    rule = s3.ReplicationConfigurationRules(
        Id=f"replicate-{purpose}-to-{config.dr.region}",
        Status="Enabled",
        Priority=1,
        Filter=s3.ReplicationRuleFilter(Prefix=""),
        DeleteMarkerReplication=s3.DeleteMarkerReplication(Status="Disabled"),
        SourceSelectionCriteria=s3.SourceSelectionCriteria(
            SseKmsEncryptedObjects=s3.SseKmsEncryptedObjects(Status="Enabled")
        ),
        Destination=s3.ReplicationConfigurationRulesDestination(
            Bucket=replica_bucket_arn(config, purpose),
            EncryptionConfiguration=s3.EncryptionConfiguration(ReplicaKmsKeyID=replica_key_alias_arn(config)),
        ),
    )
    return {"ReplicationConfiguration": s3.ReplicationConfiguration(Role=GetAtt(role, "Arn"), Rules=[rule])}


def _record_dr_reference(template: Template, config: EnvironmentConfig) -> None:
    """Names the DR stack's resources this template points at (the account is left symbolic)."""
    record_cross_region_reference(
        template,
        stack_name(config, "dr"),
        config.dr.region,
        [
            *(dr_bucket_name(config, purpose, account="<account-id>") for purpose in REPLICATED_PURPOSES),
            dr_key_alias_name(config),
        ],
    )


def _replication_role(template: Template, config: EnvironmentConfig) -> iam.Role:
    return template.add_resource(
        iam.Role(
            "ReplicationRole",
            Description=f"{resource_name(config, 's3-replication')}: S3 replication to {config.dr.region}",
            AssumeRolePolicyDocument=service_trust("s3.amazonaws.com"),
            Tags=tags(config, resource_name(config, "s3-replication")),
        )
    )


def _replication_policy(
    template: Template, config: EnvironmentConfig, role: iam.Role, sources: list[s3.Bucket]
) -> iam.PolicyType:
    statements = _replication_object_statements(config, sources) + _replication_key_statements(config)
    return template.add_resource(
        iam.PolicyType(
            "ReplicationPolicy",
            PolicyName=resource_name(config, "s3-replication"),
            Roles=[Ref(role)],
            PolicyDocument=Policy(Version="2012-10-17", Statement=statements),
        )
    )


def _replication_object_statements(config: EnvironmentConfig, sources: list[s3.Bucket]) -> list[Statement]:
    """Read the sources' configuration and versions, write the replicas in the DR buckets."""
    source_arns = [GetAtt(bucket, "Arn") for bucket in sources]
    source_objects = [Sub("${Arn}/*", Arn=GetAtt(bucket, "Arn")) for bucket in sources]
    replica_objects = [
        Sub(f"arn:${{AWS::Partition}}:s3:::{dr_bucket_name(config, purpose)}/*") for purpose in REPLICATED_PURPOSES
    ]
    return [
        Statement(
            Sid="ReadReplicationConfiguration",
            Effect=Allow,
            Action=[s3_actions.GetReplicationConfiguration, s3_actions.ListBucket],
            Resource=source_arns,
        ),
        Statement(
            Sid="ReadSourceVersions",
            Effect=Allow,
            Action=[
                # Locked versions replicate with their retention and legal hold.
                s3_actions.GetObjectLegalHold,
                s3_actions.GetObjectRetention,
                s3_actions.GetObjectVersionAcl,
                s3_actions.GetObjectVersionForReplication,
                s3_actions.GetObjectVersionTagging,
            ],
            Resource=source_objects,
        ),
        Statement(
            Sid="WriteReplicas",
            Effect=Allow,
            Action=[s3_actions.ReplicateDelete, s3_actions.ReplicateObject, s3_actions.ReplicateTags],
            Resource=replica_objects,
        ),
    ]


def _replication_key_statements(config: EnvironmentConfig) -> list[Statement]:
    """Decrypt with the data key (through S3 only), encrypt with the DR region's replica key."""
    return [
        Statement(
            Sid="DecryptSourceObjects",
            Effect=Allow,
            Action=[kms_actions.Decrypt],
            Resource=[import_value(config, "security", "DataKeyArn")],
            Condition=Condition(StringEquals("kms:ViaService", Sub("s3.${AWS::Region}.amazonaws.com"))),
        ),
        Statement(
            Sid="EncryptReplicas",
            Effect=Allow,
            Action=[kms_actions.Encrypt, kms_actions.GenerateDataKey],
            # The DR key lives in another stack and region: its id cannot be imported. Any key of
            # the account in the DR region, narrowed by the condition to the one carrying the
            # replica alias.
            Resource=[Sub(f"arn:${{AWS::Partition}}:kms:{config.dr.region}:${{AWS::AccountId}}:key/*")],
            Condition=Condition(
                [
                    ForAnyValueStringEquals("kms:ResourceAliases", dr_key_alias_name(config)),
                    StringEquals("kms:ViaService", f"s3.{config.dr.region}.amazonaws.com"),
                ]
            ),
        ),
    ]
