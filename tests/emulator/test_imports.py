"""IMPORT change sets: adopting existing resources into a new or an existing stack."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from cfn_helpers import create_stack, resource_statuses, template


def import_change_set(cfn, name: str, body: str, resources: list[dict]) -> dict:
    change_set = cfn.create_change_set(StackName=name, ChangeSetName="import", ChangeSetType="IMPORT",
                                       TemplateBody=body, ResourcesToImport=resources)
    return cfn.describe_change_set(ChangeSetName=change_set["Id"])


def test_import_five_kinds_of_resource_into_a_new_stack(emu, cfn):
    emu.client("s3").create_bucket(Bucket="legacy-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    emu.client("dynamodb").create_table(TableName="legacy-table", BillingMode="PAY_PER_REQUEST",
                                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    queue_url = emu.client("sqs").create_queue(QueueName="legacy-queue")["QueueUrl"]
    emu.client("logs").create_log_group(logGroupName="/legacy/logs")
    secret_arn = emu.client("secretsmanager").create_secret(Name="legacy-secret", SecretString="x")["ARN"]
    body = template({
        "Bucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "Properties": {"BucketName": "legacy-bucket"}},
        "Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "Properties": {
            "TableName": "legacy-table", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}},
        "Queue": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {"QueueName": "legacy-queue"}},
        "Logs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain", "Properties": {"LogGroupName": "/legacy/logs"}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "DeletionPolicy": "Retain", "Properties": {"Name": "legacy-secret"}},
    }, {"TableArn": {"Value": {"Fn::GetAtt": ["Table", "Arn"]}, "Export": {"Name": "legacy-TableArn"}}})
    described = import_change_set(cfn, "legacy", body, [
        {"ResourceType": "AWS::S3::Bucket", "LogicalResourceId": "Bucket", "ResourceIdentifier": {"BucketName": "legacy-bucket"}},
        {"ResourceType": "AWS::DynamoDB::Table", "LogicalResourceId": "Table", "ResourceIdentifier": {"TableName": "legacy-table"}},
        {"ResourceType": "AWS::SQS::Queue", "LogicalResourceId": "Queue", "ResourceIdentifier": {"QueueUrl": queue_url}},
        {"ResourceType": "AWS::Logs::LogGroup", "LogicalResourceId": "Logs", "ResourceIdentifier": {"LogGroupName": "/legacy/logs"}},
        {"ResourceType": "AWS::SecretsManager::Secret", "LogicalResourceId": "Secret", "ResourceIdentifier": {"Id": secret_arn}},
    ])
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    assert {c["ResourceChange"]["Action"] for c in described["Changes"]} == {"Import"}
    cfn.execute_change_set(ChangeSetName=described["ChangeSetId"])
    stack = cfn.describe_stacks(StackName="legacy")["Stacks"][0]
    assert stack["StackStatus"] == "IMPORT_COMPLETE"
    assert set(resource_statuses(cfn, "legacy").values()) == {"IMPORT_COMPLETE"}
    assert [e["Name"] for e in cfn.list_exports()["Exports"]] == ["legacy-TableArn"]
    # the imported stack updates like any other
    updated = json.loads(body)
    updated["Resources"]["Topic"] = {"Type": "AWS::SNS::Topic"}
    change_set = cfn.create_change_set(StackName="legacy", ChangeSetName="u", ChangeSetType="UPDATE", TemplateBody=json.dumps(updated))
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    assert cfn.describe_stacks(StackName="legacy")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"


def test_import_into_an_existing_stack_and_its_refusals(emu, cfn):
    create_stack(cfn, "app", template({"Topic": {"Type": "AWS::SNS::Topic"}}))
    emu.client("sqs").create_queue(QueueName="adopted")
    url = emu.client("sqs").get_queue_url(QueueName="adopted")["QueueUrl"]
    queue = {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {"QueueName": "adopted"}}
    resources = [{"ResourceType": "AWS::SQS::Queue", "LogicalResourceId": "Queue", "ResourceIdentifier": {"QueueUrl": url}}]
    without_policy = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "adopted"}}
    with pytest.raises(ClientError, match="must have DeletionPolicy"):
        import_change_set(cfn, "app", template({"Topic": {"Type": "AWS::SNS::Topic"}, "Queue": without_policy}), resources)
    with pytest.raises(ClientError, match="cannot be executed during import operations"):
        import_change_set(cfn, "app", template({"Queue": queue}), resources)  # would remove Topic
    missing = import_change_set(cfn, "app", template({"Topic": {"Type": "AWS::SNS::Topic"}, "Queue": queue}),
                                [{**resources[0], "ResourceIdentifier": {"QueueUrl": url + "-missing"}}])
    assert missing["Status"] == "FAILED" and "to import do not exist" in missing["StatusReason"]
    cfn.delete_change_set(ChangeSetName=missing["ChangeSetId"])
    described = import_change_set(cfn, "app", template({"Topic": {"Type": "AWS::SNS::Topic"}, "Queue": queue}), resources)
    cfn.execute_change_set(ChangeSetName=described["ChangeSetId"])
    assert cfn.describe_stacks(StackName="app")["Stacks"][0]["StackStatus"] == "IMPORT_COMPLETE"
    # a resource that belongs to a stack cannot be imported into another one
    owned = import_change_set(cfn, "other", template({"Queue": queue}), resources)
    assert owned["Status"] == "FAILED" and "already exists in stack" in owned["StatusReason"]
    # deletion keeps the retained, imported queue
    cfn.delete_stack(StackName="app")
    assert emu.client("sqs").list_queues()["QueueUrls"] == [url]
