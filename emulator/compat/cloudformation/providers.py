"""Resource providers: how the engine creates, updates and deletes one resource.

Three kinds, matching emulator.coverage.RESOURCE_SUPPORT:
- MotoProvider ("created"): moto's own CloudFormation model of the type (create_from_
  cloudformation_json & co.), with the per-type fixes of the compat modules;
- emulator providers ("emulated", in the compat area modules): types moto has no
  CloudFormation model for, created by calling moto's service backend directly, so the
  resource exists for the service APIs (describe/get) as it would after a real deploy;
- RecordedProvider ("recorded"): the type is valid CloudFormation but nothing in moto can hold
  it; the engine keeps a record with a physical id, a Ref value and the attributes templates
  GetAtt, and nothing else.
"""
from __future__ import annotations

import json
import logging
import string
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.moto_api._internal import mock_random

from ..errors import ResourceFailure, describe_backend_error
from . import schemas

log = logging.getLogger("emulator")


@dataclass
class Request:
    """One resource operation: what the provider needs to know."""

    account_id: str
    region: str
    stack_name: str
    stack_id: str
    logical_id: str
    resource_type: str
    properties: dict
    physical_name: str  # generated name, used when the template does not name the resource
    stack_tags: dict[str, str] = field(default_factory=dict)

    @property
    def partition(self) -> str:
        return "aws-cn" if self.region.startswith("cn-") else ("aws-us-gov" if self.region.startswith("us-gov-") else "aws")

    def arn(self, service: str, resource: str, region: str | None = None, account: str | None = None) -> str:
        region = self.region if region is None else region
        account = self.account_id if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"


@dataclass
class State:
    """What the engine keeps of a created resource."""

    physical_id: str
    ref: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    handle: Any = None  # the moto object, or anything the provider needs to delete it
    data: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Base class. `support` is "created", "emulated" or "recorded" (see emulator.coverage)."""

    resource_type: str = ""
    support: str = "emulated"

    def create(self, request: Request) -> State:
        raise NotImplementedError

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        """In-place update (no replacement). Default: keep the resource, record the new properties."""
        return state

    def delete(self, request: Request, state: State) -> None:
        return None

    def ref(self, state: State) -> Any:
        return state.ref if state.ref is not None else state.physical_id

    def attribute(self, state: State, name: str) -> Any:
        if name in state.attributes:
            value = state.attributes[name]
            return value() if callable(value) else value
        raise ResourceFailure(f"attribute {name} is not available from the emulator for this resource")

    def snapshot(self, request: Request, state: State) -> None:
        """DeletionPolicy Snapshot: by default the resource is deleted like Delete."""
        self.delete(request, state)


def generated_name(resource_type: str, stack_name: str, logical_id: str, max_length: int = 255, lower: bool = False) -> str:
    """CloudFormation-style physical name: <stack>-<logical id>-<13 random characters>."""
    chars = string.ascii_uppercase + string.digits
    suffix = "".join(mock_random.choice(chars) for _ in range(13))
    name = f"{stack_name}-{logical_id}"
    if resource_type in ("AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        max_length = 32
    room = max_length - len(suffix) - 1
    name = name[:room].rstrip("-")
    result = f"{name}-{suffix}"
    return result.lower() if lower or resource_type == "AWS::S3::Bucket" else result


# ---- moto models -------------------------------------------------------------------------------
def moto_model(resource_type: str) -> Any:
    from moto.cloudformation.parsing import get_model_map

    return get_model_map().get(resource_type)


class MotoProvider(Provider):
    """A type moto's CloudFormation models create in moto's backend."""

    support = "created"
    # attribute name -> function(moto object, state) overriding moto's get_cfn_attribute
    attribute_overrides: dict[str, Callable[[Any, State], Any]] = {}

    def __init__(self, resource_type: str):
        self.resource_type = resource_type
        self.model = moto_model(resource_type)

    def resource_name(self, request: Request) -> str:
        name_property = self.model.cloudformation_name_type()
        if name_property and request.properties.get(name_property):
            return request.properties[name_property]
        return request.physical_name

    def cloudformation_json(self, request: Request) -> dict:
        return {"Type": self.resource_type, "Properties": json.loads(json.dumps(request.properties))}

    def create(self, request: Request) -> State:
        handle = self.model.create_from_cloudformation_json(
            self.resource_name(request), self.cloudformation_json(request), request.account_id, request.region,
            LogicalId=request.logical_id, StackId=request.stack_id, ResourceType=self.resource_type,
        )
        return self.state_from(handle, request)

    def state_from(self, handle: Any, request: Request) -> State:
        handle.cf_resource_type = self.resource_type
        handle.logical_resource_id = request.logical_id
        physical = self.physical_id(handle)
        return State(physical_id=str(physical), handle=handle)

    def physical_id(self, handle: Any) -> Any:
        return handle.physical_resource_id

    def has_update(self) -> bool:
        return not hasattr(self.model.update_from_cloudformation_json, "__isabstractmethod__")

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        if not self.has_update():
            # moto has no update for the type: the resource stays as created (documented in coverage)
            return state
        handle = self.model.update_from_cloudformation_json(
            original_resource=state.handle, new_resource_name=self.resource_name(request),
            cloudformation_json=self.cloudformation_json(request), account_id=request.account_id,
            region_name=request.region,
        )
        return self.state_from(handle, request)

    def delete(self, request: Request, state: State) -> None:
        handle = state.handle
        deleter = getattr(handle, "delete", None)
        if callable(deleter):
            try:
                deleter(request.account_id, request.region)
                return
            except TypeError:
                pass
        if not hasattr(self.model.delete_from_cloudformation_json, "__isabstractmethod__"):
            self.model.delete_from_cloudformation_json(
                state.physical_id, self.cloudformation_json(request), request.account_id, request.region
            )
            return
        raise ResourceFailure(f"the emulator cannot delete {self.resource_type} {state.physical_id} (no delete in moto)")

    def ref(self, state: State) -> Any:
        return self.physical_id(state.handle)

    def attribute(self, state: State, name: str) -> Any:
        override = self.attribute_overrides.get(name)
        if override is not None:
            return override(state.handle, state)
        if name in state.attributes:
            return super().attribute(state, name)
        try:
            value = state.handle.get_cfn_attribute(name)
        except NotImplementedError:
            raise ResourceFailure(f"moto does not implement attribute {name} of {self.resource_type}") from None
        except Exception as error:  # moto's UnformattedGetAttTemplateException and friends
            raise ResourceFailure(f"attribute {name} of {self.resource_type}: {describe_backend_error(error)}") from error
        return value


# ---- recorded ----------------------------------------------------------------------------------
class RecordedProvider(Provider):
    """A valid CloudFormation type that nothing in moto holds: only recorded by the engine."""

    support = "recorded"

    def __init__(self, resource_type: str, name_property: str | None = None,
                 ref: Callable[[Request, str], Any] | None = None,
                 attributes: Callable[[Request, str], dict[str, Any]] | None = None):
        self.resource_type = resource_type
        self.name_property = name_property
        self._ref = ref
        self._attributes = attributes

    def create(self, request: Request) -> State:
        physical = None
        name_property = self.name_property
        if name_property is None:  # the schema's identifier, when the template sets it
            identifier = (schemas.schema_for(self.resource_type, request.region) or {}).get("primaryIdentifier") or []
            if len(identifier) == 1:
                name_property = identifier[0].rsplit("/", 1)[-1]
        if name_property and request.properties.get(name_property):
            physical = str(request.properties[name_property])
        physical = physical or request.physical_name
        attributes = self._attributes(request, physical) if self._attributes else self.generic_attributes(request, physical)
        ref = self._ref(request, physical) if self._ref else physical
        return State(physical_id=str(ref) if ref else physical, ref=ref, attributes=attributes,
                     data={"properties": request.properties})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        fresh = self._attributes(request, state.physical_id) if self._attributes else self.generic_attributes(request, state.physical_id)
        state.attributes.update(fresh)
        state.data["properties"] = request.properties
        return state

    def generic_attributes(self, request: Request, physical: str) -> dict[str, Any]:
        """Attributes of a type the emulator has no table for: properties of the same name, an
        ARN in the type's service, and the physical id for identifiers."""
        names = schemas.getatt_names(self.resource_type, request.region) or frozenset()
        service = self.resource_type.split("::")[1].lower()
        kind = self.resource_type.split("::")[2].lower()
        values: dict[str, Any] = {}
        for name in names:
            if name in request.properties:
                values[name] = request.properties[name]
            elif name.endswith("Arn") or name == "Arn":
                values[name] = request.arn(service, f"{kind}/{physical}")
            elif name.endswith("Id") or name.endswith("Name"):
                values[name] = physical
        return values


# ---- registry ----------------------------------------------------------------------------------
_PROVIDERS: dict[str, Provider] = {}
_CUSTOM_PROVIDERS: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    _PROVIDERS[provider.resource_type] = provider
    return provider


def register_custom(provider: Provider) -> Provider:
    _CUSTOM_PROVIDERS[provider.resource_type] = provider
    return provider


class UnsupportedCustomResource(Provider):
    """A custom resource whose Lambda the emulator cannot run (no Docker, no code execution)."""

    support = "recorded"

    def __init__(self, resource_type: str):
        self.resource_type = resource_type

    def create(self, request: Request) -> State:
        raise ResourceFailure(
            f"Custom resource type {self.resource_type} has no provider in the emulator: its Lambda function "
            f"({request.properties.get('ServiceToken', 'no ServiceToken')}) cannot run here (no Lambda runtime, no "
            f"Docker). The emulator implements these custom resource types: "
            f"{', '.join(sorted(_CUSTOM_PROVIDERS)) or 'none'}"
        )


def provider_for(resource_type: str, region: str) -> Provider | None:
    """The provider of a type: registered, else moto's model, else a record if CloudFormation knows it."""
    if schemas.is_custom(resource_type):
        return _CUSTOM_PROVIDERS.get(resource_type) or UnsupportedCustomResource(resource_type)
    if resource_type in _PROVIDERS:
        return _PROVIDERS[resource_type]
    if moto_model(resource_type) is not None:
        return register(MotoProvider(resource_type))
    if schemas.schema_for(resource_type, region) is not None:
        return register(RecordedProvider(resource_type))
    return None


def registered() -> dict[str, Provider]:
    return dict(_PROVIDERS)


def custom_providers() -> dict[str, Provider]:
    return dict(_CUSTOM_PROVIDERS)


def run_safely(action: Callable[[], Any], what: str) -> Any:
    """Runs a provider call; any failure becomes a ResourceFailure with a readable reason."""
    try:
        return action()
    except ResourceFailure:
        raise
    except Exception as error:  # moto's service errors and its own bugs alike fail the resource
        reason = describe_backend_error(error)
        if not getattr(error, "code", None) and not getattr(error, "error_type", None):
            log.warning("emulator: %s failed inside moto:\n%s", what, traceback.format_exc())
        raise ResourceFailure(reason) from error
