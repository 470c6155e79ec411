"""Helpers for the emulator tests: small templates and change-set round trips."""
from __future__ import annotations

import json
import uuid


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def template(resources: dict, outputs: dict | None = None, **extra) -> str:
    document = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources, **extra}
    if outputs:
        document["Outputs"] = outputs
    return json.dumps(document)


def create_stack(cfn, name: str, body: str, parameters: dict | None = None, capabilities: list | None = None,
                 expect: str = "CREATE_COMPLETE", **kwargs) -> dict:
    """Creates a stack through a CREATE change set (as deploy.py does); returns DescribeStacks."""
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=capabilities or [], **kwargs)
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    stack = cfn.describe_stacks(StackName=change_set["StackId"])["Stacks"][0]
    assert stack["StackStatus"] == expect, stack.get("StackStatusReason")
    return stack


def update_stack(cfn, name: str, body: str, parameters: dict | None = None, expect: str = "UPDATE_COMPLETE",
                 change_set_name: str = "update", **kwargs) -> tuple[dict, dict]:
    """Updates a stack through an UPDATE change set; returns (the change set, DescribeStacks)."""
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName=change_set_name, ChangeSetType="UPDATE", TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()], **kwargs)
    described = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == expect, stack.get("StackStatusReason")
    return described, stack


def events(cfn, name: str) -> list[dict]:
    """Every event of the stack, oldest first."""
    found, token = [], None
    while True:
        page = cfn.describe_stack_events(StackName=name, **({"NextToken": token} if token else {}))
        found += page["StackEvents"]
        token = page.get("NextToken")
        if not token:
            return list(reversed(found))


def resource_statuses(cfn, name: str) -> dict[str, str]:
    return {r["LogicalResourceId"]: r["ResourceStatus"]
            for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}
