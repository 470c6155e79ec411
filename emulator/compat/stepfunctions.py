"""Step Functions: state machines."""
from __future__ import annotations

import json
from typing import Any

from moto.core.utils import pascal_to_camelcase, remap_nested_keys

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.stepfunctions.models import stepfunctions_backends

    return stepfunctions_backends[request.account_id][request.region]


def definition_of(request: Request) -> str:
    p = request.properties
    if p.get("DefinitionString") is not None:
        text = p["DefinitionString"]
    elif p.get("Definition") is not None:
        text = json.dumps(p["Definition"])
    elif p.get("DefinitionS3Location"):
        from moto.s3.models import s3_backends

        location = p["DefinitionS3Location"]
        text = s3_backends[request.account_id][request.partition].get_object(location["Bucket"], location["Key"]).value.decode()
    else:
        raise ResourceFailure("Properties validation failed: one of Definition, DefinitionString or DefinitionS3Location is required")
    for key, value in (p.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", value if isinstance(value, str) else json.dumps(value))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResourceFailure(f"Resource handler returned message: \"Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: "
                              f"{error}'\" (Error Code: InvalidDefinition)") from None
    if "StartAt" not in document or "States" not in document:
        raise ResourceFailure("Resource handler returned message: \"Invalid State Machine Definition: 'MISSING_START_AT / "
                              "States'\" (Error Code: InvalidDefinition)")
    return text


def _camel(value: Any) -> Any:
    return remap_nested_keys(value, pascal_to_camelcase) if value else None


class StateMachineProvider(Provider):
    """moto gaps: moto's AWS::StepFunctions::StateMachine reads only DefinitionString (a
    Definition object gives an empty machine) and ignores DefinitionSubstitutions, logging,
    tracing, encryption and the type. Here the definition is built (Definition, DefinitionString
    or DefinitionS3Location, substitutions applied, checked to be a state machine) and every
    configuration passed to CreateStateMachine. Ref: the ARN; GetAtt Arn, Name."""

    resource_type = "AWS::StepFunctions::StateMachine"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        machine = backend(request).create_state_machine(
            p.get("StateMachineName") or request.physical_name, definition_of(request), p["RoleArn"],
            tags=[{"key": t["Key"], "value": t["Value"]} for t in p.get("Tags") or []],
            loggingConfiguration=_camel(p.get("LoggingConfiguration")),
            tracingConfiguration=_camel(p.get("TracingConfiguration")),
            encryptionConfiguration=_camel(p.get("EncryptionConfiguration")),
            sm_type=p.get("StateMachineType", "STANDARD"),
        )
        return State(physical_id=machine.arn, handle=machine,
                     attributes={"Arn": machine.arn, "Name": machine.name,
                                 "StateMachineRevisionId": getattr(machine, "revision_id", None) or machine.arn})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        p = request.properties
        backend(request).update_state_machine(
            state.physical_id, definition=definition_of(request), role_arn=p["RoleArn"],
            logging_configuration=_camel(p.get("LoggingConfiguration")),
            tracing_configuration=_camel(p.get("TracingConfiguration")),
            encryption_configuration=_camel(p.get("EncryptionConfiguration")),
        )
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_state_machine(state.physical_id)


def apply() -> None:
    register(StateMachineProvider())
