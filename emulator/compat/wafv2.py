"""WAFv2: web ACLs, their associations and logging configurations."""
from __future__ import annotations

from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request, region: str | None = None) -> Any:
    from moto.wafv2.models import wafv2_backends

    return wafv2_backends[request.account_id][region or request.region]


class WebAclProvider(Provider):
    """moto gap: AWS::WAFv2::WebACL has no model. CreateWebACL here (CLOUDFRONT scope only in
    us-east-1, as in AWS). Ref: name|id|scope; GetAtt Arn, Id, Capacity, LabelNamespace."""

    resource_type = "AWS::WAFv2::WebACL"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        scope = p["Scope"]
        if scope == "CLOUDFRONT" and request.region != "us-east-1":
            raise ResourceFailure("Resource handler returned message: \"Error reason: The scope is not valid., field: SCOPE_VALUE, "
                                  "parameter: CLOUDFRONT\" (Error Code: WAFInvalidParameterException)")
        name = p.get("Name") or request.physical_name[:128]
        acl = backend(request).create_web_acl(
            name, p["VisibilityConfig"], p["DefaultAction"], scope, p.get("Description", ""), p.get("Tags") or [],
            p.get("Rules") or [], p.get("AssociationConfig"), p.get("CaptchaConfig"), p.get("ChallengeConfig"),
            p.get("CustomResponseBodies"), p.get("TokenDomains"))
        return State(physical_id=f"{name}|{acl.id}|{scope}", handle=acl, attributes={
            "Arn": acl.arn, "Id": acl.id, "Capacity": acl.capacity,
            "LabelNamespace": f"awswaf:{request.account_id}:webacl:{name}:"},
            data={"name": name, "scope": scope, "id": acl.id})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        p = request.properties
        acl = state.handle
        backend(request).update_web_acl(
            state.data["name"], acl.id, p["DefaultAction"], p.get("Rules") or [], p.get("Description", ""),
            p["VisibilityConfig"], acl.lock_token, p.get("CustomResponseBodies"), p.get("CaptchaConfig"),
            p.get("ChallengeConfig"), p.get("TokenDomains"), p.get("AssociationConfig"))
        return state

    def delete(self, request: Request, state: State) -> None:
        acl = state.handle
        if acl.associated_resources:
            raise ResourceFailure("Resource handler returned message: \"AWS WAF couldn't perform the operation because "
                                  "your resource is being used by another resource or it's associated with another "
                                  "resource.\" (Error Code: WAFAssociatedItemException)")
        backend(request).delete_web_acl(state.data["name"], state.data["scope"], acl.id, acl.lock_token)


def _resource_exists(request: Request, arn: str) -> bool:
    if ":elasticloadbalancing:" in arn:
        from moto.elbv2.models import elbv2_backends

        return arn in elbv2_backends[request.account_id][request.region].load_balancers
    if ":apigateway:" in arn and "/restapis/" in arn:
        from moto.apigateway.models import apigateway_backends

        parts = arn.split("/")
        api_id, stage = parts[-3], parts[-1]
        api = apigateway_backends[request.account_id][request.region].apis.get(api_id)
        return api is not None and stage in api.stages
    return True  # other resource types (AppSync, Cognito ...) are not checked


class WebAclAssociationProvider(Provider):
    """moto gap: AWS::WAFv2::WebACLAssociation has no model. AssociateWebACL here, after
    checking (as WAF does) that the web ACL and the ALB / API stage exist."""

    resource_type = "AWS::WAFv2::WebACLAssociation"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        if not _resource_exists(request, p["ResourceArn"]):
            raise ResourceFailure(f"Resource handler returned message: \"AWS WAF couldn’t perform the operation because your "
                                  f"resource doesn’t exist.\" (Error Code: WAFNonexistentItemException) [{p['ResourceArn']}]")
        backend(request).associate_web_acl(p["WebACLArn"], p["ResourceArn"])
        return State(physical_id=f"{p['WebACLArn']}|{p['ResourceArn']}", data={"resource": p["ResourceArn"]})

    def delete(self, request: Request, state: State) -> None:
        backend(request).disassociate_web_acl(state.data["resource"])


class LoggingConfigurationProvider(Provider):
    """moto gap: AWS::WAFv2::LoggingConfiguration has no model. PutLoggingConfiguration here;
    a CloudWatch Logs destination must be an existing log group whose name starts with
    aws-waf-logs- (WAF's rule). Ref: the web ACL ARN."""

    resource_type = "AWS::WAFv2::LoggingConfiguration"
    support = "created"

    def create(self, request: Request) -> State:
        from moto.logs.models import logs_backends

        p = request.properties
        for destination in p["LogDestinationConfigs"]:
            if ":logs:" in destination:
                name = destination.split(":log-group:", 1)[-1].removesuffix(":*")
                if not name.startswith("aws-waf-logs-"):
                    raise ResourceFailure("Resource handler returned message: \"Error reason: The ARN isn't valid. A valid ARN "
                                          "begins with arn: and includes other information separated by colons or slashes., "
                                          "field: LOG_DESTINATION\" (Error Code: WAFInvalidParameterException)")
                if name not in logs_backends[request.account_id][request.region].groups:
                    raise ResourceFailure(f"Resource handler returned message: \"AWS WAF couldn’t perform the operation "
                                          f"because your resource doesn’t exist.\" (Error Code: WAFNonexistentItemException) [{name}]")
        backend(request).put_logging_configuration(p["ResourceArn"], p["LogDestinationConfigs"], p.get("RedactedFields"),
                                                   False, p.get("LoggingFilter"))
        return State(physical_id=p["ResourceArn"])

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        return self.create(request)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_logging_configuration(state.physical_id)


def apply() -> None:
    register(WebAclProvider())
    register(WebAclAssociationProvider())
    register(LoggingConfigurationProvider())
