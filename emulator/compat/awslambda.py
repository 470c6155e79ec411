"""Lambda: public layers of other accounts, versions, permissions and aliases."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure


def _backend(account_id: str, region: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account_id, region)


def _layer_shared_with(layer_version: Any, account_id: str) -> bool:
    try:
        statements = layer_version.policy.statements
    except AttributeError:
        return False
    for statement in statements:
        principal = statement.get("Principal")
        if isinstance(principal, dict):
            principal = principal.get("AWS")
        if principal in ("*", account_id, f"arn:aws:iam::{account_id}:root"):
            return True
    return False


def _layers_patch() -> None:
    # moto gap: LambdaBackend.layers_versions_by_arn looks a layer ARN up by layer name in the
    # caller's own account and region, ignoring the account and region in the ARN. A function
    # using a public layer of another account (AWS's Powertools layer, account 017000801446)
    # cannot be created. Here the ARN's own account/region is searched, and, as in AWS, the
    # layer version must be shared with the caller (a layer-version policy allowing "*" or the
    # caller's account); the Powertools layer provisioned at startup is shared with "*".
    from moto.awslambda.models import LambdaBackend

    original = LambdaBackend.layers_versions_by_arn

    def layers_versions_by_arn(self: Any, layer_version_arn: str) -> Any:
        parts = layer_version_arn.split(":")
        if len(parts) >= 8 and parts[2] == "lambda":
            region, account = parts[3], parts[4]
            if account != self.account_id or region != self.region_name:
                if region != self.region_name:
                    return None  # a function can only use layers of its own region
                found = original(_backend(account, region), layer_version_arn)
                if found is None or not _layer_shared_with(found, self.account_id):
                    return None
                return found
        return original(self, layer_version_arn)

    LambdaBackend.layers_versions_by_arn = layers_versions_by_arn


def share_layer_publicly(account_id: str, region: str, layer_name: str, version: int) -> None:
    backend = _backend(account_id, region)
    layer_version = backend.get_layer_version(layer_name, str(version))
    if not _layer_shared_with(layer_version, "*"):
        backend.add_layer_version_permission(layer_name, version, json.dumps(
            {"StatementId": "public", "Action": "lambda:GetLayerVersion", "Principal": "*"}))


class VersionProvider(Provider):
    """moto gap: moto's AWS::Lambda::Version has no physical id (its Ref is the Python object),
    no FunctionArn attribute and no delete. Here: Ref is the version ARN, GetAtt Version the
    number, and deletion deletes that version."""

    resource_type = "AWS::Lambda::Version"
    support = "created"

    def create(self, request: Request) -> State:
        backend = _backend(request.account_id, request.region)
        function = backend.publish_version(request.properties["FunctionName"], request.properties.get("Description", ""))
        if function is None:
            raise ResourceFailure(f"Function not found: {request.properties['FunctionName']}")
        arn = function.function_arn
        return State(physical_id=arn, ref=arn, attributes={"Version": str(function.version), "FunctionArn": arn},
                     handle=function)

    def delete(self, request: Request, state: State) -> None:
        backend = _backend(request.account_id, request.region)
        name, _, version = state.physical_id.rpartition(":")
        try:
            backend.delete_function(name, version)
        except Exception as error:  # already gone with its function
            if "not found" not in str(error).lower() and "ResourceNotFound" not in type(error).__name__:
                raise


class PermissionProvider(Provider):
    """moto gap: moto's AWS::Lambda::Permission has no physical id and no delete (the statement
    stays in the function's policy). Here the statement id is the physical id, and deletion
    removes the statement."""

    resource_type = "AWS::Lambda::Permission"
    support = "created"

    def create(self, request: Request) -> State:
        backend = _backend(request.account_id, request.region)
        properties = dict(request.properties)
        function_name = properties.pop("FunctionName")
        properties["StatementId"] = request.physical_name
        function = backend.get_function(function_name)
        qualifier = None
        if function_name.startswith("arn:") and function_name.count(":") == 7:
            qualifier = function_name.rsplit(":", 1)[1]
        elif ":" in function_name and not function_name.startswith("arn:"):
            qualifier = function_name.split(":", 1)[1]
        backend.add_permission(function.function_name, qualifier, json.dumps(properties))
        return State(physical_id=request.physical_name, data={"function": function.function_name, "qualifier": qualifier})

    def delete(self, request: Request, state: State) -> None:
        backend = _backend(request.account_id, request.region)
        try:
            function = backend.get_function(state.data["function"], state.data.get("qualifier"))
        except Exception:
            return  # the function is gone, and its policy with it
        function.policy.del_statement(state.physical_id)


class AliasProvider(Provider):
    """moto gap: AWS::Lambda::Alias has no CloudFormation model in moto (the resource is
    skipped, its Ref empty). Created with moto's Lambda CreateAlias; Ref is the alias ARN."""

    resource_type = "AWS::Lambda::Alias"
    support = "created"

    def create(self, request: Request) -> State:
        backend = _backend(request.account_id, request.region)
        p = request.properties
        alias = backend.create_alias(p["Name"], p["FunctionName"], str(p["FunctionVersion"]), p.get("Description", ""),
                                     p.get("RoutingConfig"))
        return State(physical_id=alias.arn, ref=alias.arn, attributes={"AliasArn": alias.arn},
                     data={"function": p["FunctionName"], "name": p["Name"]})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        backend = _backend(request.account_id, request.region)
        p = request.properties
        alias = backend.update_alias(p["Name"], p["FunctionName"], str(p["FunctionVersion"]), p.get("Description", ""),
                                     p.get("RoutingConfig"))
        return State(physical_id=alias.arn, ref=alias.arn, attributes={"AliasArn": alias.arn},
                     data={"function": p["FunctionName"], "name": p["Name"]})

    def delete(self, request: Request, state: State) -> None:
        backend = _backend(request.account_id, request.region)
        backend.delete_alias(state.data["name"], state.data["function"])


class FunctionProvider(MotoProvider):
    """AWS::Lambda::Function through moto's model; Ref is the function name (moto's).

    moto gap: moto's update passes CloudFormation's inline Code.ZipFile (source text) to
    UpdateFunctionCode, which expects a base64 zip ("Incorrect padding"), and re-uploads the
    code even when only the configuration changed. Here inline source is zipped as the create
    path does, and the code is updated only when Code changed."""

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        import base64

        from moto.awslambda.models import LambdaFunction

        function = state.handle
        properties = json.loads(json.dumps(request.properties))
        function.update_configuration(properties)
        function.reserved_concurrency = properties.get("ReservedConcurrentExecutions")
        if properties.get("Code") != old_properties.get("Code"):
            code = dict(properties["Code"])
            if "ZipFile" in code:
                code["ZipFile"] = base64.b64encode(LambdaFunction._create_zipfile_from_plaintext_code(code["ZipFile"])).decode()
            function.update_function_code(code)
        return self.state_from(function, request)


def _layer_by_arn_patch() -> None:
    # moto gap: GetLayerVersionByArn is not implemented (HTML 500). Answered from the layer's
    # own account (shared layers only, see _layers_patch).
    from moto.awslambda.exceptions import UnknownLayerVersionException
    from moto.awslambda.responses import LambdaResponse

    def get_layer_version_by_arn(self: Any) -> Any:
        arn = self.querystring.get("Arn", [""])[0]
        found = _backend(self.current_account, self.region).layers_versions_by_arn(arn)
        if found is None:
            raise UnknownLayerVersionException([arn])
        return 200, {}, json.dumps(found.get_layer_version())

    LambdaResponse.get_layer_version_by_arn = get_layer_version_by_arn


def apply() -> None:
    _layers_patch()
    _layer_by_arn_patch()
    register(VersionProvider())
    register(PermissionProvider())
    register(AliasProvider())
    register(FunctionProvider("AWS::Lambda::Function"))

