"""build/<env>/deployed.json and its copies in the artifact bucket (fake CloudFormation + moto S3)."""
from __future__ import annotations

import base64
import hashlib
import json

from botocore.exceptions import ClientError
from synthetic_env import make_context, run_deploy, virtual_context

SECRET = "s3cr3t-signing-key-value"


def deployed_document(env):
    text = (env.build_dir / env.environment / "deployed.json").read_text()
    return json.loads(text), text


def by_name(document):
    return {entry["name"]: entry for entry in document["stacks"]}


def manifest_of(env):
    path = env.build_dir / env.environment / "manifest.json"
    return json.loads(path.read_text()), hashlib.sha256(path.read_bytes()).hexdigest()


def s3_object(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def resources_in_fake(world, region, name):
    stack = world.cfn(region).stack(name)
    return sorted(({"logical_id": k, "type": stack.template["Resources"][k]["Type"], "physical_id": v,
                    "status": stack.resource_status.get(k)} for k, v in stack.physical_ids.items()),
                  key=lambda r: r["logical_id"])


def test_first_deploy_publishes_every_stack_with_resources_and_outputs(env, world, moto_aws):
    world.resource_page_size = 2  # compute has 5 resources: three pages
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    document, raw = deployed_document(env)
    manifest, manifest_sha256 = manifest_of(env)
    assert raw == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert (document["environment"], document["region"], document["regions"]) == ("staging", "eu-west-1", ["eu-west-1"])
    assert document["build_manifest_sha256"] == manifest_sha256
    assert document["complete"] is True
    assert document["failed_stacks"] == [] and document["not_started_stacks"] == []
    assert [s["name"] for s in document["stacks"]] == [s["name"] for s in manifest["stacks"]]
    for built in manifest["stacks"]:
        entry = by_name(document)[built["name"]]
        fake = world.cfn(env.region).stack(built["name"])
        assert entry["status"] == "CREATE_COMPLETE" and entry["run_result"] == "deployed"
        assert entry["stack_id"] == fake.stack_id and entry["region"] == "eu-west-1"
        assert entry["creation_time"] == fake.created and entry["last_updated_time"] is None
        assert entry["template_sha256"] == built["sha256"] and entry["template_matches_build"] is True
        assert entry["resources"] == resources_in_fake(world, env.region, built["name"])
        assert "parameters" not in entry
    compute = by_name(document)[env.stack_name("compute")]
    assert [r["logical_id"] for r in compute["resources"]] == [
        "FromData", "FromMessaging", "FromNetwork", "FromStorage", "Topic"]
    assert compute["outputs"]["TopicArn"] == {"value": "payments-staging-compute-topic",
                                              "export_name": "payments-staging-compute-TopicArn"}
    artifacts = by_name(document)[env.stack_name("artifacts")]
    assert artifacts["outputs"]["ArtifactBucketName"]["value"] == env.bucket_name
    assert artifacts["resources"] == [{"logical_id": "ArtifactBucket", "type": "AWS::S3::Bucket",
                                       "physical_id": env.bucket_name, "status": "CREATE_COMPLETE"}]

    # in the artifact bucket under both keys, byte for byte, with the bucket's default KMS key
    sha256 = hashlib.sha256(raw.encode()).hexdigest()
    for key in ("manifests/staging/deployed.json", f"manifests/staging/{sha256}.json"):
        assert s3_object(moto_aws, env.bucket_name, key) == raw.encode()
        head = moto_aws.head_object(Bucket=env.bucket_name, Key=key)
        default = moto_aws.get_bucket_encryption(Bucket=env.bucket_name)["ServerSideEncryptionConfiguration"]
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == default["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    assert f"resource manifest written to {env.build_dir / 'staging' / 'deployed.json'} (sha256 {sha256})" in text
    assert (f"published to s3://{env.bucket_name}/manifests/staging/deployed.json and "
            f"s3://{env.bucket_name}/manifests/staging/{sha256}.json") in text


def test_execute_republishes_and_history_is_kept_by_content(env, world, moto_aws):
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    first_raw = deployed_document(env)[1].encode()
    env.layers["workflow"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    assert run_deploy(env, world, "plan")[0] == 0
    code, text = run_deploy(env, world, "execute")
    assert code == 0, text
    document, raw = deployed_document(env)
    manifest, manifest_sha256 = manifest_of(env)
    workflow = by_name(document)[env.stack_name("workflow")]
    built = [s for s in manifest["stacks"] if s["layer"] == "workflow"][0]
    assert workflow["run_result"] == "deployed" and workflow["status"] == "UPDATE_COMPLETE"
    assert workflow["template_sha256"] == built["sha256"]
    assert workflow["last_updated_time"] == world.cfn(env.region).stack(built["name"]).updated is not None
    assert "Extra" in [r["logical_id"] for r in workflow["resources"]]
    assert by_name(document)[env.stack_name("api")]["run_result"] == "unchanged"
    assert document["build_manifest_sha256"] == manifest_sha256
    listed = moto_aws.list_objects_v2(Bucket=env.bucket_name, Prefix="manifests/staging/")["Contents"]
    keys = {o["Key"] for o in listed}
    assert keys == {"manifests/staging/deployed.json",
                    f"manifests/staging/{hashlib.sha256(first_raw).hexdigest()}.json",
                    f"manifests/staging/{hashlib.sha256(raw.encode()).hexdigest()}.json"}
    assert s3_object(moto_aws, env.bucket_name, "manifests/staging/deployed.json") == raw.encode()


def test_failure_midway_marks_failed_and_not_started_and_lists_what_is_deployed(env, world, moto_aws):
    ctx = virtual_context(world)
    world.stack_latency[env.stack_name("storage")] = 50.0  # virtual seconds
    world.failures[env.stack_name("data")] = ("Topic", "Resource handler returned message: \"Access Denied\"")
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 1
    document, raw = deployed_document(env)
    stacks = by_name(document)
    assert document["complete"] is False
    assert document["failed_stacks"] == [env.stack_name("data")]
    not_started = [env.stack_name(layer) for layer in ("api", "compute", "monitoring", "workflow")]
    assert document["not_started_stacks"] == not_started
    data = stacks[env.stack_name("data")]
    assert data["status"] == "ROLLBACK_COMPLETE" and data["run_result"] == "failed"
    assert "root cause: Topic (AWS::SNS::Topic) CREATE_FAILED" in data["run_detail"]
    for name in not_started:
        assert stacks[name]["run_result"] == "not started"
        assert stacks[name]["status"] == "NOT_DEPLOYED" and stacks[name]["resources"] == []
        assert stacks[name]["stack_id"] is None and stacks[name]["template_sha256"] is None
    for layer in ("artifacts", "network", "security", "storage", "messaging"):
        entry = stacks[env.stack_name(layer)]
        assert entry["status"] == "CREATE_COMPLETE" and entry["run_result"] == "deployed"
        assert entry["resources"] == resources_in_fake(world, env.region, env.stack_name(layer))
        assert entry["outputs"]["TopicArn" if layer != "artifacts" else "ArtifactBucketName"]["value"]
    assert s3_object(moto_aws, env.bucket_name, "manifests/staging/deployed.json") == raw.encode()


def test_failure_before_the_bucket_exists_writes_only_the_local_file(env, world, moto_aws):
    world.failures[env.stack_name("artifacts")] = ("ArtifactBucket", "bucket name taken")
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    document, _ = deployed_document(env)
    artifacts = by_name(document)[env.stack_name("artifacts")]
    assert artifacts["status"] == "ROLLBACK_COMPLETE" and artifacts["run_result"] == "failed"
    assert document["failed_stacks"] == [env.stack_name("artifacts")]
    assert len(document["not_started_stacks"]) == len(document["stacks"]) - 1
    assert "resource manifest NOT published to S3, only written locally" in text
    assert "published to s3://" not in text
    assert moto_aws.list_buckets()["Buckets"] == []


def test_no_echo_parameter_value_never_appears(env, world, moto_aws):
    security = env.layers["security"]
    security.template_parameters = {"SigningKey": {"Type": "String", "NoEcho": True}}
    security.parameters = {"SigningKey": SECRET}
    security.no_echo = ["SigningKey"]
    # real CloudFormation shows an output's value in plain text even when it Refs a NoEcho parameter
    security.outputs = {"KeyEcho": {"Value": {"Fn::Sub": "key-${SigningKey}"}}}
    env.write()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    document, raw = deployed_document(env)
    assert SECRET not in raw and SECRET not in text
    stored = [s3_object(moto_aws, env.bucket_name, o["Key"]) for o in
              moto_aws.list_objects_v2(Bucket=env.bucket_name, Prefix="manifests/")["Contents"]]
    assert len(stored) == 2 and all(SECRET.encode() not in body for body in stored)
    entry = by_name(document)[env.stack_name("security")]
    assert entry["outputs"]["KeyEcho"]["value"] == "key-****"
    assert "parameters" not in entry and "SigningKey" not in raw
    assert f"WARNING {env.stack_name('security')}.outputs.KeyEcho.value contained a NoEcho parameter value" in text


class DenyingManifestPuts:
    """An S3 client that refuses writes under manifests/ (a bucket policy the deploy role lacks)."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_object(self, **kwargs):
        if kwargs["Key"].startswith("manifests/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")
        return self._client.put_object(**kwargs)


def test_publish_failure_fails_the_command_but_keeps_the_local_file(env, world, moto_aws):
    ctx = make_context(world)
    real_factory = ctx.client_factory
    ctx.client_factory = lambda service, region: (DenyingManifestPuts(real_factory(service, region))
                                                  if service == "s3" else real_factory(service, region))
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 1
    assert "=== Summary ===" in text and "deployed: " in text
    assert "error: resource manifest not complete or not published: Access Denied" in text
    document, _ = deployed_document(env)
    assert document["complete"] is True


def test_plan_status_and_outputs_do_not_write_it(env, world):
    assert run_deploy(env, world, "plan")[0] == 0
    assert run_deploy(env, world, "status")[0] == 0
    assert run_deploy(env, world, "outputs")[0] == 0
    assert not (env.build_dir / "staging" / "deployed.json").exists()


def test_an_artifact_key_holding_other_bytes_is_uploaded_again(env, world, moto_aws):
    """The plan role of a pull request may write to the artifact bucket: bytes put under a
    content-hash key that are not that content (a poisoned zip or template) must not be taken
    for the build's, whatever the key says."""
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    manifest, _ = manifest_of(env)
    artifact = manifest["artifacts"][0]
    built = (env.build_dir / env.environment / artifact["file"]).read_bytes()
    moto_aws.put_object(Bucket=env.bucket_name, Key=artifact["key"], Body=b"not the build's zip")
    code, text = run_deploy(env, world, "plan")
    assert code == 0, text
    assert s3_object(moto_aws, env.bucket_name, artifact["key"]) == built
    head = moto_aws.head_object(Bucket=env.bucket_name, Key=artifact["key"], ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(built).digest()).decode()
