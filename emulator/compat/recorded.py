"""Types the emulator only records.

Any type CloudFormation knows (a cfn-lint provider schema exists) that neither moto nor the
emulator can create falls back to cloudformation.providers.RecordedProvider: the engine keeps a
record with a physical id (the name property when the template sets it, else a generated
name), a Ref value (the physical id), and the GetAtt attributes of the schema (a property of
the same name, an ARN in the type's service for *Arn, the physical id for *Id / *Name). Its
properties are still validated against the schema. Nothing exists behind the record: service
APIs do not see it. emulator.coverage lists the recorded types the platform uses.

Two CloudFormation-internal types get explicit behaviour here:
- AWS::CloudFormation::WaitConditionHandle: recorded, Ref a presigned-URL-shaped string;
- AWS::CloudFormation::WaitCondition: fails, since nothing can send it a signal (in AWS the
  stack would wait for the count of signals until its Timeout and then fail).
"""
from __future__ import annotations

from .cloudformation.providers import Provider, RecordedProvider, Request, State, register
from .errors import ResourceFailure


class WaitCondition(Provider):
    resource_type = "AWS::CloudFormation::WaitCondition"
    support = "recorded"

    def create(self, request: Request) -> State:
        raise ResourceFailure(f"WaitCondition received 0 of {request.properties.get('Count', 1)} signals before its "
                              f"timeout (nothing can signal a wait condition in the emulator)")


def _handle_url(request: Request, physical: str) -> str:
    return (f"https://cloudformation-waitcondition-{request.region}.s3.amazonaws.com/"
            f"{request.stack_id.replace(':', '%3A')}/{physical}?X-Amz-Signature=emulator")


def apply() -> None:
    register(RecordedProvider("AWS::CloudFormation::WaitConditionHandle", ref=_handle_url, attributes=lambda r, p: {}))
    register(WaitCondition())
