"""API Gateway (REST): APIs from OpenAPI bodies, deployments, stages, keys, usage plans, account.

moto gaps covered (moto 5.2.5 apigateway/models.py): AWS::ApiGateway::RestApi ignores Body /
BodyS3Location (the API has no resources, and the first deployment then fails with "The REST
API doesn't contain any methods"), ApiKeySourceType, Tags and Policy; a Ref to an
AWS::ApiGateway::Deployment returns the moto object; RestApi and Deployment cannot be deleted;
AWS::ApiGateway::Stage, ApiKey, UsagePlan, UsagePlanKey and Account have no model. All are
created in moto's API Gateway backend here. A stage that sends access or execution logs needs
the account's CloudWatch role first, as in AWS ("CloudWatch Logs role ARN must be set in
account settings to enable logging").
"""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.apigateway.models import apigateway_backends

    return apigateway_backends[request.account_id][request.region]


def _tag_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return dict(tags)
    return {t["Key"]: t["Value"] for t in tags or []}


def _body(request: Request) -> dict | None:
    p = request.properties
    body = p.get("Body")
    if body is None and p.get("BodyS3Location"):
        from moto.s3.models import s3_backends

        location = p["BodyS3Location"]
        obj = s3_backends[request.account_id][request.partition].get_object(location["Bucket"], location["Key"])
        text = obj.value.decode()
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            import yaml

            body = yaml.safe_load(text)
    if isinstance(body, str):
        body = json.loads(body)
    return body


class RestApiProvider(Provider):
    resource_type = "AWS::ApiGateway::RestApi"
    support = "created"

    def create(self, request: Request) -> State:
        apigw = backend(request)
        p = request.properties
        body = _body(request)
        name = p.get("Name") or (body or {}).get("info", {}).get("title")
        if not name:
            raise ResourceFailure("Properties validation failed: the REST API needs a Name or a Body with info.title")
        endpoint = p.get("EndpointConfiguration")
        api = apigw.create_rest_api(
            name=name, description=p.get("Description") or (body or {}).get("info", {}).get("description", ""),
            api_key_source=p.get("ApiKeySourceType") or (body or {}).get("x-amazon-apigateway-api-key-source"),
            endpoint_configuration={"types": endpoint.get("Types", ["EDGE"])} if endpoint else None,
            tags=_tag_dict(p.get("Tags")), policy=json.dumps(p["Policy"]) if isinstance(p.get("Policy"), dict) else p.get("Policy"),
            disable_execute_api_endpoint=p.get("DisableExecuteApiEndpoint"),
        )
        if body:
            apigw.put_rest_api(api.id, body, fail_on_warnings=bool(p.get("FailOnWarnings", False)), mode="overwrite")
        root = api.get_resource_for_path("/")
        return State(physical_id=api.id, handle=api, attributes={"RestApiId": api.id, "RootResourceId": root.id})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        apigw = backend(request)
        api = state.handle
        p = request.properties
        api.name = p.get("Name", api.name)
        api.description = p.get("Description", api.description)
        api.tags = _tag_dict(p.get("Tags"))
        body = _body(request)
        if body:
            apigw.put_rest_api(api.id, body, fail_on_warnings=bool(p.get("FailOnWarnings", False)),
                               mode=p.get("Mode", "overwrite"))
        state.attributes["RootResourceId"] = api.get_resource_for_path("/").id
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_rest_api(state.physical_id)


class DeploymentProvider(Provider):
    """Ref: the deployment id (moto's Ref is the Python object)."""

    resource_type = "AWS::ApiGateway::Deployment"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        deployment = backend(request).create_deployment(p["RestApiId"], p.get("StageName") or "", p.get("Description", ""),
                                                        (p.get("StageDescription") or {}).get("Variables"))
        return State(physical_id=deployment.id, attributes={"DeploymentId": deployment.id},
                     data={"api": p["RestApiId"], "stage": p.get("StageName")})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        backend(request).get_rest_api(state.data["api"]).deployments[state.physical_id].description = request.properties.get("Description", "")
        return state

    def delete(self, request: Request, state: State) -> None:
        apigw = backend(request)
        if state.data.get("stage"):
            try:
                apigw.delete_stage(state.data["api"], state.data["stage"])
            except Exception:
                pass  # the stage the deployment made is gone already
        try:
            apigw.delete_deployment(state.data["api"], state.physical_id)
        except Exception as error:
            if "NotFound" not in type(error).__name__:
                raise


def _logging_enabled(p: dict) -> bool:
    if (p.get("AccessLogSetting") or {}).get("DestinationArn"):
        return True
    return any(str(m.get("LoggingLevel", "OFF")).upper() != "OFF" for m in p.get("MethodSettings") or [])


class StageProvider(Provider):
    """Ref: the stage name. AccessLogSetting, MethodSettings are kept on the stage."""

    resource_type = "AWS::ApiGateway::Stage"
    support = "created"

    def create(self, request: Request) -> State:
        apigw = backend(request)
        p = request.properties
        if _logging_enabled(p) and not apigw.get_account().cloudwatch_role_arn:
            raise ResourceFailure("Resource handler returned message: \"CloudWatch Logs role ARN must be set in account "
                                  "settings to enable logging (Service: ApiGateway, Status Code: 400)\" "
                                  "(Error Code: BadRequestException)")
        name = p.get("StageName") or request.physical_name
        stage = apigw.create_stage(p["RestApiId"], name, p["DeploymentId"], variables=p.get("Variables"),
                                   description=p.get("Description", ""), cacheClusterEnabled=p.get("CacheClusterEnabled"),
                                   cacheClusterSize=p.get("CacheClusterSize"), tags=_tag_dict(p.get("Tags")),
                                   tracing_enabled=p.get("TracingEnabled"))
        self._settings(stage, p)
        return State(physical_id=name, handle=stage, data={"api": p["RestApiId"]})

    def _settings(self, stage: Any, p: dict) -> None:
        log = p.get("AccessLogSetting")
        stage.access_log_settings = {"destinationArn": log.get("DestinationArn"), "format": log.get("Format")} if log else None
        stage.method_settings_cfn = p.get("MethodSettings") or []

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        apigw = backend(request)
        p = request.properties
        if _logging_enabled(p) and not apigw.get_account().cloudwatch_role_arn:
            raise ResourceFailure("CloudWatch Logs role ARN must be set in account settings to enable logging")
        stage = state.handle
        stage.deployment_id = p["DeploymentId"]
        stage.description = p.get("Description", "")
        stage.variables = p.get("Variables") or {}
        stage.tracing_enabled = p.get("TracingEnabled")
        stage.tags = _tag_dict(p.get("Tags"))
        self._settings(stage, p)
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_stage(state.data["api"], state.physical_id)


class ApiKeyProvider(Provider):
    resource_type = "AWS::ApiGateway::ApiKey"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        payload = {"name": p.get("Name") or request.physical_name, "description": p.get("Description"),
                   "enabled": str(p.get("Enabled", False)).lower() == "true", "tags": _tag_dict(p.get("Tags")),
                   "stageKeys": [{"restApiId": s.get("RestApiId"), "stageName": s.get("StageName")} for s in p.get("StageKeys") or []]}
        if p.get("Value"):
            payload["value"] = p["Value"]
        if p.get("CustomerId"):
            payload["customerId"] = p["CustomerId"]
        key = backend(request).create_api_key(payload)
        return State(physical_id=key.id, attributes={"APIKeyId": key.id})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        key = backend(request).get_api_key(state.physical_id)
        key.description = request.properties.get("Description")
        key.enabled = str(request.properties.get("Enabled", False)).lower() == "true"
        key.tags = _tag_dict(request.properties.get("Tags"))
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_api_key(state.physical_id)


def _plan_payload(request: Request) -> dict:
    p = request.properties
    payload: dict[str, Any] = {"name": p.get("UsagePlanName") or request.physical_name, "description": p.get("Description"),
                               "tags": _tag_dict(p.get("Tags"))}
    payload["apiStages"] = [{"apiId": s["ApiId"], "stage": s["Stage"]} for s in p.get("ApiStages") or []]
    if p.get("Throttle"):
        payload["throttle"] = {"burstLimit": int(p["Throttle"].get("BurstLimit", 0)), "rateLimit": float(p["Throttle"].get("RateLimit", 0))}
    if p.get("Quota"):
        payload["quota"] = {"limit": int(p["Quota"]["Limit"]), "period": p["Quota"]["Period"], "offset": int(p["Quota"].get("Offset", 0))}
    return payload


class UsagePlanProvider(Provider):
    resource_type = "AWS::ApiGateway::UsagePlan"
    support = "created"

    def create(self, request: Request) -> State:
        apigw = backend(request)
        for stage in request.properties.get("ApiStages") or []:
            api = apigw.get_rest_api(stage["ApiId"])
            if stage["Stage"] not in api.stages:
                raise ResourceFailure("Resource handler returned message: \"Invalid stage identifier specified\" "
                                      "(Error Code: NotFoundException)")
        plan = apigw.create_usage_plan(_plan_payload(request))
        return State(physical_id=plan.id, handle=plan)

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        payload = _plan_payload(request)
        plan = state.handle
        plan.name, plan.description = payload["name"], payload["description"]
        plan.api_stages, plan.tags = payload["apiStages"], payload["tags"]
        plan.throttle, plan.quota = payload.get("throttle", {}), payload.get("quota", {})
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_usage_plan(state.physical_id)


class UsagePlanKeyProvider(Provider):
    resource_type = "AWS::ApiGateway::UsagePlanKey"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        key = backend(request).create_usage_plan_key(p["UsagePlanId"], {"keyId": p["KeyId"], "keyType": p["KeyType"]})
        return State(physical_id=key.id, attributes={"Id": key.id}, data={"plan": p["UsagePlanId"]})

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_usage_plan_key(state.data["plan"], state.physical_id)


class AccountProvider(Provider):
    """Sets the account's CloudWatch role (UpdateAccount). Deleting the resource leaves the
    setting, as CloudFormation does."""

    resource_type = "AWS::ApiGateway::Account"
    support = "emulated"

    def create(self, request: Request) -> State:
        role = request.properties.get("CloudWatchRoleArn")
        if role:
            self._check_role(request, role)
            backend(request).update_account([{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}])
        return State(physical_id=request.physical_name)

    def _check_role(self, request: Request, arn: str) -> None:
        from moto.iam.models import iam_backends

        name = arn.rsplit("/", 1)[-1]
        try:
            iam_backends[request.account_id][request.partition].get_role(name)
        except Exception:
            raise ResourceFailure(f"Resource handler returned message: \"The role ARN does not have required permissions "
                                  f"set to API Gateway\" (Error Code: BadRequestException) [{arn}]") from None

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self.create(request)
        return state


def apply() -> None:
    for provider in (RestApiProvider(), DeploymentProvider(), StageProvider(), ApiKeyProvider(), UsagePlanProvider(),
                     UsagePlanKeyProvider(), AccountProvider()):
        register(provider)
