"""The JSON documents deploy reads and writes, named once.

boto3 answers with plain dicts whose fields are those of the AWS API reference, and the
manifest, templates, plans and reviews are parsed JSON. The project pins no per-service boto3
stubs, so each document is a named alias of dict[str, Any]: the name says which document a
value is, and the field names in the code are the API reference's.
"""
from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]  # any parsed JSON object: manifest.json, plan.json, a stack policy
Template = dict[str, Any]  # a CloudFormation template (Resources, Outputs, ...)
Response = dict[str, Any]  # one boto3 answer
Stack = dict[str, Any]  # DescribeStacks Stacks[] (StackStatus, StackId, Parameters, Outputs, Tags)
StackEvent = dict[str, Any]  # DescribeStackEvents StackEvents[]
ResourceSummary = dict[str, Any]  # ListStackResources StackResourceSummaries[]
Change = dict[str, Any]  # DescribeChangeSet Changes[] ({"Type": "Resource", "ResourceChange": {...}})
ReviewRow = dict[str, Any]  # a row of review.json / deployed.json
