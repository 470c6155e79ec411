"""Scenario tests of deploy.py against the in-memory CloudFormation fake (S3 in moto)."""
from __future__ import annotations

import hashlib
import json

import pytest
from synthetic_env import Layer, make_context, run_deploy, virtual_context

ALL_LAYERS = ["artifacts", "network", "security", "data", "storage", "messaging", "compute", "workflow",
              "api", "monitoring"]


def stack_status(world, env, layer):
    return world.cfn(env.region).stack(env.stack_name(layer)).status


def execute_order(world):
    return [kwargs["ChangeSetName"].split("/")[1] for op, _, kwargs in world.calls if op == "execute_change_set"]


def stack_of_change_set(world, change_set_arn):
    return world.cfn("eu-west-1").change_sets.get(change_set_arn)


def first_deploy(env, world):
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    return text


def test_first_deploy_creates_everything_in_dependency_order(env, world, moto_aws):
    text = first_deploy(env, world)
    for layer in ALL_LAYERS:
        assert stack_status(world, env, layer) == "CREATE_COMPLETE"
    # every stack completed only after all stacks it depends on completed
    completed_at = {}
    for stack in world.cfn(env.region).stacks:
        done = [e for e in stack.events if e["LogicalResourceId"] == stack.name and e["ResourceStatus"] == "CREATE_COMPLETE"]
        started = [e for e in stack.events if e["ResourceStatus"] == "CREATE_IN_PROGRESS"]
        completed_at[stack.name] = (started[0]["Timestamp"], done[0]["Timestamp"])
    manifest = json.loads((env.build_dir / "staging" / "manifest.json").read_text())
    for entry in manifest["stacks"]:
        for dep in entry["depends_on"]:
            assert completed_at[dep][1] <= completed_at[entry["name"]][0]
    # bootstrap by TemplateBody, everything else by TemplateURL to content-hash keys
    creates = world.calls_of("create_change_set")
    assert [c for c in creates if c["StackName"] == env.stack_name("artifacts")][0].get("TemplateBody")
    for call in creates:
        if call["StackName"] != env.stack_name("artifacts"):
            assert call["TemplateURL"].startswith(f"https://{env.bucket_name}.s3.eu-west-1.amazonaws.com/templates/")
        assert {t["Key"]: t["Value"] for t in call["Tags"]} == env.tags
    keys = {o["Key"] for o in moto_aws.list_objects_v2(Bucket=env.bucket_name)["Contents"]}
    assert any(k.startswith("functions/payment_api/") for k in keys)
    assert len([k for k in keys if k.startswith("templates/")]) == len(ALL_LAYERS) - 1
    # staging: termination protection and a stack policy protecting the stateful bucket
    artifacts = world.cfn(env.region).stack(env.stack_name("artifacts"))
    assert artifacts.termination_protection
    deny = [s for s in json.loads(artifacts.policy)["Statement"] if s["Effect"] == "Deny"][0]
    assert deny["Resource"] == ["LogicalResourceId/ArtifactBucket"]
    assert set(deny["Action"]) == {"Update:Replace", "Update:Delete"}
    review = json.loads((env.build_dir / "staging" / "review.json").read_text())
    assert review["stacks"][0]["console_url"].startswith(
        "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/changesets/changes?stackId=arn%3Aaws%3Acloudformation")
    assert "FromNetwork AWS::SSM::Parameter CREATE_COMPLETE" in text  # resource events are streamed


def test_no_op_redeploy_skips_without_change_sets(env, world, moto_aws):
    first_deploy(env, world)
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    assert world.calls_of("create_change_set") == []
    assert world.calls_of("execute_change_set") == []
    assert "unchanged: " in text and "artifacts: 0 uploaded, 10 already in" in text


def test_change_set_without_changes_is_deleted_not_an_error(env, world):
    env.layers["security"].template_parameters = {"SigningKey": {"Type": "String", "NoEcho": True}}
    env.layers["security"].parameters = {"SigningKey": "s3cr3t-value"}
    env.layers["security"].no_echo = ["SigningKey"]
    env.write()
    first_deploy(env, world)
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    # NoEcho parameters cannot be compared, so a change set is made, comes back empty and is deleted
    created = world.calls_of("create_change_set", env.stack_name("security"))
    assert len(created) == 1
    assert world.calls_of("delete_change_set")
    assert world.cfn(env.region).change_sets == {} or all(
        cs.stack.name != env.stack_name("security") or cs.executed for cs in world.cfn(env.region).change_sets.values())
    assert "no-op: payments-staging-security" in text
    assert "s3cr3t-value" not in text
    assert "s3cr3t-value" not in (env.build_dir / "staging" / "review.json").read_text()
    assert "s3cr3t-value" not in (env.build_dir / "staging" / "plan.json").read_text()


def test_one_changed_stack_only_gets_a_change_set(env, world):
    first_deploy(env, world)
    env.layers["api"].resources["Dlq"] = {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "x"}}
    env.write()
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    assert [c["StackName"] for c in world.calls_of("create_change_set")] == [env.stack_name("api")]
    review = json.loads((env.build_dir / "staging" / "review.json").read_text())
    api = [s for s in review["stacks"] if s["stack"] == env.stack_name("api")][0]
    assert api["action"] == "update"
    assert api["added"] == [{"logical_id": "Dlq", "type": "AWS::SNS::Topic"}]
    assert "deployed: payments-staging-api" in text


def test_capabilities_are_per_template(env, world):
    env.layers["compute"].resources["Role"] = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    env.layers["compute"].capabilities = ["CAPABILITY_IAM"]
    env.write()
    first_deploy(env, world)
    by_stack = {c["StackName"]: c for c in world.calls_of("create_change_set")}
    assert by_stack[env.stack_name("compute")]["Capabilities"] == ["CAPABILITY_IAM"]
    assert "Capabilities" not in by_stack[env.stack_name("network")]
    review = json.loads((env.build_dir / "staging" / "review.json").read_text())
    assert review["stacks"][0]["action"] == "create"


def test_transform_needs_auto_expand_and_the_manifest_capabilities_are_passed(env, world):
    # the data stack's Secrets Manager hosted rotation: a Transform plus the IAM it expands into
    env.layers["data"].resources["Role"] = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    env.layers["data"].capabilities = ["CAPABILITY_IAM"]
    env.write()
    template_path = env.build_dir / "staging" / "data.json"
    data = json.loads(template_path.read_text())
    data["Transform"] = "AWS::SecretsManager-2024-09-16"
    _rewrite_template(env, "data", data)
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert "Requires capabilities : [CAPABILITY_AUTO_EXPAND]" in text

    _rewrite_template(env, "data", data, capabilities=["CAPABILITY_AUTO_EXPAND", "CAPABILITY_IAM"])
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    by_stack = {c["StackName"]: c for c in world.calls_of("create_change_set")}
    assert by_stack[env.stack_name("data")]["Capabilities"] == ["CAPABILITY_AUTO_EXPAND", "CAPABILITY_IAM"]


def _rewrite_template(env, layer, template, capabilities=None):
    """Replaces a built template (and its hash) the way build.py would have written it."""
    body = json.dumps(template, indent=1, sort_keys=True).encode()
    (env.build_dir / env.environment / f"{layer}.json").write_bytes(body)
    path = env.build_dir / env.environment / "manifest.json"
    manifest = json.loads(path.read_text())
    for stack in manifest["stacks"]:
        if stack["layer"] == layer:
            digest = hashlib.sha256(body).hexdigest()
            stack.update(sha256=digest, size_bytes=len(body), template_key=f"templates/{layer}/{digest}.json")
            if capabilities is not None:
                stack["capabilities"] = capabilities
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _add_table(env, name="payments-staging-transactions"):
    env.layers["data"].resources["Table"] = {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": name}}
    env.layers["data"].stateful = {"Table": "AWS::DynamoDB::Table"}
    env.write()


def test_replacement_of_stateful_resource_is_blocked_then_allowed(env, world):
    _add_table(env)
    first_deploy(env, world)
    _add_table(env, "payments-staging-transactions-v2")
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert "Table (AWS::DynamoDB::Table) would be REPLACED" in text and "TableName" in text
    assert "--allow-replace Table" in text
    assert world.calls_of("execute_change_set") == []
    review = json.loads((env.build_dir / "staging" / "review.json").read_text())
    data = [s for s in review["stacks"] if s["stack"] == env.stack_name("data")][0]
    assert data["replacements"][0]["caused_by"] == ["TableName"]
    assert data["guard_findings"][0]["logical_id"] == "Table"

    code, text = run_deploy(env, world, "deploy", "--yes", "--allow-replace", "Table")
    assert code == 0, text
    stack = world.cfn(env.region).stack(env.stack_name("data"))
    assert stack.physical_ids["Table"] == "payments-staging-transactions-v2"
    # the stack policy was relaxed for Table during the run and restored afterwards
    policies = [json.loads(c["StackPolicyBody"]) for c in world.calls_of("set_stack_policy", env.stack_name("data"))]
    assert any("LogicalResourceId/Table" not in json.dumps(p) for p in policies)
    assert "LogicalResourceId/Table" in stack.policy


def test_stack_policy_alone_would_have_refused_the_replacement(env, world):
    """Proves the fake enforces policies, so the previous test's relaxation is meaningful."""
    _add_table(env)
    first_deploy(env, world)
    _add_table(env, "payments-staging-transactions-v2")
    from deploylib import protection
    original = protection.set_policy
    protection.set_policy = lambda ctx, spec, policy: None  # never relax the policy during the run
    try:
        code, text = run_deploy(env, world, "deploy", "--yes", "--allow-replace", "Table")
    finally:
        protection.set_policy = original
    assert code == 1
    assert "Action denied by stack policy" in text


def test_export_still_imported_stops_before_execution(env, world):
    first_deploy(env, world)
    env.layers["network"].outputs = {"TopicArn": {"Value": {"Fn::GetAtt": ["Topic", "TopicName"]},
                                                  "Export": {"Name": env.export_name("network")}}}
    env.write()
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert "export payments-staging-network-TopicArn is still imported by payments-staging-compute, payments-staging-data" in text
    assert "Two-step way out" in text
    assert world.calls_of("execute_change_set") == []


def test_removed_export_still_imported_is_blocked(env, world):
    first_deploy(env, world)
    env.layers["storage"].outputs = {"TopicArn": {"Value": {"Ref": "Topic"}}}
    env.write()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert "payments-staging-storage-TopicArn is still imported by payments-staging-compute and removed" in text


def test_failure_midway_reports_root_cause_and_summary(env, world):
    ctx = virtual_context(world)
    world.stack_latency[env.stack_name("storage")] = 50.0  # virtual seconds: still running when data fails
    world.failures[env.stack_name("data")] = ("Topic", "Resource handler returned message: \"Access Denied\"")
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 1
    assert stack_status(world, env, "data") == "ROLLBACK_COMPLETE"
    assert ("root cause: Topic (AWS::SNS::Topic) CREATE_FAILED: Resource handler returned message: \"Access Denied\""
            in text)
    # the slower sibling already running finished; nothing new started after the failure
    assert stack_status(world, env, "storage") == "CREATE_COMPLETE"
    summary = text.split("=== Summary ===")[1]
    assert "failed: payments-staging-data" in summary
    assert "not started: payments-staging-api, payments-staging-compute, payments-staging-monitoring, payments-staging-workflow" in summary
    assert "deployed: payments-staging-artifacts" in summary


def test_rollback_complete_stack_is_recreated_when_ours(env, world):
    world.failures[env.stack_name("data")] = ("Topic", "boom")
    assert run_deploy(env, world, "deploy", "--yes")[0] == 1
    del world.failures[env.stack_name("data")]
    code, text = run_deploy(env, world, "plan")
    assert code == 0 and "RECREATE" in text
    assert stack_status(world, env, "data") == "ROLLBACK_COMPLETE"  # plan changes nothing
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    assert "ROLLBACK_COMPLETE and ours, holding nothing: deleting it to create it again" in text
    assert stack_status(world, env, "data") == "CREATE_COMPLETE"
    assert stack_status(world, env, "monitoring") == "CREATE_COMPLETE"


def test_rollback_complete_stack_not_ours_is_left_alone(env, world):
    world.failures[env.stack_name("data")] = ("Topic", "boom")
    run_deploy(env, world, "deploy", "--yes")
    world.cfn(env.region).stack(env.stack_name("data")).tags["ManagedBy"] = "someone-else"
    del world.failures[env.stack_name("data")]
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert "does not carry our tags" in text
    assert stack_status(world, env, "data") == "ROLLBACK_COMPLETE"
    assert world.calls_of("delete_stack") == []


def test_update_rollback_failed_stops_with_recovery_command_and_recover_skips_what_failed(env, world):
    first_deploy(env, world)
    env.layers["api"].resources["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "new"}}
    env.write()
    world.failures[env.stack_name("api")] = ("Topic", "boom")
    world.rollback_fails.add(env.stack_name("api"))
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1 and stack_status(world, env, "api") == "UPDATE_ROLLBACK_FAILED"
    assert "recover with `make recover ENV=staging STACK=payments-staging-api`" in text
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 2  # refused by preflight before anything is planned
    assert "payments-staging-api" in text and "make recover ENV=staging STACK=payments-staging-api" in text
    assert world.calls_of("create_change_set") == []
    code, text = run_deploy(env, world, "recover", "--stack", "api", "--yes")
    assert code == 0, text
    (call,) = world.calls_of("continue_update_rollback")
    assert call["ResourcesToSkip"] == ["Topic"]
    assert stack_status(world, env, "api") == "UPDATE_ROLLBACK_COMPLETE"
    assert "Topic kept their current state, which may differ from the template" in text
    del world.failures[env.stack_name("api")]
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text


def test_throttling_is_retried_with_backoff(env, world):
    world.throttle_first_n = 8
    sleeps = []
    ctx = make_context(world, sleep=lambda s: sleeps.append(s))
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 0, text
    assert world.throttle_first_n == 0
    assert ctx.throttle_retries() == 8
    backoff_sleeps = [s for s in sleeps if s != ctx.poll_seconds]
    assert len(set(backoff_sleeps)) > 1  # jittered, not a constant delay


def test_plan_executes_nothing_and_execute_runs_the_reviewed_change_sets(env, world):
    first_deploy(env, world)
    env.layers["workflow"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.calls.clear()
    code, text = run_deploy(env, world, "plan")
    assert code == 0, text
    assert world.calls_of("execute_change_set") == []
    plan = json.loads((env.build_dir / "staging" / "plan.json").read_text())
    change_set_id = plan["stacks"][env.stack_name("workflow")]["change_set_id"]
    assert world.cfn(env.region).change_sets[change_set_id].execution_status == "AVAILABLE"
    code, text = run_deploy(env, world, "execute")
    assert code == 0, text
    assert [c["ChangeSetName"] for c in world.calls_of("execute_change_set")] == [change_set_id]
    assert "Extra" in world.cfn(env.region).stack(env.stack_name("workflow")).template["Resources"]
    # executing again: the change set was used up
    code, text = run_deploy(env, world, "execute")
    assert code == 1 and "REFUSED payments-staging-workflow: its change set is EXECUTE_COMPLETE" in text


def test_execute_refuses_stacks_changed_since_the_plan(env, world):
    first_deploy(env, world)
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    assert run_deploy(env, world, "plan")[0] == 0
    env.layers["api"].resources["Other"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.calls.clear()
    code, text = run_deploy(env, world, "execute")
    assert code == 1
    assert "REFUSED payments-staging-api: template changed since the plan" in text
    assert world.calls_of("execute_change_set") == []


def test_execute_without_plan_and_missing_manifest_explain_themselves(env, world, tmp_path):
    code, text = run_deploy(env, world, "execute")
    assert code == 2 and "run `make plan ENV=staging` first" in text
    (env.build_dir / "staging" / "manifest.json").unlink()
    code, text = run_deploy(env, world, "plan")
    assert code == 2 and "run `make build ENV=staging` first" in text


def test_tampered_template_is_refused(env, world):
    (env.build_dir / "staging" / "network.json").write_text("{}")
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 2 and "network.json" in text and "make build" in text
    assert world.calls_of("execute_change_set") == []


def test_deploy_without_terminal_or_yes_executes_nothing(env, world):
    import io
    code, text = run_deploy(env, world, "deploy", stdin=io.StringIO())
    assert code == 2 and "--yes (YES=1) not given" in text
    assert world.calls_of("execute_change_set") == []


def test_stack_in_progress_is_waited_for(env, world):
    ctx = virtual_context(world)
    assert run_deploy(env, world, "deploy", "--yes", context=ctx)[0] == 0
    world.stack_latency[env.stack_name("api")] = 50.0  # virtual seconds: only waiting moves time
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    cfn = world.cfn(env.region)
    # someone else's update is running when we start
    assert run_deploy(env, world, "plan", context=ctx)[0] == 0
    plan = json.loads((env.build_dir / "staging" / "plan.json").read_text())
    cfn.execute_change_set(ChangeSetName=plan["stacks"][env.stack_name("api")]["change_set_id"])
    assert cfn.stack(env.stack_name("api")).status == "UPDATE_IN_PROGRESS"
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 0, text
    assert "UPDATE_IN_PROGRESS: waiting for it to finish first" in text
    assert cfn.stack(env.stack_name("api")).status == "UPDATE_COMPLETE"


def test_per_stack_timeout(env, world):
    now = [0.0]
    world.clock = lambda: now[0]
    world.stack_latency[env.stack_name("network")] = 10_000.0  # never finishes within 30 minutes

    def sleep(seconds):
        now[0] += max(seconds, 1.0)

    ctx = make_context(world, sleep=sleep, monotonic=lambda: now[0], poll_seconds=30)
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 1
    assert "still CREATE_IN_PROGRESS after 30 minutes" in text
    assert "failed: payments-staging-network" in text


def test_rollback_triggers_use_monitoring_alarms_once_they_exist(env, world):
    alarm_output = {"Api5xxAlarmArn": {"Value": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx"}}
    env.layers["monitoring"].outputs = alarm_output
    for layer in ("compute", "api"):
        env.layers[layer].rollback_alarms = [{"stack": env.stack_name("monitoring"), "output": "Api5xxAlarmArn"}]
    env.write()
    first_deploy(env, world)
    # no alarms yet: an explicit empty list (omitting it would keep a stack's earlier triggers)
    assert all(c["RollbackConfiguration"] == {"RollbackTriggers": []} for c in world.calls_of("create_change_set"))
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.calls.clear()
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    call = world.calls_of("create_change_set", env.stack_name("api"))[0]
    assert call["RollbackConfiguration"]["RollbackTriggers"] == [
        {"Arn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx", "Type": "AWS::CloudWatch::Alarm"}]


def test_review_lists_iam_security_groups_and_parameter_changes(env, world):
    env.layers["compute"].template_parameters = {"Concurrency": {"Type": "String"}}
    env.layers["compute"].parameters = {"Concurrency": "5"}
    env.layers["compute"].resources["Sg"] = {"Type": "AWS::EC2::SecurityGroup",
                                             "Properties": {"GroupDescription": "app", "Port": {"Ref": "Concurrency"}}}
    env.write()
    first_deploy(env, world)
    env.layers["compute"].parameters = {"Concurrency": "50"}
    env.layers["compute"].resources["Role"] = {"Type": "AWS::IAM::Role", "Properties": {}}
    env.layers["compute"].capabilities = ["CAPABILITY_IAM"]
    env.write()
    code, text = run_deploy(env, world, "plan")
    assert code == 0, text
    review = json.loads((env.build_dir / "staging" / "review.json").read_text())
    compute = [s for s in review["stacks"] if s["stack"] == env.stack_name("compute")][0]
    assert compute["parameter_changes"] == [{"name": "Concurrency", "old": "5", "new": "50", "no_echo": False}]
    assert [(c["logical_id"], c["action"], c["source"]) for c in compute["iam_changes"]] == [("Role", "Add", "template")]
    assert [(c["logical_id"], c["action"], c["property"], c["changes"], c["source"])
            for c in compute["security_group_changes"]] == [("Sg", "Modify", "Port", ["5 -> 50"], "change set")]
    assert "parameter Concurrency: '5' -> '50'" in text
    assert "IAM/policy: Add Role AWS::IAM::Role (from the template)" in text
    assert "Security group: Modify Sg AWS::EC2::SecurityGroup: Port (from the change set)" in text


def test_destroy_dev_in_reverse_order_empties_and_deletes_the_artifact_bucket(dev_env, world, moto_aws):
    assert run_deploy(dev_env, world, "deploy", "--yes")[0] == 0
    bucket = dev_env.bucket_name
    # a second version of one object and a delete marker: every version must go
    moto_aws.put_object(Bucket=bucket, Key="notes.txt", Body=b"one")
    moto_aws.put_object(Bucket=bucket, Key="notes.txt", Body=b"two")
    moto_aws.delete_object(Bucket=bucket, Key="notes.txt")
    code, text = run_deploy(dev_env, world, "destroy", "--yes")
    assert code == 0, text
    deletes = [c["StackName"].split("/")[1] for c in world.calls_of("delete_stack")]
    assert deletes[0] == dev_env.stack_name("monitoring") and deletes[-1] == dev_env.stack_name("artifacts")
    assert f"emptying s3://{bucket}: " in text and f"s3://{bucket} empty (" in text
    assert bucket not in {b["Name"] for b in moto_aws.list_buckets()["Buckets"]}
    assert "retained resources that remain" not in text
    code, text = run_deploy(dev_env, world, "status")
    assert text.count("NOT DEPLOYED") == len(ALL_LAYERS)


def test_destroy_never_empties_a_retained_bucket(env, world, moto_aws):
    first_deploy(env, world)
    moto_aws.put_object(Bucket=env.bucket_name, Key="kept.txt", Body=b"data")
    for stack in world.cfn(env.region).stacks:
        stack.termination_protection = False
    code, text = run_deploy(env, world, "destroy", "--yes")
    assert code == 0, text
    assert "emptying" not in text
    assert moto_aws.get_object(Bucket=env.bucket_name, Key="kept.txt")["Body"].read() == b"data"
    assert (f"ArtifactBucket ({env.bucket_name}) kept by DeletionPolicy RetainExceptOnCreate" in text)


def test_destroy_prod_needs_force_and_turns_protection_off(tmp_path, world):
    from synthetic_env import SyntheticEnvironment, standard_layers
    prod = SyntheticEnvironment(tmp_path, "prod")
    standard_layers(prod)
    prod.write()
    assert run_deploy(prod, world, "deploy", "--yes")[0] == 0
    code, text = run_deploy(prod, world, "destroy", "--yes")
    assert code == 2 and "refusing to destroy prod without --force" in text
    assert world.calls_of("delete_stack") == []
    code, text = run_deploy(prod, world, "destroy", "--yes", "--force")
    assert code == 0, text
    assert "turning termination protection off to delete" in text


def test_status_with_drift_and_outputs(env, world):
    first_deploy(env, world)
    code, text = run_deploy(env, world, "status", "--drift")
    assert code == 0
    assert "payments-staging-api (eu-west-1): CREATE_COMPLETE" in text and "drift IN_SYNC" in text
    assert "termination protection on" in text
    code, text = run_deploy(env, world, "outputs")
    assert code == 0
    assert f"ArtifactBucketName = {env.bucket_name}  (export payments-staging-artifacts-ArtifactBucketName)" in text
    outputs = json.loads((env.build_dir / "staging" / "outputs.json").read_text())
    assert outputs[env.stack_name("artifacts")]["ArtifactBucketName"] == env.bucket_name


def _add_dr_layer(env, resources=None):
    env.add(Layer("dr", depends_on=[], region="eu-central-1", resources=resources or {}))
    env.write()


def test_other_region_stack_goes_by_template_body_in_its_own_region(env, world, moto_aws):
    _add_dr_layer(env)
    first_deploy(env, world)
    dr = env.stack_name("dr")
    assert world.cfn("eu-central-1").stack(dr).status == "CREATE_COMPLETE"
    assert all(s.name != dr for s in world.cfn("eu-west-1").stacks)
    # the artifact bucket is in eu-west-1: the DR template goes by body and is not uploaded
    create = [c for c in world.calls_of("create_change_set") if c["StackName"] == dr][0]
    assert "TemplateURL" not in create
    assert json.loads(create["TemplateBody"]) == json.loads((env.build_dir / "staging" / "dr.json").read_text())
    keys = {o["Key"] for o in moto_aws.list_objects_v2(Bucket=env.bucket_name)["Contents"]}
    assert not any(k.startswith("templates/dr/") for k in keys)
    assert any(k.startswith("templates/network/") for k in keys)
    # it needs nothing from the bucket: reviewed in the first plan, not deferred behind the bucket
    review = {s["stack"]: s for s in json.loads((env.build_dir / "staging" / "review.json").read_text())["stacks"]}
    assert review[dr]["action"] == "create" and review[env.stack_name("network")]["action"] == "deferred"
    deployed = json.loads((env.build_dir / "staging" / "deployed.json").read_text())
    assert deployed["regions"] == ["eu-central-1", "eu-west-1"]
    assert [(s["region"], s["status"]) for s in deployed["stacks"] if s["name"] == dr] == [("eu-central-1", "CREATE_COMPLETE")]

    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    assert dr in text.split("unchanged: ")[1].splitlines()[0]
    assert world.calls_of("create_change_set") == []


def test_the_fake_refuses_a_template_url_from_another_region(env, world):
    # why deploy must not pass the DR stack by URL: the fake reads a TemplateURL only in-region
    _add_dr_layer(env)
    first_deploy(env, world)
    url = f"https://{env.bucket_name}.s3.eu-west-1.amazonaws.com/templates/network/x.json"
    with pytest.raises(Exception, match="TemplateURL must reference a valid S3 object"):
        world.cfn("eu-central-1").create_change_set(StackName="other", ChangeSetName="cs", ChangeSetType="CREATE",
                                                    TemplateURL=url)


def test_other_region_template_over_the_body_limit_is_refused_before_any_call(env, world, moto_aws):
    padding = {f"Param{i}": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "x" * 1000}}
               for i in range(60)}
    _add_dr_layer(env, padding)
    size = (env.build_dir / "staging" / "dr.json").stat().st_size
    assert size > 51_200
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 2
    assert (f"payments-staging-dr: template dr.json is {size:,} bytes, over the 51,200-byte TemplateBody limit"
            in text)
    assert "region eu-central-1 differs from the artifact bucket's region eu-west-1" in text
    assert world.calls == []
    assert moto_aws.list_buckets()["Buckets"] == []


def test_template_over_the_body_limit_in_the_bucket_region_goes_by_url(env, world):
    padding = {f"Param{i}": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "x" * 1000}}
               for i in range(60)}
    env.layers["network"].resources.update(padding)
    env.write()
    first_deploy(env, world)
    create = [c for c in world.calls_of("create_change_set") if c["StackName"] == env.stack_name("network")][0]
    assert "TemplateURL" in create and "TemplateBody" not in create


def test_destroy_empties_again_when_late_access_logs_arrive(dev_env, world, moto_aws):
    assert run_deploy(dev_env, world, "deploy", "--yes")[0] == 0
    delete_bucket = world.on_resource_deleting
    late = {"delivered": False}

    def late_log_delivery(region, resource_type, physical_id):
        if resource_type == "AWS::S3::Bucket" and not late["delivered"]:
            late["delivered"] = True  # a log object of the emptying requests lands after them
            moto_aws.put_object(Bucket=physical_id, Key="logs/late.log", Body=b"GET /")
        return delete_bucket(region, resource_type, physical_id)

    world.on_resource_deleting = late_log_delivery
    code, text = run_deploy(dev_env, world, "destroy", "--yes")
    assert code == 0, text
    assert "a bucket received objects after it was emptied: emptying again" in text
    assert dev_env.bucket_name not in {b["Name"] for b in moto_aws.list_buckets()["Buckets"]}


def test_a_composite_alarm_trigger_is_sent_with_its_own_type(env, world):
    # past 10 functions the Lambda alarms are composite alarms: CloudFormation needs the type
    arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:lambda-errors"
    env.layers["monitoring"].outputs = {"LambdaErrorsAlarmArn": {"Value": arn}}
    env.layers["api"].rollback_alarms = [{"stack": env.stack_name("monitoring"), "output": "LambdaErrorsAlarmArn",
                                          "type": "AWS::CloudWatch::CompositeAlarm"}]
    env.write()
    first_deploy(env, world)
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.calls.clear()
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    call = world.calls_of("create_change_set", env.stack_name("api"))[0]
    assert call["RollbackConfiguration"]["RollbackTriggers"] == [{"Arn": arn, "Type": "AWS::CloudWatch::CompositeAlarm"}]


def test_execute_creates_deferred_stacks_whose_template_is_the_reviewed_one(env, world):
    # A first plan can create change sets only for stacks whose imports exist: the rest are
    # deferred. execute gives them their change sets once their producers are deployed, because
    # their templates are the reviewed build's (the pipeline's deploy job runs plan, then execute).
    code, text = run_deploy(env, world, "plan")
    assert code == 0, text
    plan = json.loads((env.build_dir / "staging" / "plan.json").read_text())
    deferred = [name for name, saved in plan["stacks"].items() if saved["action"] == "deferred"]
    assert deferred, "a first plan defers the stacks that import exports not deployed yet"
    code, text = run_deploy(env, world, "execute")
    assert code == 0, text
    for layer in ALL_LAYERS:
        assert stack_status(world, env, layer) == "CREATE_COMPLETE"


def test_execute_gives_no_change_set_to_a_deferred_stack_whose_template_was_not_reviewed(env, world):
    from deploylib.executor import Executor
    from deploylib.manifest import load_manifest
    from deploylib.output import Printer
    from deploylib.planner import Planner
    from deploylib.plans import Action, Label, StackPlan

    manifest = load_manifest(env.build_dir, "staging")
    spec = manifest.by_name[env.stack_name("compute")]
    executor = Executor(Planner(make_context(world), manifest, Printer()))
    world.calls.clear()
    outcome = executor.execute_stack(StackPlan(spec, Action.DEFERRED), reviewed_templates={spec.name: "0" * 64})
    assert (outcome.ok, outcome.label) == (False, Label.NEEDS_PLAN)
    assert "not the reviewed one" in outcome.detail
    assert world.calls_of("create_change_set") == []
