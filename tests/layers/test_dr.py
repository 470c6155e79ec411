"""dr layer (prod only, in dr.region): own KMS key and secure replica buckets, no imports."""
from __future__ import annotations

import json

import pytest

from templates_src import dr
from templates_src.blocks import dr_key_alias_name
from templates_src.config import load_environment
from templates_src.layers import layers_for

from .helpers import assert_data_policy, of_type

REPLICAS = ("ReplicaAuditBucket", "ReplicaDocumentsBucket")


@pytest.fixture(scope="module")
def prod():
    config = load_environment("prod")
    return config, json.loads(dr.build(config).to_json())


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_only_environments_with_dr_have_the_stack(env):
    config = load_environment(env)
    assert "dr" not in [layer.name for layer in layers_for(config)]
    with pytest.raises(dr.DrNotEnabled, match="dr.enabled is false"):
        dr.build(config)


def test_prod_deploys_it_in_the_dr_region(prod):
    config, template = prod
    (layer,) = [layer for layer in layers_for(config) if layer.name == "dr"]
    assert layer.region(config) == config.dr.region != config.region
    (assertion,) = template["Rules"]["DeployedInDrRegion"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, config.dr.region]}


def test_imports_nothing(prod):
    _, template = prod
    assert "Fn::ImportValue" not in json.dumps(template)


def test_own_rotating_key_under_the_shared_alias(prod):
    config, template = prod
    keys = of_type(template, "AWS::KMS::Key")
    assert list(keys) == ["ReplicaKey"]
    assert keys["ReplicaKey"]["Properties"]["EnableKeyRotation"] is True
    assert_data_policy(keys["ReplicaKey"], "prod")
    (alias,) = of_type(template, "AWS::KMS::Alias").values()
    assert alias["Properties"] == {"AliasName": dr_key_alias_name(config), "TargetKeyId": {"Ref": "ReplicaKey"}}


def test_replicas_are_secure_and_log_to_the_dr_log_bucket(prod):
    _, template = prod
    assert set(of_type(template, "AWS::S3::Bucket")) == {"AccessLogBucket", *REPLICAS}
    for logical_id in REPLICAS:
        resource = template["Resources"][logical_id]
        properties = resource["Properties"]
        rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": ["ReplicaKey", "Arn"]},
        }
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
        assert_data_policy(resource, "prod", logical_id)
        policy = template["Resources"][f"{logical_id}Policy"]["Properties"]["PolicyDocument"]
        assert {s["Sid"] for s in policy["Statement"]} == {"DenyInsecureTransport", "DenyOutdatedTls"}


def test_replica_lifecycles_mirror_the_sources(prod):
    config, template = prod
    (audit,) = template["Resources"]["ReplicaAuditBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert audit["ExpirationInDays"] == config.storage.audit_retention_days
    assert audit["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 90}]
    (documents,) = template["Resources"]["ReplicaDocumentsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [t["StorageClass"] for t in documents["Transitions"]] == ["STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"]
    assert documents["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}


def test_exports_are_the_three_for_people(prod):
    _, template = prod
    assert set(template["Outputs"]) == {"ReplicaAuditBucketArn", "ReplicaDocumentsBucketArn", "ReplicaKeyArn"}
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-prod-dr-{key}"
