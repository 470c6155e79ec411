"""Secure building blocks used by more than one layer: KMS keys, S3 buckets, SQS queues, log groups.

Each returns resources that already satisfy the platform's rules (encryption, versioning,
public access blocked, TLS only, retention, stateful policies), so a layer cannot forget one.
"""
from __future__ import annotations

from collections.abc import Iterable

import awacs.kms as kms_actions
import awacs.logs as logs_actions
import awacs.s3 as s3_actions
import awacs.sqs as sqs_actions
import awacs.sts as sts_actions
import awacs.xray as xray_actions
from awacs.aws import (
    Allow,
    ArnLike,
    Bool,
    BoolIfExists,
    Condition,
    Deny,
    NumericLessThan,
    Policy,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import GetAtt, Ref, Sub, Template, kms, logs, s3, sqs

from .common import global_bucket_name, keep_data, resource_name, skip_checkov, tags
from .config import EnvironmentConfig

# Key administration for the account root. Spelled out instead of `kms:*` so no statement
# carries a wildcard action; PutKeyPolicy keeps the key manageable (no lock-out).
KEY_ADMIN_ACTIONS = [
    kms_actions.CancelKeyDeletion,
    kms_actions.CreateAlias,
    kms_actions.CreateGrant,
    kms_actions.Decrypt,
    kms_actions.DeleteAlias,
    kms_actions.DescribeKey,
    kms_actions.DisableKey,
    kms_actions.DisableKeyRotation,
    kms_actions.EnableKey,
    kms_actions.EnableKeyRotation,
    kms_actions.Encrypt,
    kms_actions.GenerateDataKey,
    kms_actions.GetKeyPolicy,
    kms_actions.GetKeyRotationStatus,
    kms_actions.ListAliases,
    kms_actions.ListGrants,
    kms_actions.ListKeyPolicies,
    kms_actions.ListResourceTags,
    kms_actions.PutKeyPolicy,
    kms_actions.ReEncryptFrom,
    kms_actions.ReEncryptTo,
    kms_actions.RevokeGrant,
    kms_actions.RotateKeyOnDemand,
    kms_actions.ScheduleKeyDeletion,
    kms_actions.TagResource,
    kms_actions.UntagResource,
    kms_actions.UpdateAlias,
    kms_actions.UpdateKeyDescription,
]
KEY_USE_ACTIONS = [
    kms_actions.Decrypt,
    kms_actions.DescribeKey,
    kms_actions.Encrypt,
    kms_actions.GenerateDataKey,
    kms_actions.ReEncryptFrom,
    kms_actions.ReEncryptTo,
]

# In a key policy, Resource "*" means "this key": AWS accepts nothing narrower there.
THIS_KEY = "*"


def account_root() -> Principal:
    return Principal("AWS", Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root"))


def key_admin_statement() -> Statement:
    return Statement(
        Sid="AccountAdministersKey",
        Effect=Allow,
        Principal=account_root(),
        Action=KEY_ADMIN_ACTIONS,
        Resource=[THIS_KEY],
    )


def service_use_statement(sid: str, service_principals: Iterable, condition: Condition | None = None) -> Statement:
    """Lets AWS services (by service principal) use the key under a condition such as an
    encryption context (CloudWatch Logs' documented form)."""
    statement = dict(
        Sid=sid,
        Effect=Allow,
        Principal=Principal("Service", sorted(service_principals, key=str)),
        Action=KEY_USE_ACTIONS,
        Resource=[THIS_KEY],
    )
    if condition is not None:
        statement["Condition"] = condition
    return Statement(**statement)


def service_resource_statement(sid: str, service: str, actions: list, resource, condition: Condition) -> Statement:
    """A resource policy statement letting one AWS service act on the resource as itself, only
    under `condition` (its source account or source ARN: the confused-deputy guard)."""
    return Statement(Sid=sid, Effect=Allow, Principal=Principal("Service", service), Action=actions,
                     Resource=[resource], Condition=condition)


# What a service needs to write to (and read from) something encrypted with the key on its own
# behalf: a data key to encrypt, and decrypt.
SERVICE_KEY_ACTIONS = [kms_actions.Decrypt, kms_actions.GenerateDataKey]


def service_key_statement(sid: str, service: str, source_arn: str | None = None,
                          actions: Iterable = tuple(SERVICE_KEY_ACTIONS)) -> Statement:
    """One AWS service may use the key as itself, only on behalf of this account
    (aws:SourceAccount) and, where `source_arn` (a Sub pattern) is given, of matching resources
    (aws:SourceArn): the confused-deputy guard. Services that act through the caller's own
    permission (kms:ViaService) or through grants need no such statement at all."""
    conditions = [StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))]
    if source_arn:
        conditions.append(ArnLike("aws:SourceArn", Sub(source_arn)))
    return Statement(
        Sid=sid,
        Effect=Allow,
        Principal=Principal("Service", service),
        Action=list(actions),
        Resource=[THIS_KEY],
        Condition=Condition(conditions),
    )


def deny_grants_not_for_aws_resources() -> Statement:
    """Nobody may create a grant on the key except AWS services for their own resources (an RDS
    cluster's, a Lambda function's, a DynamoDB table's, a secret's): without this, anyone allowed
    kms:CreateGrant could hand decrypt on the key to anyone, around the key policy (PCI DSS
    3.6/3.7). AWS documents this statement; BoolIfExists also covers callers that set neither key."""
    return Statement(
        Sid="DenyGrantsNotForAwsResources",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[kms_actions.CreateGrant],
        Resource=[THIS_KEY],
        Condition=Condition(
            BoolIfExists({"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"})
        ),
    )


def kms_key(
    template: Template,
    config: EnvironmentConfig,
    logical_id: str,
    purpose: str,
    statements: list[Statement],
) -> kms.Key:
    """A customer-managed key with yearly rotation, an alias `alias/payments-<env>-<purpose>`
    and a key policy of the account admin statement, `statements`, and the deny on grants that
    are not for an AWS resource."""
    key = template.add_resource(
        keep_data(
            kms.Key(
                logical_id,
                Description=f"{resource_name(config, purpose)}: encrypts {purpose}",
                EnableKeyRotation=True,
                PendingWindowInDays=7 if not config.retains_data else 30,
                KeyPolicy=Policy(
                    Version="2012-10-17",
                    Statement=[key_admin_statement(), *statements, deny_grants_not_for_aws_resources()],
                ),
                Tags=tags(config, resource_name(config, purpose)),
            ),
            config,
        )
    )
    template.add_resource(
        kms.Alias(f"{logical_id}Alias", AliasName=f"alias/{resource_name(config, purpose)}", TargetKeyId=Ref(key))
    )
    return key


def deny_insecure_transport(actions: list, resources: list) -> Statement:
    """Refuse any request to `resources` that is not over TLS. A Deny grants nothing, so a
    service-wide action here (`s3:*`, `sqs:*`) is not a wildcard permission."""
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=actions,
        Resource=resources,
        Condition=Condition(Bool("aws:SecureTransport", False)),
    )


def tls_only_bucket_policy(template: Template, logical_id: str, bucket: s3.Bucket) -> s3.BucketPolicy:
    """Deny every request that is not over TLS 1.2+. A Deny on `s3:*` is the only way to say
    "whatever the request": it grants nothing, so it is not a wildcard permission."""
    bucket_arn = GetAtt(bucket, "Arn")
    return template.add_resource(
        s3.BucketPolicy(
            logical_id,
            Bucket=Ref(bucket),
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    deny_insecure_transport([s3_actions.Action("*")], [bucket_arn, Sub("${Arn}/*", Arn=bucket_arn)]),
                    Statement(
                        Sid="DenyOutdatedTls",
                        Effect=Deny,
                        Principal=Principal("*"),
                        Action=[s3_actions.Action("*")],
                        Resource=[bucket_arn, Sub("${Arn}/*", Arn=bucket_arn)],
                        Condition=Condition(NumericLessThan("s3:TlsVersion", 1.2)),
                    ),
                ],
            ),
        )
    )


def secure_bucket(
    template: Template,
    config: EnvironmentConfig,
    logical_id: str,
    purpose: str,
    kms_key_arn,
    access_log_bucket,
    **bucket_properties,
) -> s3.Bucket:
    """A versioned, KMS-encrypted bucket with public access blocked, ACLs disabled, server
    access logs to `access_log_bucket` and a TLS-only policy. Extra properties (lifecycle,
    replication, EventBridge) pass through."""
    bucket = template.add_resource(
        keep_data(
            s3.Bucket(
                logical_id,
                BucketName=global_bucket_name(config, purpose),
                BucketEncryption=s3.BucketEncryption(
                    ServerSideEncryptionConfiguration=[
                        s3.ServerSideEncryptionRule(
                            BucketKeyEnabled=True,
                            ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(
                                SSEAlgorithm="aws:kms", KMSMasterKeyID=kms_key_arn
                            ),
                        )
                    ]
                ),
                VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
                PublicAccessBlockConfiguration=_public_access_blocked(),
                OwnershipControls=_owner_enforced(),
                LoggingConfiguration=s3.LoggingConfiguration(
                    DestinationBucketName=access_log_bucket, LogFilePrefix=f"{purpose}/"
                ),
                Tags=tags(config, resource_name(config, purpose)),
                **bucket_properties,
            ),
            config,
        )
    )
    tls_only_bucket_policy(template, f"{logical_id}Policy", bucket)
    return bucket


def access_log_bucket(
    template: Template,
    config: EnvironmentConfig,
    logical_id: str,
    purpose: str,
    extra_statements: Iterable[Statement] = (),
) -> s3.Bucket:
    """The target of S3 server access logs. S3 delivers access logs only to buckets encrypted
    with SSE-S3 (SSE-KMS targets are not supported), which is why this one bucket is not KMS
    encrypted; it holds request metadata, never payment data. `extra_statements` admit other
    log writers (e.g. ELB access logs) to the bucket policy; they may name the bucket as
    GetAtt(logical_id, "Arn")."""
    bucket = template.add_resource(
        keep_data(
            s3.Bucket(
                logical_id,
                BucketName=global_bucket_name(config, purpose),
                BucketEncryption=s3.BucketEncryption(
                    ServerSideEncryptionConfiguration=[
                        s3.ServerSideEncryptionRule(
                            ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                        )
                    ]
                ),
                VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
                PublicAccessBlockConfiguration=_public_access_blocked(),
                OwnershipControls=_owner_enforced(),
                LifecycleConfiguration=s3.LifecycleConfiguration(
                    Rules=[
                        s3.LifecycleRule(
                            Id="ExpireAccessLogs",
                            Status="Enabled",
                            ExpirationInDays=max(config.log_retention_days, 365),
                            NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=30),
                            AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=1),
                        )
                    ]
                ),
                Tags=tags(config, resource_name(config, purpose)),
            ),
            config,
        )
    )
    skip_checkov(bucket, "CKV_AWS_145", "S3 server access logs can only be delivered to an SSE-S3 bucket")
    skip_checkov(bucket, "CKV_AWS_18", "this is the access log bucket; logging it to itself would loop")
    skip_checkov(bucket, "CKV_AWS_144", "access logs are operational metadata, not replicated to DR")
    _allow_log_delivery(template, f"{logical_id}Policy", bucket, extra_statements)
    return bucket


def _allow_log_delivery(
    template: Template, logical_id: str, bucket: s3.Bucket, extra_statements: Iterable[Statement] = ()
) -> s3.BucketPolicy:
    bucket_arn = GetAtt(bucket, "Arn")
    policy = tls_only_bucket_policy(template, logical_id, bucket)
    policy.PolicyDocument.Statement.append(
        Statement(
            Sid="AllowS3ServerAccessLogs",
            Effect=Allow,
            Principal=Principal("Service", "logging.s3.amazonaws.com"),
            Action=[s3_actions.PutObject],
            Resource=[Sub("${Arn}/*", Arn=bucket_arn)],
            # Only our own account's buckets may write here.
            Condition=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))),
        )
    )
    policy.PolicyDocument.Statement.extend(extra_statements)
    return policy


def _public_access_blocked() -> s3.PublicAccessBlockConfiguration:
    return s3.PublicAccessBlockConfiguration(
        BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
    )


def _owner_enforced() -> s3.OwnershipControls:
    return s3.OwnershipControls(Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")])


# SQS: the data-carrying queues are encrypted with a customer-managed key, keep their data as the
# environment says, refuse plain HTTP and send what fails `max_receives` times to their own DLQ.
SQS_LONG_POLL_WAIT_S = 20
SQS_KMS_DATA_KEY_REUSE_S = 300
SQS_MAX_RETENTION_S = 14 * 24 * 60 * 60


def queue_with_dead_letters(
    template: Template,
    config: EnvironmentConfig,
    stem: str,
    purpose: str,
    kms_key_arn,
    *,
    visibility_timeout_s: int,
    retention_s: int,
    max_receives: int,
) -> tuple[sqs.Queue, sqs.Queue]:
    """`<stem>Queue` (`payments-<env>-<purpose>`) and `<stem>Dlq` (`...-<purpose>-dlq`, kept 14 days,
    the SQS maximum, accepting redrives from its queue only) with one TLS-only policy
    `<stem>QueuesPolicy`. Returns (queue, dlq)."""
    queue_name = resource_name(config, purpose)
    dlq_name = resource_name(config, f"{purpose}-dlq")
    encryption = dict(KmsMasterKeyId=kms_key_arn, KmsDataKeyReusePeriodSeconds=SQS_KMS_DATA_KEY_REUSE_S)
    dlq = template.add_resource(keep_data(sqs.Queue(
        f"{stem}Dlq",
        QueueName=dlq_name,
        MessageRetentionPeriod=SQS_MAX_RETENTION_S,
        **encryption,
        # The queue's ARN is built from its name: a GetAtt would be a cycle (the queue names us).
        RedriveAllowPolicy={"redrivePermission": "byQueue", "sourceQueueArnList": [
            Sub(f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue_name}")]},
        Tags=tags(config, dlq_name),
    ), config))
    queue = template.add_resource(keep_data(sqs.Queue(
        f"{stem}Queue",
        QueueName=queue_name,
        VisibilityTimeout=visibility_timeout_s,
        MessageRetentionPeriod=retention_s,
        ReceiveMessageWaitTimeSeconds=SQS_LONG_POLL_WAIT_S,
        **encryption,
        RedrivePolicy=sqs.RedrivePolicy(deadLetterTargetArn=GetAtt(dlq, "Arn"), maxReceiveCount=max_receives),
        Tags=tags(config, queue_name),
    ), config))
    template.add_resource(sqs.QueuePolicy(
        f"{stem}QueuesPolicy",
        Queues=[Ref(queue), Ref(dlq)],
        PolicyDocument=Policy(Version="2012-10-17", Statement=[
            deny_insecure_transport([sqs_actions.Action("*")], [GetAtt(queue, "Arn"), GetAtt(dlq, "Arn")])]),
    ))
    return queue, dlq


def log_group(
    template: Template, config: EnvironmentConfig, logical_id: str, name, kms_key_arn, retention_days: int | None = None
) -> logs.LogGroup:
    """A log group with retention from the environment and KMS encryption."""
    return template.add_resource(
        keep_data(
            logs.LogGroup(
                logical_id,
                LogGroupName=name,
                RetentionInDays=retention_days or config.log_retention_days,
                KmsKeyId=kms_key_arn,
                Tags=tags(config),
            ),
            config,
        )
    )


# --- the audit trail's lock (storage and dr layers) ----------------------------------------------


def audit_lock(config: EnvironmentConfig) -> dict:
    """Bucket properties locking every new object version (S3 Object Lock, WORM) as the
    environment says: COMPLIANCE in prod, GOVERNANCE elsewhere (PCI DSS 10.3). Enabling it on an
    existing bucket updates it in place; it can never be turned off again. The default retention
    applies to versions written afterwards only (README: retention for existing objects)."""
    storage = config.storage
    return {
        "ObjectLockEnabled": True,
        "ObjectLockConfiguration": s3.ObjectLockConfiguration(
            ObjectLockEnabled="Enabled",
            Rule=s3.ObjectLockRule(
                DefaultRetention=s3.DefaultRetention(Mode=storage.audit_lock_mode, Days=storage.audit_lock_days)
            ),
        ),
    }


# --- DR replica names (storage and dr layers) -------------------------------------------------
# The DR stack lives in another region, so storage cannot import its exports: both layers derive
# the replica names from these two functions and cannot drift apart.
DR_KEY_PURPOSE = "dr-replica"


def dr_bucket_name(
    config: EnvironmentConfig, purpose: str, account: str = "${AWS::AccountId}", region: str | None = None
) -> str:
    """Name of the DR replica bucket for `purpose`, as a Sub string. The region defaults to
    config.dr.region (what the primary region must spell out); the DR stack itself passes
    ${AWS::Region}. Pass `account` to spell the account otherwise (metadata cannot hold a Sub)."""
    return f"{resource_name(config, 'dr', purpose)}-{account}-{region or config.dr.region}"


def dr_key_alias_name(config: EnvironmentConfig) -> str:
    """Alias of the DR stack's KMS key (blocks.kms_key names aliases after the purpose)."""
    return f"alias/{resource_name(config, DR_KEY_PURPOSE)}"


# --- lifecycle rules shared by a source bucket and its DR replica (storage and dr layers) -------
ARCHIVE_AFTER_DAYS = 90
DOCUMENT_TRANSITIONS = (("STANDARD_IA", 30), ("GLACIER", 90), ("DEEP_ARCHIVE", 180))
DOCUMENT_OLD_VERSION_DAYS = 30
ABORT_MULTIPART_AFTER_DAYS = 7


def archive_then_expire_lifecycle(rule_id: str, retention_days: int) -> s3.LifecycleConfiguration:
    """Glacier after 90 days, gone after `retention_days`. Overwritten or deleted versions are kept
    as long as current ones: a tampered record stays recoverable for the whole retention."""
    glacier = dict(StorageClass="GLACIER", TransitionInDays=ARCHIVE_AFTER_DAYS)
    return s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id=rule_id,
                Status="Enabled",
                Transitions=[s3.LifecycleRuleTransition(**glacier)],
                ExpirationInDays=retention_days,
                NoncurrentVersionTransitions=[s3.NoncurrentVersionTransition(**glacier)],
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=retention_days),
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(
                    DaysAfterInitiation=ABORT_MULTIPART_AFTER_DAYS
                ),
            )
        ]
    )


def tiered_documents_lifecycle(rule_id: str) -> s3.LifecycleConfiguration:
    """IA at 30 days, Glacier at 90, Deep Archive at 180; old versions expire after 30 days."""
    return s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id=rule_id,
                Status="Enabled",
                Transitions=[
                    s3.LifecycleRuleTransition(StorageClass=storage_class, TransitionInDays=days)
                    for storage_class, days in DOCUMENT_TRANSITIONS
                ],
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=DOCUMENT_OLD_VERSION_DAYS),
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(
                    DaysAfterInitiation=ABORT_MULTIPART_AFTER_DAYS
                ),
            )
        ]
    )


# --- ALB access logs (storage admits them, compute sends them) ----------------------------------
# The prefix of the access-log bucket the ALB writes under; both layers take it from here so the
# bucket policy and the load balancer attribute cannot drift apart.
ALB_ACCESS_LOG_PREFIX = "alb"


def via_services_statement(sid: str, services: tuple[str, ...]) -> Statement:
    """The account's principals may use the key only through the named services
    (kms:ViaService), and only from this account (kms:CallerAccount)."""
    return Statement(
        Sid=sid,
        Effect=Allow,
        Principal=account_root(),
        Action=KEY_USE_ACTIONS,
        Resource=[THIS_KEY],
        # One StringEquals holding both keys: awacs keeps one element per operator.
        Condition=Condition(
            StringEquals(
                {
                    "kms:CallerAccount": Ref("AWS::AccountId"),
                    "kms:ViaService": [Sub(f"{service}.${{AWS::Region}}.amazonaws.com") for service in services],
                }
            )
        ),
    )


def logs_service_statement() -> Statement:
    """CloudWatch Logs of this region may use the key, for this account's log groups only."""
    return service_use_statement(
        "AllowCloudWatchLogsForThisAccount",
        [Sub("logs.${AWS::Region}.amazonaws.com")],
        Condition(
            ArnLike(
                "kms:EncryptionContext:aws:logs:arn",
                Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"),
            )
        ),
    )


# --- roles AWS services assume ------------------------------------------------------------------


def service_trust(service: str, source_arn=None, *, on_behalf_of_this_account: bool = True) -> Policy:
    """A trust policy for one AWS service. By default only on behalf of this account and, given
    `source_arn`, of those resources (confused-deputy guard). `on_behalf_of_this_account=False`
    is for a service that assumes the role for itself and sends no source context (a Lambda
    execution role, RDS enhanced monitoring): a condition there would only deny the service."""
    statement = dict(Effect=Allow, Principal=Principal("Service", service), Action=[sts_actions.AssumeRole])
    if on_behalf_of_this_account:
        same_account = StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))
        statement["Condition"] = Condition(
            [same_account, ArnLike("aws:SourceArn", source_arn)] if source_arn is not None else same_account
        )
    return Policy(Version="2012-10-17", Statement=[Statement(**statement)])


def vended_logs_statements() -> list[Statement]:
    """What a state machine's role needs to deliver its logs and traces."""
    return [
        Statement(
            Sid="DeliverExecutionLogs",
            Effect=Allow,
            Action=[
                logs_actions.CreateLogDelivery,
                logs_actions.DeleteLogDelivery,
                logs_actions.DescribeLogGroups,
                logs_actions.DescribeResourcePolicies,
                logs_actions.GetLogDelivery,
                logs_actions.ListLogDeliveries,
                logs_actions.PutResourcePolicy,
                logs_actions.UpdateLogDelivery,
            ],
            # CloudWatch Logs vended-log delivery APIs support no resource-level permissions:
            # AWS documents "*" as the only accepted resource for them.
            Resource=["*"],
        ),
        Statement(
            Sid="WriteTraces",
            Effect=Allow,
            Action=[
                xray_actions.GetSamplingRules,
                xray_actions.GetSamplingTargets,
                xray_actions.PutTelemetryRecords,
                xray_actions.PutTraceSegments,
            ],
            # X-Ray trace and sampling APIs have no resource-level permissions: "*" is required.
            Resource=["*"],
        ),
    ]
