"""A failed deploy is always recoverable (the first-deploy issue): what a failed first create
leaves behind, blocked stack states and `recover`, the lifecycle switch that keeps deletion
protection off until a stack exists, adopting retained resources, preflight's exit code.

All against the in-memory CloudFormation fake, which deletes by DeletionPolicy and refuses to
delete what deletion protection guards (see fake_cfn.py).
"""
from __future__ import annotations

import json

from synthetic_env import ACCOUNT, run_deploy

LIFECYCLE = "StackLifecycle"
LIFECYCLE_PARAMETER = {LIFECYCLE: {"Type": "String", "AllowedValues": ["creating", "established"], "Default": "creating"}}
ESTABLISHED = {"StackEstablished": {"Fn::Equals": [{"Ref": LIFECYCLE}, "established"]}}


def status(world, env, layer):
    return world.cfn(env.region).stack(env.stack_name(layer)).status


def protected_table(name: str, protection, policy="RetainExceptOnCreate") -> dict:
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": policy, "UpdateReplacePolicy": "Retain",
            "Properties": {"TableName": name, "DeletionProtectionEnabled": protection}}


def with_data_table(env, protection, policy="RetainExceptOnCreate", lifecycle=True):
    """The data layer gets a named table (and, optionally, the lifecycle parameter) like the build's."""
    data = env.layers["data"]
    data.resources["Table"] = protected_table(f"payments-{env.environment}-transactions", protection, policy)
    data.stateful = {"Table": "AWS::DynamoDB::Table"}
    if lifecycle:
        data.template_parameters = dict(LIFECYCLE_PARAMETER)
        data.parameters = {LIFECYCLE: "creating"}
        data.conditions = dict(ESTABLISHED)
        data.lifecycle_parameter = LIFECYCLE
    env.write()


def last_resource(env, layer):
    template = json.loads((env.build_dir / env.environment / f"{layer}.json").read_text())
    return sorted(template["Resources"])[-1]


# --- a failed first create leaves nothing that blocks the next one --------------------------------------


def test_failed_first_create_leaves_no_retained_resource_and_the_next_deploy_succeeds(env, world):
    with_data_table(env, {"Fn::If": ["StackEstablished", True, False]})
    world.failures[env.stack_name("data")] = (last_resource(env, "data"), "Resource handler returned message: boom")
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert status(world, env, "data") == "ROLLBACK_COMPLETE"  # not ROLLBACK_FAILED: protection was off
    assert ("AWS::DynamoDB::Table", "payments-staging-transactions") not in world.named  # not retained
    del world.failures[env.stack_name("data")]
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    data = world.cfn(env.region).stack(env.stack_name("data"))
    assert data.status == "UPDATE_COMPLETE" and data.parameters[LIFECYCLE] == "established"
    assert "StackLifecycle -> established (1 resource(s) modified in place)" in text
    assert world.named[("AWS::DynamoDB::Table", "payments-staging-transactions")] == data.name


def test_protection_from_the_first_create_would_strand_the_stack(env, world):
    """Proof the fake catches what the lifecycle switch prevents: the rollback cannot delete."""
    with_data_table(env, True, lifecycle=False)
    world.failures[env.stack_name("data")] = (last_resource(env, "data"), "boom")
    assert run_deploy(env, world, "deploy", "--yes")[0] == 1
    assert status(world, env, "data") == "ROLLBACK_FAILED"


def test_every_execution_asks_for_retain_except_on_create_so_even_retain_resources_go(env, world):
    with_data_table(env, False, policy="Retain", lifecycle=False)
    world.failures[env.stack_name("data")] = (last_resource(env, "data"), "boom")
    assert run_deploy(env, world, "deploy", "--yes")[0] == 1
    assert all(call["RetainExceptOnCreate"] is True for call in world.calls_of("execute_change_set"))
    assert ("AWS::DynamoDB::Table", "payments-staging-transactions") not in world.named


def test_a_name_an_earlier_deployment_kept_makes_the_create_fail_in_the_fake(env, world):
    world.named[("AWS::DynamoDB::Table", "payments-staging-transactions")] = None  # kept by an earlier destroy
    with_data_table(env, False)
    code, text = run_deploy(env, world, "deploy", "--yes")  # (the table is not in moto: the plan cannot see it)
    assert code == 1
    assert "Table (AWS::DynamoDB::Table) CREATE_FAILED: payments-staging-transactions already exists" in text


# --- blocked states stop the deploy with the way out; recover takes it ----------------------------------


def test_rollback_failed_stops_with_the_recovery_command_and_recover_removes_the_cause(env, world):
    with_data_table(env, True, lifecycle=False)  # protected from the first create
    world.failures[env.stack_name("data")] = (last_resource(env, "data"), "boom")
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1 and status(world, env, "data") == "ROLLBACK_FAILED"
    assert "recover with `make recover ENV=staging STACK=payments-staging-data`" in text
    del world.failures[env.stack_name("data")]
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 2
    assert "ROLLBACK_FAILED" in text and "make recover ENV=staging STACK=payments-staging-data" in text
    assert world.calls_of("delete_stack") == [] and world.calls_of("create_change_set") == []
    code, text = run_deploy(env, world, "recover", "--stack", "data", "--yes")
    assert code == 0, text
    assert "Table (AWS::DynamoDB::Table payments-staging-transactions) DELETE_FAILED: Resource cannot be deleted" in text
    assert "turn off deletion protection of table payments-staging-transactions" in text
    assert [c for op, _, c in world.calls if op == "update_table"] == [{"PhysicalResourceId": "payments-staging-transactions"}]
    assert "payments-staging-data deleted: the next deploy creates it again" in text
    with_data_table(env, {"Fn::If": ["StackEstablished", True, False]})
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text


def _delete_failed(dev_env, world):
    """A dev stack whose table refuses deletion (protection without the lifecycle switch)."""
    with_data_table(dev_env, True, policy="Delete", lifecycle=False)
    assert run_deploy(dev_env, world, "deploy", "--yes")[0] == 0
    code, text = run_deploy(dev_env, world, "destroy", "--yes")
    assert code == 1
    assert status(world, dev_env, "data") == "DELETE_FAILED"
    assert "recover with `make recover ENV=dev STACK=payments-dev-data`" in text
    return text


def test_delete_failed_is_recovered_keeping_what_cannot_be_deleted(dev_env, world):
    _delete_failed(dev_env, world)
    code, text = run_deploy(dev_env, world, "destroy", "--yes")
    assert code == 2 and "make recover ENV=dev STACK=payments-dev-data" in text  # preflight refuses
    code, text = run_deploy(dev_env, world, "recover", "--stack", "payments-dev-data", "--yes")
    assert code == 0, text
    (call,) = [c for c in world.calls_of("delete_stack") if c.get("RetainResources")]
    assert call["RetainResources"] == ["Table"]
    assert "keeping Table (AWS::DynamoDB::Table payments-dev-transactions) DELETE_FAILED" in text
    assert "kept in the account, no longer managed: Table" in text
    assert world.named[("AWS::DynamoDB::Table", "payments-dev-transactions")] is None
    code, text = run_deploy(dev_env, world, "destroy", "--yes")
    assert code == 0, text


def test_delete_failed_can_be_force_deleted(dev_env, world):
    _delete_failed(dev_env, world)
    code, text = run_deploy(dev_env, world, "recover", "--stack", "data", "--force-delete", "--yes")
    assert code == 0, text
    assert [c["DeletionMode"] for c in world.calls_of("delete_stack") if c.get("DeletionMode")] == ["FORCE_DELETE_STACK"]


def test_recover_asks_first_and_does_nothing_without_confirmation(dev_env, world):
    _delete_failed(dev_env, world)
    world.calls.clear()
    code, text = run_deploy(dev_env, world, "recover", "--stack", "data")
    assert code == 2 and "recover will:" in text
    assert world.calls_of("delete_stack") == []


def test_recover_of_a_healthy_stack_changes_nothing(env, world):
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    world.calls.clear()
    code, text = run_deploy(env, world, "recover", "--stack", "data", "--yes")
    assert code == 0 and "nothing to recover" in text
    assert world.calls_of("delete_stack") == [] and world.calls_of("continue_update_rollback") == []


# --- deletion protection follows the lifecycle ---------------------------------------------------------------


def test_destroy_lifts_deletion_protection_first_where_data_is_kept(env, world):
    balancer = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"LoadBalancerAttributes": [
        {"Key": "deletion_protection.enabled", "Value": {"Fn::If": ["StackEstablished", "true", "false"]}}]}}
    compute = env.layers["compute"]
    compute.resources["LoadBalancer"] = balancer
    compute.template_parameters, compute.parameters = dict(LIFECYCLE_PARAMETER), {LIFECYCLE: "creating"}
    compute.conditions, compute.lifecycle_parameter = dict(ESTABLISHED), LIFECYCLE
    env.write()
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    assert world.cfn(env.region).stack(env.stack_name("compute")).parameters[LIFECYCLE] == "established"
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0 and "unchanged: " in text  # established is what the next plan passes
    code, text = run_deploy(env, world, "destroy", "--yes")
    assert code == 0, text
    assert "[payments-staging-compute] lifting deletion protection before deleting" in text
    assert "StackLifecycle -> creating" in text


def test_a_lifecycle_switch_that_would_replace_anything_is_refused():
    from deploylib.changesets import ChangeSet
    from deploylib.lifecycle import unexpected_changes

    changes = [{"ResourceChange": {"Action": "Modify", "Replacement": "False", "LogicalResourceId": "Table",
                                   "ResourceType": "AWS::DynamoDB::Table"}},
               {"ResourceChange": {"Action": "Modify", "Replacement": "True", "LogicalResourceId": "Service",
                                   "ResourceType": "AWS::ECS::Service"}},
               {"ResourceChange": {"Action": "Add", "LogicalResourceId": "Extra", "ResourceType": "AWS::SNS::Topic"}}]
    assert unexpected_changes(ChangeSet("id", "stack", "UPDATE", changes)) == [
        "replace Service (AWS::ECS::Service)", "add Extra (AWS::SNS::Topic)"]


# --- retained resources are adopted with an IMPORT change set ----------------------------------------------


def test_retained_resources_block_the_create_and_adopt_imports_them(env, world, moto_aws):
    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    for stack in world.cfn(env.region).stacks:
        stack.termination_protection = False
    assert run_deploy(env, world, "destroy", "--yes")[0] == 0
    assert world.named[("AWS::S3::Bucket", env.bucket_name)] is None  # kept by RetainExceptOnCreate
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1
    assert f"ArtifactBucket (AWS::S3::Bucket) {env.bucket_name}" in text
    assert "make adopt ENV=staging STACK=payments-staging-artifacts" in text
    code, text = run_deploy(env, world, "adopt", "--stack", "artifacts", "--yes")
    assert code == 0, text
    (call,) = [c for c in world.calls_of("create_change_set") if c["ChangeSetType"] == "IMPORT"]
    assert call["ResourcesToImport"] == [{"ResourceType": "AWS::S3::Bucket", "LogicalResourceId": "ArtifactBucket",
                                          "ResourceIdentifier": {"BucketName": env.bucket_name}}]
    assert json.loads(call["TemplateBody"])["Resources"]["ArtifactBucket"]["DeletionPolicy"] == "RetainExceptOnCreate"
    assert status(world, env, "artifacts") == "IMPORT_COMPLETE"
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 0, text
    assert world.named[("AWS::S3::Bucket", env.bucket_name)] == env.stack_name("artifacts")


def test_import_template_leaves_out_what_refers_to_resources_not_imported():
    from deploylib.adopt import import_template

    template = {"Parameters": {"P": {"Type": "String"}}, "Outputs": {"O": {"Value": "x"}}, "Resources": {
        "Logs": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "Properties": {"BucketName": "logs"}},
        "Data": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "DependsOn": ["Role"], "Properties": {
            "BucketName": "data", "LoggingConfiguration": {"DestinationBucketName": {"Ref": "Logs"}},
            "ReplicationConfiguration": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}},
            "Tags": [{"Key": "Env", "Value": {"Ref": "P"}}]}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}}}}
    cut = import_template(template, {"Logs", "Data"})
    assert set(cut["Resources"]) == {"Logs", "Data"} and "Outputs" not in cut and cut["Parameters"] == template["Parameters"]
    data = cut["Resources"]["Data"]
    assert "ReplicationConfiguration" not in data["Properties"] and "DependsOn" not in data
    assert data["Properties"]["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": "Logs"}}
    assert data["Properties"]["Tags"] == [{"Key": "Env", "Value": {"Ref": "P"}}]


# --- preflight: the account is checked before anything is created ------------------------------------------


def test_preflight_refuses_another_account_with_exit_code_2(env, world):
    path = env.build_dir / "staging" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["preflight"]["account_id"] = "210987654321"
    path.write_text(json.dumps(manifest))
    for command in ("preflight", "plan", "deploy", "destroy"):
        code, text = run_deploy(env, world, command, "--yes")
        assert code == 2, command
        assert (f"your credentials are for account {ACCOUNT}" in text and "account_id 210987654321" in text), text
    assert world.calls_of("create_change_set") == [] and world.calls_of("delete_stack") == []


def test_preflight_passes_and_says_so(env, world):
    code, text = run_deploy(env, world, "preflight")
    assert code == 0, text
    assert "preflight passed" in text and "STATUS" in text
