"""storage layer: secure buckets, lifecycle rules, EventBridge for batch uploads, prod replication."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from troposphere import Template

from templates_src import blocks, dr, storage
from templates_src.config import ConfigError, load_environment

from .helpers import exports_contract, imported_exports, rendered

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")
DATA_BUCKETS = ("AuditBucket", "BatchBucket", "DocumentsBucket")


def rules(template: dict, bucket: str) -> dict[str, dict]:
    lifecycle = template["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
    return {rule["Id"]: rule for rule in lifecycle}


def checkov_skips(resource: dict) -> set[str]:
    return {skip["id"] for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


@pytest.fixture(scope="module")
def built() -> dict[str, tuple]:
    return {env: rendered(storage, env) for env in ENVIRONMENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_data_buckets_use_the_data_key_and_log_to_the_log_bucket(built, env):
    _, template = built[env]
    buckets = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket"}
    assert buckets == {"AccessLogBucket", *DATA_BUCKETS}
    for logical_id in DATA_BUCKETS:
        properties = template["Resources"][logical_id]["Properties"]
        encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"},
        }
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
        policy = template["Resources"][f"{logical_id}Policy"]["Properties"]
        assert policy["Bucket"] == {"Ref": logical_id}
        assert [s["Effect"] for s in policy["PolicyDocument"]["Statement"]] == ["Deny", "Deny"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_audit_logs_go_to_glacier_and_stay_at_least_a_year(built, env):
    config, template = built[env]
    rule = rules(template, "AuditBucket")["ArchiveThenExpireAuditLogs"]
    assert rule["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 90}]
    assert rule["ExpirationInDays"] == config.storage.audit_retention_days >= 365
    # an overwritten or deleted audit record stays recoverable for the whole retention
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": config.storage.audit_retention_days}


def test_prod_keeps_audit_logs_seven_years(built):
    config, _ = built["prod"]
    assert config.storage.audit_retention_days == 2555


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_batch_uploads_reach_eventbridge_not_a_function(built, env):
    _, template = built[env]
    notification = template["Resources"]["BatchBucket"]["Properties"]["NotificationConfiguration"]
    assert notification == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert "Fn::GetAtt" not in json.dumps(notification) and "Lambda" not in json.dumps(notification)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_uploaded_csvs_and_their_versions_expire_after_a_day(built, env):
    config, template = built[env]
    batch = rules(template, "BatchBucket")
    uploads = batch["ExpireUploadedCsvs"]
    assert uploads["Prefix"] == "incoming/"
    assert uploads["ExpirationInDays"] == 1
    assert uploads["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    reports = batch["ExpireReports"]
    assert reports["Prefix"] == "reports/"
    assert reports["ExpirationInDays"] == config.storage.batch_report_retention_days
    assert batch["RemoveExpiredDeleteMarkers"]["ExpiredObjectDeleteMarker"] is True


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_documents_tier_down_and_old_versions_expire(built, env):
    _, template = built[env]
    rule = rules(template, "DocumentsBucket")["TierDocuments"]
    assert [(t["StorageClass"], t["TransitionInDays"]) for t in rule["Transitions"]] == [
        ("STANDARD_IA", 30),
        ("GLACIER", 90),
        ("DEEP_ARCHIVE", 180),
    ]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert "ExpirationInDays" not in rule


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_no_replication_without_dr(built, env):
    _, template = built[env]
    for logical_id in DATA_BUCKETS:
        resource = template["Resources"][logical_id]
        assert "ReplicationConfiguration" not in resource["Properties"]
        assert "CKV_AWS_144" in checkov_skips(resource)
    assert not any(r["Type"].startswith("AWS::IAM::") for r in template["Resources"].values())
    assert "CrossRegionReferences" not in template.get("Metadata", {})


def test_prod_replicates_audit_and_documents_to_the_dr_stack(built):
    config, template = built["prod"]
    dr_template = json.loads(dr.build(config).to_json())
    dr_names = {
        key: r["Properties"]["BucketName"]["Fn::Sub"].replace("${AWS::Region}", config.dr.region)
        for key, r in dr_template["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket"
    }
    dr_alias = next(r for r in dr_template["Resources"].values() if r["Type"] == "AWS::KMS::Alias")
    for source, replica in (("AuditBucket", "ReplicaAuditBucket"), ("DocumentsBucket", "ReplicaDocumentsBucket")):
        replication = template["Resources"][source]["Properties"]["ReplicationConfiguration"]
        assert replication["Role"] == {"Fn::GetAtt": ["ReplicationRole", "Arn"]}
        (rule,) = replication["Rules"]
        assert rule["Status"] == "Enabled"
        assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
        assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
        destination = rule["Destination"]
        assert destination["Bucket"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{dr_names[replica]}"}
        key_arn = destination["EncryptionConfiguration"]["ReplicaKmsKeyID"]["Fn::Sub"]
        assert key_arn == (
            f"arn:${{AWS::Partition}}:kms:{config.dr.region}:${{AWS::AccountId}}:"
            f"{dr_alias['Properties']['AliasName']}"
        )
    assert "ReplicationConfiguration" not in template["Resources"]["BatchBucket"]["Properties"]
    (reference,) = template["Metadata"]["CrossRegionReferences"]
    assert reference["Stack"] == "payments-prod-dr"
    assert reference["Region"] == config.dr.region == "eu-central-1"
    assert dr_alias["Properties"]["AliasName"] in reference["Names"]


def test_replication_role_is_least_privilege(built):
    config, template = built["prod"]
    trust = template["Resources"]["ReplicationRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "s3.amazonaws.com"}
    policy = template["Resources"]["ReplicationPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "ReplicationRole"}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"])
        assert statement["Resource"] != "*" and "*" not in statement["Resource"]
    assert statements["WriteReplicas"]["Action"] == ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"]
    encrypt = statements["EncryptReplicas"]
    assert encrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/payments-prod-dr-replica"}
    assert encrypt["Condition"]["StringEquals"] == {"kms:ViaService": f"s3.{config.dr.region}.amazonaws.com"}
    assert statements["DecryptSourceObjects"]["Resource"] == [
        {"Fn::ImportValue": "payments-prod-security-DataKeyArn"}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_and_imports_follow_the_contract(built, env):
    _, template = built[env]
    assert set(template["Outputs"]) == exports_contract("storage")
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-{env}-storage-{key}"
    assert imported_exports(template["Resources"]) == {f"payments-{env}-security-DataKeyArn"}


def alb_log_statement(template: dict) -> dict:
    statements = template["Resources"]["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == [
        "DenyInsecureTransport",
        "DenyOutdatedTls",
        "AllowS3ServerAccessLogs",
        "AllowAlbAccessLogs",
    ]
    return statements[-1]


ALB_LOG_OBJECTS = [
    {"Fn::Sub": ["${Arn}/alb/AWSLogs/${AWS::AccountId}/*", {"Arn": {"Fn::GetAtt": ["AccessLogBucket", "Arn"]}}]}
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_access_log_bucket_admits_only_alb_logs_of_this_account_from_the_regional_elb_account(built, env):
    config, template = built[env]
    assert config.region == "eu-west-1"
    assert alb_log_statement(template) == {
        "Sid": "AllowAlbAccessLogs",
        "Effect": "Allow",
        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::156460612806:root"}},
        "Action": ["s3:PutObject"],
        "Resource": ALB_LOG_OBJECTS,
    }


def test_regions_opened_after_august_2022_admit_the_elb_log_delivery_service():
    config = load_environment("dev").model_copy(update={"region": "ca-west-1"})
    template = json.loads(storage.build(config).to_json())
    assert alb_log_statement(template) == {
        "Sid": "AllowAlbAccessLogs",
        "Effect": "Allow",
        "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
        "Action": ["s3:PutObject"],
        "Resource": ALB_LOG_OBJECTS,
    }


@pytest.mark.parametrize(
    ("region", "account"),
    [("us-east-1", "127311923021"), ("ap-southeast-2", "783225319266"), ("sa-east-1", "507241528517")],
)
def test_older_regions_use_their_own_elb_account(region, account):
    config = load_environment("dev").model_copy(update={"region": region})
    principal = alb_log_statement(json.loads(storage.build(config).to_json()))["Principal"]
    assert principal == {"AWS": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{account}:root"}}


def test_access_log_bucket_without_extra_writers_keeps_its_policy():
    """blocks.access_log_bucket is shared: without extra statements it admits S3 server access logs only."""
    template = Template()
    blocks.access_log_bucket(template, load_environment("dev"), "Logs", "logs")
    statements = template.to_dict()["Resources"]["LogsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [(s["Sid"], s["Effect"]) for s in statements] == [
        ("DenyInsecureTransport", "Deny"),
        ("DenyOutdatedTls", "Deny"),
        ("AllowS3ServerAccessLogs", "Allow"),
    ]


def test_dr_bucket_names_need_a_dr_region():
    """Storage only names DR buckets when dr.enabled, which the config ties to a region."""
    config = load_environment("prod")
    assert storage.replica_bucket_arn(config, "audit").to_dict()["Fn::Sub"].endswith(f"-{config.dr.region}")


@pytest.fixture
def parameters_copy(tmp_path: Path) -> Path:
    for path in (ROOT / "parameters").glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _set_storage(directory: Path, env: str, **values) -> None:
    path = directory / f"{env}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["storage"].update(values)
    path.write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"audit_retention_days": 364}, "storage.audit_retention_days"),
        ({"batch_report_retention_days": 0}, "storage.batch_report_retention_days"),
        ({"audit_retention_days": "forever"}, "storage.audit_retention_days"),
    ],
)
def test_bad_retention_is_refused_with_the_key_path(parameters_copy, values, message):
    _set_storage(parameters_copy, "staging", **values)
    with pytest.raises(ConfigError) as error:
        load_environment("staging", parameters_copy)
    assert message in str(error.value) and "staging.yaml" in str(error.value)


def test_missing_storage_section_is_refused(parameters_copy):
    path = parameters_copy / "dev.yaml"
    raw = yaml.safe_load(path.read_text())
    del raw["storage"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="storage: missing key"):
        load_environment("dev", parameters_copy)
