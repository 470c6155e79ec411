"""The JSON documents paylib passes around, named once.

Lambda events, API answers, request bodies and DynamoDB items are plain dicts; no per-service
boto3 stubs are pinned, so each document is a named alias of dict[str, Any]: the name says
which document a value is.
"""
from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]  # a parsed JSON object: a request body, an audit record, a message
Event = dict[str, Any]  # a Lambda event (API Gateway proxy, SQS, S3, Step Functions input)
ApiResponse = dict[str, Any]  # an API Gateway proxy answer: statusCode, headers, body
Item = dict[str, Any]  # a DynamoDB item as plain values (what aws.to_dynamo takes, aws.from_dynamo gives)
DynamoItem = dict[str, Any]  # the same item in DynamoDB's typed form ({"S": ...}, {"N": ...})
TransactAction = dict[str, Any]  # one TransactWriteItems action ({"Put": ...}, {"Update": ...})
