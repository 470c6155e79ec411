"""The CloudFormation behaviour the emulator adds to moto, one behaviour per test."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from cfn_helpers import create_stack, events, resource_statuses, template, unique, update_stack

from templates_src.compute_functions import POWERTOOLS_LAYER_SSM_PATH

QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {}}


def exporting_template(value_suffix: str = "", export: str = "shared-QueueArn") -> str:
    return template(
        {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"shared-queue{value_suffix}"}}},
        {"QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}, "Export": {"Name": export}}},
    )


def importing_template(export: str = "shared-QueueArn") -> str:
    return template({"Param": {"Type": "AWS::SSM::Parameter", "Properties": {
        "Type": "String", "Value": {"Fn::ImportValue": export}}}})


# ---- validation -----------------------------------------------------------------------------------
def test_unknown_property_fails_the_resource_and_rolls_back(emu, cfn):
    name = unique("unknown-prop")
    body = template({
        "First": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{name}-first"}},
        "Second": {"Type": "AWS::SQS::Queue", "DependsOn": "First",
                   "Properties": {"QueueName": f"{name}-second", "VisibilityTimout": 30}},
    })
    create_stack(cfn, name, body, expect="ROLLBACK_COMPLETE")
    failed = [e for e in events(cfn, name) if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed[0]["LogicalResourceId"] == "Second"
    assert failed[0]["ResourceStatusReason"] == "Encountered unsupported property VisibilityTimout"
    # the resource created before the failure was deleted by the rollback
    assert resource_statuses(cfn, name)["First"] == "DELETE_COMPLETE"
    assert not emu.client("sqs").list_queues(QueueNamePrefix=name).get("QueueUrls")
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert "The following resource(s) failed to create: [Second]" in [
        e for e in events(cfn, name) if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"][0]["ResourceStatusReason"]
    assert "Outputs" not in stack


def test_missing_required_and_nested_unknown_properties_fail(cfn):
    name = unique("required")
    create_stack(cfn, name, template({"Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}}}),
        expect="ROLLBACK_COMPLETE")
    reason = [e for e in events(cfn, name) if e["ResourceStatus"] == "CREATE_FAILED"][0]["ResourceStatusReason"]
    assert reason == "Properties validation failed for resource Table with message: #: required key [KeySchema] not found"
    name = unique("nested")
    create_stack(cfn, name, template({"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {
        "VersioningConfiguration": {"Status": "Enabled", "Mfa": "x"}}}}), expect="ROLLBACK_COMPLETE")
    reason = [e for e in events(cfn, name) if e["ResourceStatus"] == "CREATE_FAILED"][0]["ResourceStatusReason"]
    assert "#/VersioningConfiguration: extraneous key [Mfa] is not permitted" in reason


def test_template_errors_are_refused_synchronously(cfn):
    with pytest.raises(ClientError, match=r"Unrecognized resource types: \[AWS::SQS::Qeueu\]"):
        cfn.create_change_set(StackName=unique("t"), ChangeSetName="c", ChangeSetType="CREATE",
                              TemplateBody=template({"Q": {"Type": "AWS::SQS::Qeueu"}}))
    with pytest.raises(ClientError, match=r"Unresolved resource dependencies \[Nope\]"):
        cfn.create_change_set(StackName=unique("t"), ChangeSetName="c", ChangeSetType="CREATE",
                              TemplateBody=template({"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Nope"}}}}))
    with pytest.raises(ClientError, match="does not support attribute type Nonsense"):
        cfn.create_change_set(StackName=unique("t"), ChangeSetName="c", ChangeSetType="CREATE",
                              TemplateBody=template({"Q": QUEUE}, {"O": {"Value": {"Fn::GetAtt": ["Q", "Nonsense"]}}}))
    with pytest.raises(ClientError, match=r"Parameter 'Lifecycle' must be one of AllowedValues"):
        cfn.create_change_set(StackName=unique("t"), ChangeSetName="c", ChangeSetType="CREATE",
                              TemplateBody=template({"Q": QUEUE}, Parameters={"Lifecycle": {"Type": "String", "AllowedValues": ["a", "b"]}}),
                              Parameters=[{"ParameterKey": "Lifecycle", "ParameterValue": "c"}])
    with pytest.raises(ClientError, match=r"Requires capabilities : \[CAPABILITY_NAMED_IAM\]"):
        cfn.create_change_set(StackName=unique("t"), ChangeSetName="c", ChangeSetType="CREATE",
                              TemplateBody=template({"R": {"Type": "AWS::IAM::Role", "Properties": {
                                  "RoleName": "x", "AssumeRolePolicyDocument": {}}}}))


# ---- exports and imports ------------------------------------------------------------------------------
def test_missing_export_fails_the_change_set(cfn):
    change_set = cfn.create_change_set(StackName=unique("importer"), ChangeSetName="c", ChangeSetType="CREATE",
                                       TemplateBody=importing_template("nobody-exports-this"))
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    assert described["Status"] == "FAILED"
    assert described["StatusReason"] == "No export named nobody-exports-this found."
    assert described["ExecutionStatus"] == "UNAVAILABLE"


def test_change_set_stack_registers_outputs_exports_and_imports(emu, cfn):
    create_stack(cfn, "exporter", exporting_template())
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    assert exports["shared-QueueArn"].endswith(":shared-queue")
    outputs = cfn.describe_stacks(StackName="exporter")["Stacks"][0]["Outputs"]
    assert outputs == [{"OutputKey": "QueueArn", "OutputValue": exports["shared-QueueArn"], "ExportName": "shared-QueueArn"}]
    with pytest.raises(ClientError, match="is not imported by any stack"):
        cfn.list_imports(ExportName="shared-QueueArn")
    create_stack(cfn, "importer", importing_template())
    assert cfn.list_imports(ExportName="shared-QueueArn")["Imports"] == ["importer"]
    parameter = emu.client("ssm").describe_parameters()["Parameters"][0]["Name"]
    assert emu.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"] == exports["shared-QueueArn"]


def test_delete_of_an_exporting_stack_in_use_fails(cfn):
    create_stack(cfn, "exporter", exporting_template())
    create_stack(cfn, "importer", importing_template())
    cfn.delete_stack(StackName="exporter")
    stack = cfn.describe_stacks(StackName="exporter")["Stacks"][0]
    assert stack["StackStatus"] == "DELETE_FAILED"
    assert stack["StackStatusReason"] == "Export shared-QueueArn cannot be deleted as it is in use by importer"
    # the exporter's resources are untouched and the export still exists
    assert resource_statuses(cfn, "exporter") == {"Queue": "CREATE_COMPLETE"}
    assert [e["Name"] for e in cfn.list_exports()["Exports"]] == ["shared-QueueArn"]
    # once the importer is gone, the exporter can go
    cfn.delete_stack(StackName="importer")
    cfn.delete_stack(StackName="exporter")
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName="exporter")


def test_update_changing_an_export_in_use_rolls_back(cfn):
    create_stack(cfn, "exporter", exporting_template())
    create_stack(cfn, "importer", importing_template())
    before = cfn.get_template(StackName="exporter")["TemplateBody"]
    _, stack = update_stack(cfn, "exporter", exporting_template("-renamed"), expect="UPDATE_ROLLBACK_COMPLETE")
    reasons = [e.get("ResourceStatusReason", "") for e in events(cfn, "exporter") if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"]
    assert reasons == ["Cannot update export shared-QueueArn as it is in use by importer."]
    assert cfn.get_template(StackName="exporter")["TemplateBody"] == before
    assert stack["Outputs"][0]["OutputValue"].endswith(":shared-queue")
    # removing the export fails the same way
    update_stack(cfn, "exporter", template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "shared-queue"}}}),
                 expect="UPDATE_ROLLBACK_COMPLETE", change_set_name="remove")
    reasons = [e.get("ResourceStatusReason", "") for e in events(cfn, "exporter") if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"]
    assert reasons[-1] == "Cannot delete export shared-QueueArn as it is in use by importer."


# ---- change sets ------------------------------------------------------------------------------
def test_update_change_set_shows_actions_replacement_and_details(emu, cfn):
    create_stack(cfn, "app", template({
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "app-queue", "VisibilityTimeout": 30}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {"Fn::GetAtt": ["Queue", "Arn"]}}},
    }))
    described, _ = update_stack(cfn, "app", template({
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "app-queue-2", "VisibilityTimeout": 60}},
        "Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {"Fn::GetAtt": ["Queue", "Arn"]}}},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"}},
    }))
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in described["Changes"]}
    assert changes["Table"]["Action"] == "Add"
    assert changes["Topic"]["Action"] == "Remove" and changes["Topic"]["PolicyAction"] == "Delete"
    queue = changes["Queue"]
    assert (queue["Action"], queue["Replacement"], queue["Scope"]) == ("Modify", "True", ["Properties"])
    details = {d["Target"]["Name"]: d for d in queue["Details"]}
    assert details["QueueName"]["Target"]["RequiresRecreation"] == "Always"
    assert details["VisibilityTimeout"]["Target"]["RequiresRecreation"] == "Never"
    # the parameter reads the queue's ARN, which the replacement changes: a dynamic change
    param = changes["Param"]
    assert param["Action"] == "Modify"
    assert {"Evaluation": "Dynamic", "ChangeSource": "ResourceAttribute", "CausingEntity": "Queue.Arn"}.items() <= param["Details"][0].items()
    # executed: the queue was replaced (new name), the old one deleted in the cleanup
    names = [url.rsplit("/", 1)[1] for url in emu.client("sqs").list_queues().get("QueueUrls", [])]
    assert names == ["app-queue-2"]
    statuses = [e["ResourceStatus"] for e in events(cfn, "app")]
    assert "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" in statuses


def test_no_changes_is_a_failed_change_set(cfn):
    body = template({"Queue": QUEUE})
    create_stack(cfn, "same", body)
    change_set = cfn.create_change_set(StackName="same", ChangeSetName="again", ChangeSetType="UPDATE", TemplateBody=body)
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    assert described["Status"] == "FAILED"
    assert described["StatusReason"] == ("The submitted information didn't contain changes. "
                                         "Submit different information to create a change set.")
    with pytest.raises(ClientError, match="No updates are to be performed."):
        cfn.update_stack(StackName="same", TemplateBody=body)


def test_parameter_change_is_a_parameter_reference(cfn):
    body = template({"Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {"Ref": "Value"}}}},
                    Parameters={"Value": {"Type": "String"}})
    create_stack(cfn, "params", body, parameters={"Value": "one"})
    described, _ = update_stack(cfn, "params", body, parameters={"Value": "two"})
    detail = described["Changes"][0]["ResourceChange"]["Details"][0]
    assert (detail["ChangeSource"], detail["CausingEntity"], detail["Target"]["Name"]) == ("ParameterReference", "Value", "Value")


def test_include_property_values_gives_path_before_and_after_values(cfn):
    def group(cidr: str) -> str:
        return template({"Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "app", "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": cidr}]}}})

    create_stack(cfn, "values", group("10.0.0.0/16"))
    change_set = cfn.create_change_set(StackName="values", ChangeSetName="widen", ChangeSetType="UPDATE",
                                       TemplateBody=group("0.0.0.0/0"))
    plain = cfn.describe_change_set(ChangeSetName=change_set["Id"])["Changes"][0]["ResourceChange"]
    assert plain["Scope"] == ["Properties"]
    assert set(plain["Details"][0]["Target"]) == {"Attribute", "Name", "RequiresRecreation"}
    detailed = cfn.describe_change_set(ChangeSetName=change_set["Id"], IncludePropertyValues=True)
    target = detailed["Changes"][0]["ResourceChange"]["Details"][0]["Target"]
    assert (target["Path"], target["AttributeChangeType"]) == ("/Properties/SecurityGroupIngress", "Modify")
    assert json.loads(target["BeforeValue"])[0]["CidrIp"] == "10.0.0.0/16"
    assert json.loads(target["AfterValue"])[0]["CidrIp"] == "0.0.0.0/0"


# ---- rollback and deletion policies -------------------------------------------------------------------
def failing_create(policy: str) -> str:
    return template({
        "Kept": {"Type": "AWS::SQS::Queue", "DeletionPolicy": policy, "Properties": {"QueueName": f"kept-{policy.lower()}"}},
        "Broken": {"Type": "AWS::SQS::Queue", "DependsOn": "Kept", "Properties": {"NoSuchProperty": 1}},
    })


def test_retain_except_on_create_keeps_nothing_when_the_create_rolls_back(emu, cfn):
    create_stack(cfn, unique("rollback"), failing_create("RetainExceptOnCreate"), expect="ROLLBACK_COMPLETE")
    assert not emu.client("sqs").list_queues(QueueNamePrefix="kept-").get("QueueUrls")


def test_retain_keeps_the_resource_when_the_create_rolls_back(emu, cfn):
    name = unique("rollback")
    create_stack(cfn, name, failing_create("Retain"), expect="ROLLBACK_COMPLETE")
    assert resource_statuses(cfn, name)["Kept"] == "DELETE_SKIPPED"
    assert emu.client("sqs").list_queues(QueueNamePrefix="kept-").get("QueueUrls")


def test_deletion_policies_on_stack_deletion(emu, cfn):
    create_stack(cfn, "policies", template({
        "Retained": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "RetainExceptOnCreate", "Properties": {"QueueName": "retained"}},
        "Deleted": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Delete", "Properties": {"QueueName": "deleted"}},
        "Snapshotted": {"Type": "AWS::CloudWatch::Alarm", "DeletionPolicy": "Snapshot", "Properties": {
            "AlarmName": "snap", "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
            "MetricName": "Errors", "Namespace": "AWS/Lambda", "Period": 60, "Statistic": "Sum", "Threshold": 1}},
    }))
    stack_id = cfn.describe_stacks(StackName="policies")["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName="policies")
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    queues = [u.rsplit("/", 1)[1] for u in emu.client("sqs").list_queues().get("QueueUrls", [])]
    assert queues == ["retained"]
    assert emu.client("cloudwatch").describe_alarms()["MetricAlarms"] == []  # Snapshot acts as Delete here
    statuses = {e["LogicalResourceId"]: e["ResourceStatus"] for e in events(cfn, stack_id)}
    assert statuses["Retained"] == "DELETE_SKIPPED"


def test_update_failure_restores_template_parameters_and_outputs(cfn):
    body = template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": {"Ref": "Timeout"}}}},
                    {"Timeout": {"Value": {"Ref": "Timeout"}}}, Parameters={"Timeout": {"Type": "Number"}})
    create_stack(cfn, "rollback-update", body, parameters={"Timeout": "30"})
    broken = json.loads(body)
    broken["Resources"]["Broken"] = {"Type": "AWS::SNS::Topic", "Properties": {"Nope": True}}
    _, stack = update_stack(cfn, "rollback-update", json.dumps(broken), parameters={"Timeout": "60"},
                            expect="UPDATE_ROLLBACK_COMPLETE")
    assert stack["Parameters"] == [{"ParameterKey": "Timeout", "ParameterValue": "30"}]
    assert stack["Outputs"][0]["OutputValue"] == "30"
    assert cfn.get_template(StackName="rollback-update")["TemplateBody"] == json.loads(body)
    assert resource_statuses(cfn, "rollback-update") == {"Queue": "UPDATE_COMPLETE"}


def test_create_failure_never_raises_from_execute(cfn):
    # ExecuteChangeSet answers normally; the failure is in the stack's state and events
    create_stack(cfn, "no-raise", template({"Bad": {"Type": "AWS::SQS::Queue", "Properties": {"Unknown": 1}}}),
                 expect="ROLLBACK_COMPLETE")
    with pytest.raises(ClientError, match="ROLLBACK_COMPLETE state and can not be updated"):
        cfn.create_change_set(StackName="no-raise", ChangeSetName="u", ChangeSetType="UPDATE",
                              TemplateBody=template({"Q": QUEUE}))


# ---- protection ---------------------------------------------------------------------------------
def test_termination_protection_is_enforced(cfn):
    create_stack(cfn, "protected", template({"Queue": QUEUE}))
    cfn.update_termination_protection(StackName="protected", EnableTerminationProtection=True)
    assert cfn.describe_stacks(StackName="protected")["Stacks"][0]["EnableTerminationProtection"] is True
    with pytest.raises(ClientError, match=r"Stack \[protected\] cannot be deleted while TerminationProtection is enabled"):
        cfn.delete_stack(StackName="protected")
    cfn.update_termination_protection(StackName="protected", EnableTerminationProtection=False)
    cfn.delete_stack(StackName="protected")


def test_stack_policy_is_kept_and_enforced(cfn):
    create_stack(cfn, "policed", template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "policed-1"}}}))
    policy = {"Statement": [
        {"Effect": "Allow", "Action": ["Update:Modify", "Update:Replace", "Update:Delete"], "Principal": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["Update:Replace", "Update:Delete"], "Principal": "*", "Resource": ["LogicalResourceId/Queue"]},
    ]}
    cfn.set_stack_policy(StackName="policed", StackPolicyBody=json.dumps(policy))
    assert json.loads(cfn.get_stack_policy(StackName="policed")["StackPolicyBody"]) == policy
    update_stack(cfn, "policed", template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "policed-2"}}}),
                 expect="UPDATE_ROLLBACK_COMPLETE")
    failed = [e for e in events(cfn, "policed") if e["ResourceStatus"] == "UPDATE_FAILED"][0]
    assert "Action denied by stack policy" in failed["ResourceStatusReason"]


# ---- parameters, dynamic references, transforms ----------------------------------------------------
def test_ssm_typed_parameter_shows_path_and_resolved_value(emu, cfn):
    path = POWERTOOLS_LAYER_SSM_PATH
    body = template({"Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {"Ref": "Layer"}}}},
                    Parameters={"Layer": {"Type": "AWS::SSM::Parameter::Value<String>"}})
    stack = create_stack(cfn, "ssm-typed", body, parameters={"Layer": path})
    assert stack["Parameters"] == [{"ParameterKey": "Layer", "ParameterValue": path, "ResolvedValue": emu.powertools_layer_arn}]


def test_dynamic_references_resolve(emu, cfn):
    secrets = emu.client("secretsmanager")
    arn = secrets.create_secret(Name="db", SecretString=json.dumps({"username": "app", "password": "s3cret"}))["ARN"]
    emu.client("ssm").put_parameter(Name="/plain/value", Value="plain", Type="String")
    create_stack(cfn, "dynamic", template({
        "FromSecret": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "/copied/secret", "Type": "String", "Value": f"{{{{resolve:secretsmanager:{arn}:SecretString:password}}}}"}},
        "FromParameter": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "/copied/plain", "Type": "String", "Value": "{{resolve:ssm:/plain/value}}"}},
    }))
    ssm = emu.client("ssm")
    assert ssm.get_parameter(Name="/copied/secret")["Parameter"]["Value"] == "s3cret"
    assert ssm.get_parameter(Name="/copied/plain")["Parameter"]["Value"] == "plain"
    # the template keeps the reference, not the value
    assert "resolve:secretsmanager" in json.dumps(cfn.get_template(StackName="dynamic")["TemplateBody"])


def test_secrets_manager_transform_is_accepted_and_unknown_transforms_refused(emu, cfn):
    body = template({
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": "rotated", "GenerateSecretString": {"SecretStringTemplate": '{"username": "u"}', "GenerateStringKey": "password"}}},
        "Rotation": {"Type": "AWS::SecretsManager::RotationSchedule", "Properties": {
            "SecretId": {"Ref": "Secret"}, "RotationRules": {"ScheduleExpression": "rate(30 days)"},
            "HostedRotationLambda": {"RotationType": "PostgreSQLSingleUser", "RotationLambdaName": "rotator"}}},
    }, Transform="AWS::SecretsManager-2024-09-16")
    with pytest.raises(ClientError, match="CAPABILITY_AUTO_EXPAND"):
        cfn.create_change_set(StackName="rotation", ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=body)
    create_stack(cfn, "rotation", body, capabilities=["CAPABILITY_AUTO_EXPAND", "CAPABILITY_IAM"])
    described = emu.client("secretsmanager").describe_secret(SecretId="rotated")
    assert described["RotationEnabled"] is True
    assert described["RotationLambdaARN"].endswith(":function:rotator")
    change_set = cfn.create_change_set(StackName="macro", ChangeSetName="c", ChangeSetType="CREATE",
                                       TemplateBody=template({"Q": QUEUE}, Transform="Acme::Macro"),
                                       Capabilities=["CAPABILITY_AUTO_EXPAND"])
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    assert described["Status"] == "FAILED" and described["StatusReason"].startswith("No transform named Acme::Macro found.")


# ---- custom resources ---------------------------------------------------------------------------
def custom_resource_template(resource_type: str) -> str:
    return template({
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    pass\n"}}},
        "Restrict": {"Type": resource_type, "Properties": {
            "ServiceToken": {"Fn::GetAtt": ["Function", "Arn"]}, "GroupId": {"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]}}},
    })


def test_restrict_default_security_group_closes_the_default_group(emu, cfn):
    create_stack(cfn, "closed", custom_resource_template("Custom::RestrictDefaultSecurityGroup"), capabilities=["CAPABILITY_IAM"])
    vpc = [v for v in emu.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]][0]["VpcId"]
    group = emu.client("ec2").describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []


def test_other_custom_resources_fail_clearly(cfn):
    create_stack(cfn, "custom", custom_resource_template("Custom::Anything"), capabilities=["CAPABILITY_IAM"],
                 expect="ROLLBACK_COMPLETE")
    reason = [e for e in events(cfn, "custom") if e["ResourceStatus"] == "CREATE_FAILED"][0]["ResourceStatusReason"]
    assert reason.startswith("Custom resource type Custom::Anything has no provider in the emulator")


# ---- reads ---------------------------------------------------------------------------------------
def test_events_resources_and_template_reads(cfn):
    body = template({"Queue": QUEUE, "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}}})
    create_stack(cfn, "reads", body)
    per_resource = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in events(cfn, "reads") if e["LogicalResourceId"] == "Queue"]
    assert per_resource == [("Queue", "CREATE_IN_PROGRESS")] * 2 + [("Queue", "CREATE_COMPLETE")]
    summaries = cfn.list_stack_resources(StackName="reads")["StackResourceSummaries"]
    assert {s["LogicalResourceId"]: s["ResourceStatus"] for s in summaries} == {"Queue": "CREATE_COMPLETE", "Topic": "CREATE_COMPLETE"}
    assert all(s["PhysicalResourceId"] for s in summaries)
    assert cfn.get_template(StackName="reads")["TemplateBody"] == json.loads(body)  # boto3 decodes JSON bodies
    summary = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == "reads"][0]
    assert summary["StackStatus"] == "CREATE_COMPLETE"


def test_create_and_update_stack_apis(cfn):
    cfn.create_stack(StackName="direct", TemplateBody=template({"Queue": QUEUE}))
    assert cfn.describe_stacks(StackName="direct")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_stack(StackName="direct", TemplateBody=template({"Queue": QUEUE, "Topic": {"Type": "AWS::SNS::Topic"}}))
    assert cfn.describe_stacks(StackName="direct")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    with pytest.raises(ClientError, match="No export named missing found."):
        cfn.create_stack(StackName="direct-2", TemplateBody=importing_template("missing"))


def test_rollback_triggers_roll_an_update_back(emu, cfn):
    cloudwatch = emu.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="errors", ComparisonOperator="GreaterThanThreshold", EvaluationPeriods=1,
                                MetricName="Errors", Namespace="AWS/Lambda", Period=60, Statistic="Sum", Threshold=1)
    alarm = cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["AlarmArn"]
    triggers = {"RollbackTriggers": [{"Arn": alarm, "Type": "AWS::CloudWatch::Alarm"}], "MonitoringTimeInMinutes": 10}
    create_stack(cfn, "guarded", template({"Queue": QUEUE}), RollbackConfiguration=triggers)
    update_stack(cfn, "guarded", template({"Queue": QUEUE, "Topic": {"Type": "AWS::SNS::Topic"}}),
                 RollbackConfiguration=triggers)  # alarm OK: the update stays
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="errors")
    update_stack(cfn, "guarded", template({"Queue": QUEUE}), RollbackConfiguration=triggers,
                 expect="UPDATE_ROLLBACK_COMPLETE", change_set_name="second")
    reason = [e for e in events(cfn, "guarded") if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"][-1]["ResourceStatusReason"]
    assert reason == f"Rolling back because alarm {alarm} is in ALARM state"
    assert set(resource_statuses(cfn, "guarded")) == {"Queue", "Topic"}


def test_a_type_moto_cannot_hold_is_recorded(cfn):
    """AWS::Scheduler::ScheduleGroup: no moto model; recorded with a physical id, a Ref and its
    GetAtt attributes, properties still validated."""
    stack = create_stack(cfn, "recorded", template(
        {"Group": {"Type": "AWS::Scheduler::ScheduleGroup", "Properties": {"Name": "payments-schedules"}}},
        {"Name": {"Value": {"Ref": "Group"}}, "Arn": {"Value": {"Fn::GetAtt": ["Group", "Arn"]}}}))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["Name"] == "payments-schedules"
    assert outputs["Arn"].startswith("arn:aws:scheduler:eu-west-1:123456789012:")
    create_stack(cfn, "recorded-bad", template(
        {"Group": {"Type": "AWS::Scheduler::ScheduleGroup", "Properties": {"Nme": "x"}}}), expect="ROLLBACK_COMPLETE")
    cfn.delete_stack(StackName="recorded")


def test_resource_types_limit_what_a_change_set_may_hold_and_role_arn_is_kept(cfn):
    name = unique("resource-types")
    body = template({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}},
                     "Topic": {"Type": "AWS::SNS::Topic"}})
    refused = cfn.create_change_set(StackName=name, ChangeSetName="narrow", ChangeSetType="CREATE", TemplateBody=body,
                                    ResourceTypes=["AWS::SQS::Queue"])
    described = cfn.describe_change_set(ChangeSetName=refused["Id"])
    assert described["Status"] == "FAILED"
    assert described["StatusReason"] == ("Resource Topic of type AWS::SNS::Topic is not one of the ResourceTypes this "
                                         "change set may work with: AWS::SQS::Queue")
    role = "arn:aws:iam::123456789012:role/payments-delivery/payments-local-cloudformation"
    stack = create_stack(cfn, name, body, ResourceTypes=["AWS::SQS::*", "AWS::SNS::Topic"], RoleARN=role)
    assert stack["RoleARN"] == role


METRIC_ALARM = {"Type": "AWS::CloudWatch::Alarm", "Properties": {
    "AlarmName": "part-errors", "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
    "MetricName": "Errors", "Namespace": "AWS/Lambda", "Period": 60, "Statistic": "Sum", "Threshold": 1}}
COMPOSITE_ALARM = {"Type": "AWS::CloudWatch::CompositeAlarm", "DependsOn": ["Part"], "Properties": {
    "AlarmName": "any-errors", "AlarmRule": 'ALARM("part-errors")', "AlarmDescription": "any part in alarm"}}


def test_composite_alarm_is_created_and_described(emu, cfn):
    stack = create_stack(cfn, "composite", template(
        {"Part": METRIC_ALARM, "Any": COMPOSITE_ALARM}, {"Arn": {"Value": {"Fn::GetAtt": ["Any", "Arn"]}},
                                                          "Name": {"Value": {"Ref": "Any"}}}))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    described = emu.client("cloudwatch").describe_alarms(AlarmNames=["any-errors"])
    assert [a["AlarmArn"] for a in described["CompositeAlarms"]] == [outputs["Arn"]]
    assert described["CompositeAlarms"][0]["AlarmRule"] == 'ALARM("part-errors")'
    assert described["MetricAlarms"] == [] and outputs["Name"] == "any-errors"
    create_stack(cfn, "composite-dangling", template({"Any": {**COMPOSITE_ALARM, "DependsOn": [], "Properties": {
        **COMPOSITE_ALARM["Properties"], "AlarmName": "dangling", "AlarmRule": 'ALARM("nowhere")'}}}),
        expect="ROLLBACK_COMPLETE")
    cfn.delete_stack(StackName="composite")
    assert emu.client("cloudwatch").describe_alarms(AlarmNames=["any-errors"])["CompositeAlarms"] == []


def test_composite_alarm_is_a_rollback_trigger_of_its_own_type(emu, cfn):
    create_stack(cfn, "alarms", template({"Part": METRIC_ALARM, "Any": COMPOSITE_ALARM},
                                         {"Arn": {"Value": {"Fn::GetAtt": ["Any", "Arn"]}},
                                          "PartArn": {"Value": {"Fn::GetAtt": ["Part", "Arn"]}}}))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="alarms")["Stacks"][0]["Outputs"]}
    composite = {"RollbackTriggers": [{"Arn": outputs["Arn"], "Type": "AWS::CloudWatch::CompositeAlarm"}]}
    create_stack(cfn, "guarded-by-composite", template({"Queue": QUEUE}), RollbackConfiguration=composite)
    # The same alarm named with the other type, and a metric alarm named as a composite, fail the operation.
    wrong = {"RollbackTriggers": [{"Arn": outputs["Arn"], "Type": "AWS::CloudWatch::Alarm"}]}
    create_stack(cfn, "wrong-type", template({"Queue": QUEUE}), RollbackConfiguration=wrong, expect="ROLLBACK_COMPLETE")
    reason = [e for e in events(cfn, "wrong-type") if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"][-1]["ResourceStatusReason"]
    assert reason.startswith(f"Rollback trigger {outputs['Arn']} is of type AWS::CloudWatch::CompositeAlarm, not AWS::CloudWatch::Alarm")
    part_as_composite = {"RollbackTriggers": [{"Arn": outputs["PartArn"], "Type": "AWS::CloudWatch::CompositeAlarm"}]}
    create_stack(cfn, "wrong-type-2", template({"Queue": QUEUE}), RollbackConfiguration=part_as_composite,
                 expect="ROLLBACK_COMPLETE")
    with pytest.raises(ClientError, match="specify either AWS::CloudWatch::Alarm or AWS::CloudWatch::CompositeAlarm"):
        cfn.create_change_set(StackName="no-type", ChangeSetName="first", ChangeSetType="CREATE",
                              TemplateBody=template({"Queue": QUEUE}),
                              RollbackConfiguration={"RollbackTriggers": [{"Arn": outputs["Arn"], "Type": "AWS::SNS::Topic"}]})
    # The composite in ALARM (its part is) rolls an update back.
    emu.client("cloudwatch").set_alarm_state(AlarmName="any-errors", StateValue="ALARM", StateReason="part in alarm")
    update_stack(cfn, "guarded-by-composite", template({"Queue": QUEUE, "Topic": {"Type": "AWS::SNS::Topic"}}),
                 RollbackConfiguration=composite, expect="UPDATE_ROLLBACK_COMPLETE")
    assert set(resource_statuses(cfn, "guarded-by-composite")) == {"Queue"}
