"""artifacts (bootstrap) layer: deployable by TemplateBody, a locked-down versioned bucket with
its own key and access logs, old versions expiring, and the outputs deploy reads."""
from __future__ import annotations

import json
import re

import pytest

import build
from templates_src import artifacts
from templates_src.config import load_environment
from templates_src.layers import LAYERS

from .helpers import assert_data_policy

ENVIRONMENTS = ("dev", "staging", "prod")
TEMPLATE_BODY_LIMIT = 51_200
LONGEST_REGION = "ap-southeast-2"  # 14 characters, as long as commercial region names get


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def env(request):
    config = load_environment(request.param)
    body = artifacts.build(config).to_json()
    return config, body, json.loads(body)


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_fits_a_template_body_as_the_build_writes_it(env_name):
    (layer,) = [layer for layer in LAYERS if layer.name == "artifacts"]
    assert layer.bootstrap
    stack = build.render_stack(layer, load_environment(env_name))
    assert len(stack.body) < TEMPLATE_BODY_LIMIT


def test_bucket_is_encrypted_with_its_own_rotated_key(env):
    _, _, template = env
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["ArtifactKey", "Arn"]},
    }
    assert template["Resources"]["ArtifactKey"]["Properties"]["EnableKeyRotation"] is True


def test_bucket_is_versioned_private_and_logged(env):
    _, _, template = env
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "ArtifactAccessLogBucket"}


def test_bucket_policy_refuses_plain_http(env):
    _, _, template = env
    policies = [p for p in template["Resources"].values() if p["Type"] == "AWS::S3::BucketPolicy"]
    artifact_policy = next(p for p in policies if p["Properties"]["Bucket"] == {"Ref": "ArtifactBucket"})
    denials = [s for s in artifact_policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in (False, "false") for s in denials)


def test_noncurrent_versions_expire_after_90_days(env):
    _, _, template = env
    rules = template["Resources"]["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(
        rule["Status"] == "Enabled" and rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90} for rule in rules
    )
    assert not any("ExpirationInDays" in rule for rule in rules), "current artifacts must never expire"


def test_data_policy_follows_the_environment(env):
    config, _, template = env
    for name in ("ArtifactBucket", "ArtifactAccessLogBucket", "ArtifactKey", "ApiRepository"):
        assert_data_policy(template["Resources"][name], config.name, name)


def test_bucket_names_fit_in_63_characters_in_any_region(env):
    _, _, template = env
    for name in ("ArtifactBucket", "ArtifactAccessLogBucket"):
        pattern = template["Resources"][name]["Properties"]["BucketName"]["Fn::Sub"]
        longest = pattern.replace("${AWS::AccountId}", "1" * 12).replace("${AWS::Region}", LONGEST_REGION)
        assert len(longest) <= 63, longest
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", longest)


def test_outputs_deploy_reads(env):
    config, _, template = env
    assert set(template["Outputs"]) == {
        "ArtifactBucketName", "ArtifactBucketArn", "ArtifactKeyArn", "ApiRepositoryName", "ApiRepositoryArn"}
    assert template["Outputs"]["ArtifactBucketName"]["Value"] == {"Ref": "ArtifactBucket"}
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-{config.name}-artifacts-{key}"


def test_bootstrap_stack_depends_on_nothing(env):
    _, body, _ = env
    assert "Fn::ImportValue" not in body
    assert '"Parameters"' not in body, "deploy creates it by TemplateBody without parameters"


def test_key_is_used_by_the_account_only_through_s3_and_ecr(env):
    _, _, template = env
    statements = {s["Sid"]: s for s in template["Resources"]["ArtifactKey"]["Properties"]["KeyPolicy"]["Statement"]}
    condition = statements["AllowAccountThroughS3AndEcr"]["Condition"]["StringEquals"]
    assert condition["kms:ViaService"] == [
        {"Fn::Sub": "ecr.${AWS::Region}.amazonaws.com"}, {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}]
    assert condition["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}


def test_api_repository_is_immutable_scanned_encrypted_and_bounded(env):
    config, _, template = env
    repository = template["Resources"]["ApiRepository"]
    properties = repository["Properties"]
    assert properties["RepositoryName"] == f"payments-{config.name}-api"
    assert properties["ImageTagMutability"] == "IMMUTABLE"
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert properties["EncryptionConfiguration"] == {"EncryptionType": "KMS", "KmsKey": {"Fn::GetAtt": ["ArtifactKey", "Arn"]}}
    # dev empties the repository so `make destroy` can delete it; staging and prod keep images
    assert properties["EmptyOnDelete"] is (config.name == "dev")
    rules = json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert [(r["selection"]["tagStatus"], r["selection"]["countType"], r["selection"]["countNumber"]) for r in rules] == [
        ("untagged", "sinceImagePushed", artifacts.UNTAGGED_IMAGE_DAYS),
        ("any", "imageCountMoreThan", artifacts.KEPT_IMAGES),
    ]
    assert all(r["action"] == {"type": "expire"} for r in rules)
