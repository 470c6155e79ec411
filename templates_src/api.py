"""api layer: the REST API (regional) built from the contract `functions/openapi.yaml`.

Design decisions:
- The contract stays the single description of the API. `integrate_contract` (a pure function)
  turns it into the RestApi Body: every operation gets a Lambda proxy integration with the alias
  of the function named by its `x-function`, a request validator (body and parameters when the
  operation has a body, parameters only otherwise) and the API key requirement. The result is
  deterministic, so a Body hash in the Deployment's logical id redeploys the stage exactly when
  the contract (or an integration) changes.
- Authentication: every operation the contract secures (all but GET /status) runs the Lambda
  REQUEST authorizer its security scheme names (`x-function`), on the Authorization header (the
  identity source, so a request without one is refused with 401 before the function runs). The
  contract states the scheme as OpenAPI's http/bearer; API Gateway imports authorizers only from
  `apiKey` schemes carrying `x-amazon-apigateway-authorizer` (it silently ignores http/bearer),
  so `integrate_contract` writes that form. Its answer is cached per header for
  `api.authorizer_cache_ttl_s`, and the policy it returns covers the whole stage, since a cached
  policy is reused for every route.
- Usage plans are for throttling and quotas only (CKV_AWS_59): each merchant has an API key
  (created by tools/merchants.py, never in the template) under the shared plan, and the
  authorizer supplies it (`ApiKeySourceType: AUTHORIZER`), so clients send one credential.
- Models: API Gateway validates with JSON Schema draft 4 and rejects or ignores OpenAPI-only
  keywords; `draft4_schema` adjusts them in code (see its docstring) so the contract itself
  stays plain OpenAPI 3.0.
- Stage logging: execution logs at ERROR only and no data trace, because INFO and data trace
  write request and response bodies (card numbers) to CloudWatch Logs. Access logs are JSON
  lines with request metadata only. Both log groups are created here with KMS and retention
  (API Gateway would otherwise create the execution log group unencrypted and kept forever).
- AWS::ApiGateway::Account (the CloudWatch role for API Gateway logging) is a per-account,
  per-region singleton: every REST API of the account logs through the role it names. It lives
  here because execution and access logging cannot work without it. The role carries AWS's
  managed policy AmazonAPIGatewayPushToCloudWatchLogs, never a policy scoped to this platform,
  so pointing the setting at it cannot break another API's logging; preflight says when the
  setting currently names someone else's role.
- No cache cluster: payment responses must never be served from a cache.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from troposphere import GetAtt, Ref, Sub, Template, apigateway, awslambda, encode_to_dict, iam, wafv2

from . import blocks
from .common import export, import_value, new_template, resource_name, skip_checkov, tags
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, DeclarationError, FunctionDeclaration, alias_export_key, load_functions

LAYER = "api"
CONTRACT_FILE = "openapi.yaml"
HTTP_METHODS = ("delete", "get", "head", "options", "patch", "post", "put")
FUNCTION_EXTENSION = "x-function"
API_KEY_SCHEME = "api_key"
AUTHORIZER_TRIGGER = "authorizer"
AUTHORIZER_IDENTITY_SOURCE = "method.request.header.Authorization"
AUTHORIZERS_SOURCE_ARN = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/authorizers/*"
BODY_AND_PARAMS = "body-and-params"
PARAMS_ONLY = "params-only"
REQUEST_VALIDATORS = {
    BODY_AND_PARAMS: {"validateRequestBody": True, "validateRequestParameters": True},
    PARAMS_ONLY: {"validateRequestBody": False, "validateRequestParameters": True},
}
# Errors produced by API Gateway itself (validation, missing key, throttling) answer in the
# contract's Error shape. messageString is already a quoted JSON string.
GATEWAY_ERROR_TEMPLATE = '{"error":{"code":"$context.error.responseType","message":$context.error.messageString}}'
GATEWAY_RESPONSES = {
    response_type: {"responseTemplates": {"application/json": GATEWAY_ERROR_TEMPLATE}}
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX")
}
# 401 says how to authenticate (RFC 6750); 403 (a Deny from the authorizer) keeps the default.
GATEWAY_RESPONSES["UNAUTHORIZED"] = {
    "statusCode": "401",
    "responseParameters": {"gatewayresponse.header.WWW-Authenticate": "'Bearer'"},
    "responseTemplates": {"application/json": GATEWAY_ERROR_TEMPLATE},
}
# OpenAPI 3.0 keywords that are not JSON Schema draft 4 (API Gateway models reject or ignore
# them); they document, they do not constrain, so dropping them loses no validation.
OPENAPI_ONLY_KEYWORDS = frozenset(
    {"deprecated", "discriminator", "example", "examples", "externalDocs", "readOnly", "writeOnly", "xml"}
)
# OpenAPI number formats API Gateway refuses on models; the JSON type already constrains.
OPENAPI_ONLY_FORMATS = frozenset({"int32", "int64", "float", "double"})
# Draft-4 keywords API Gateway does not support; no faithful rewrite exists, so refuse them.
UNSUPPORTED_KEYWORDS = frozenset({"oneOf"})
API_GATEWAY_LOGGING_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
LAMBDA_INVOKE_URI = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AliasArn}/invocations"
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "apiKeyId": "$context.identity.apiKeyId",
    "merchantId": "$context.authorizer.merchant_id",  # from the authorizer's context, never the key
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
    "wafStatus": "$context.waf.status",
    "xrayTraceId": "$context.xrayTraceId",
}


class ContractError(DeclarationError):
    """The OpenAPI contract cannot be turned into the API; the message says where and why.
    A DeclarationError, so the build reports it as bad input under functions/, not a crash."""


def load_contract(path: Path) -> dict:
    try:
        contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{path}: OpenAPI contract not found") from None
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(contract, dict) or not str(contract.get("openapi", "")).startswith("3.0"):
        raise ContractError(f"{path}: must be an OpenAPI 3.0 document")
    if not isinstance(contract.get("paths"), dict) or not contract["paths"]:
        raise ContractError(f"{path}: has no paths")
    return contract


def operations(contract: dict) -> list[tuple[str, str, dict]]:
    """(path, method, operation) for every operation, in path then method order."""
    found = []
    for path in sorted(contract["paths"]):
        item = contract["paths"][path] or {}
        for method in HTTP_METHODS:
            if method in item:
                found.append((path, method, item[method]))
    return found


def routes_by_function(contract: dict) -> dict[str, list[tuple[str, str]]]:
    """function name -> [(METHOD, path)], checking every operation names one function."""
    routes: dict[str, list[tuple[str, str]]] = {}
    for path, method, operation in operations(contract):
        where = f"{method.upper()} {path}"
        if not operation.get("operationId"):
            raise ContractError(f"{where}: operation has no operationId")
        function = operation.get(FUNCTION_EXTENSION)
        if not isinstance(function, str) or not function:
            raise ContractError(f"{where}: operation has no '{FUNCTION_EXTENSION}: <function directory>'")
        routes.setdefault(function, []).append((method.upper(), path))
    return routes


def check_functions(routes: dict[str, list[tuple[str, str]]], functions: list[FunctionDeclaration], source: Path) -> None:
    """The contract and the declarations agree: every routed function is declared with an api
    trigger, and every function declaring an api trigger has at least one route."""
    declared = {function.name: function for function in functions}
    for name, function_routes in sorted(routes.items()):
        where = ", ".join(f"{method} {path}" for method, path in function_routes)
        if name not in declared:
            raise ContractError(f"{source}: {where}: x-function {name!r} is not a declared function")
        if "api" not in declared[name].trigger_types():
            raise ContractError(f"{source}: {where}: function {name!r} does not declare '- type: api'")
    unrouted = sorted(name for name, f in declared.items() if "api" in f.trigger_types() and name not in routes)
    if unrouted:
        raise ContractError(f"{source}: function(s) {', '.join(unrouted)} declare an api trigger but no operation uses them")


def check_authorizers(schemes: dict[str, str], functions: list[FunctionDeclaration], source: Path) -> None:
    """Every scheme's function is declared with an authorizer trigger, and every function that
    declares one authorizes a scheme."""
    declared = {function.name: function for function in functions}
    for scheme, name in sorted(schemes.items()):
        if name not in declared or AUTHORIZER_TRIGGER not in declared[name].trigger_types():
            raise ContractError(f"{source}: securitySchemes.{scheme}: function {name!r} is not declared with '- type: {AUTHORIZER_TRIGGER}'")
    unused = sorted(name for name, f in declared.items() if AUTHORIZER_TRIGGER in f.trigger_types() and name not in schemes.values())
    if unused:
        raise ContractError(f"{source}: function(s) {', '.join(unused)} declare an authorizer trigger but no security scheme names them")


def draft4_schema(schema: Any, where: str = "schema") -> Any:
    """A contract schema as an API Gateway (JSON Schema draft 4) model:
    - OpenAPI-only annotations (example, readOnly, ...) and number formats are dropped;
    - `nullable: true` becomes "no type constraint": draft 4 has no nullable, and a type list
      including "null" is not reliably accepted by API Gateway, so the model accepts null;
    - `exclusiveMinimum`/`exclusiveMaximum` (unsupported) become inclusive bounds on integers;
    - `oneOf` is refused: dropping it would silently stop validating the body."""
    if isinstance(schema, list):
        return [draft4_schema(item, f"{where}[{index}]") for index, item in enumerate(schema)]
    if not isinstance(schema, dict):
        return schema
    unsupported = sorted(UNSUPPORTED_KEYWORDS & schema.keys())
    if unsupported:
        raise ContractError(f"{where}: {', '.join(unsupported)} is not supported by API Gateway models")
    result = {}
    for key, value in schema.items():
        if key in OPENAPI_ONLY_KEYWORDS or key == "nullable":
            continue
        if key == "format" and value in OPENAPI_ONLY_FORMATS:
            continue
        if key in ("properties", "definitions"):
            result[key] = {name: draft4_schema(sub, f"{where}.{key}.{name}") for name, sub in value.items()}
        else:
            result[key] = draft4_schema(value, f"{where}.{key}")
    if schema.get("nullable") is True:
        result.pop("type", None)
    _inclusive_bounds(result, where)
    return result


def _inclusive_bounds(schema: dict, where: str) -> None:
    for exclusive, bound, step in (("exclusiveMinimum", "minimum", 1), ("exclusiveMaximum", "maximum", -1)):
        if exclusive not in schema:
            continue
        if schema.pop(exclusive) is not True:
            continue
        if schema.get("type") != "integer" or bound not in schema:
            raise ContractError(f"{where}: {exclusive} is only rewritable on an integer with {bound}")
        schema[bound] += step


def _resolve_local_ref(contract: dict, value: Any, section: str) -> Any:
    """Inline `#/components/<section>/<name>` references: API Gateway's importer does not
    resolve shared parameters and responses in operations reliably (schemas it does)."""
    prefix = f"#/components/{section}/"
    if isinstance(value, dict) and isinstance(value.get("$ref"), str) and value["$ref"].startswith(prefix):
        name = value["$ref"][len(prefix):]
        try:
            return copy.deepcopy(contract["components"][section][name])
        except KeyError:
            raise ContractError(f"unresolved reference {value['$ref']}") from None
    return value


def _model_name(name: str) -> str:
    """Schemas become API Gateway models, whose names may hold only letters and digits."""
    if not name.isascii() or not name.isalnum():
        raise ContractError(f"components.schemas.{name}: model names may contain only letters and digits")
    return name


def lambda_integration(alias_arn: Any) -> dict:
    return {
        "type": "aws_proxy",
        "httpMethod": "POST",
        "uri": Sub(LAMBDA_INVOKE_URI, AliasArn=alias_arn),
        "passthroughBehavior": "when_no_match",
    }


def authorizer_schemes(contract: dict) -> dict[str, str]:
    """Security scheme name -> the function that authorizes it (its `x-function`)."""
    schemes = {}
    for name, scheme in sorted(((contract.get("components") or {}).get("securitySchemes") or {}).items()):
        function = (scheme or {}).get(FUNCTION_EXTENSION)
        if not isinstance(function, str) or not function:
            raise ContractError(f"components.securitySchemes.{name}: names no authorizer ('{FUNCTION_EXTENSION}: <function directory>')")
        schemes[name] = function
    return schemes


def _authorizer_scheme(authorizer_alias_arn: Any, ttl_s: int) -> dict:
    """The only form API Gateway imports a Lambda authorizer from (an http/bearer scheme is ignored)."""
    return {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "custom",
        "x-amazon-apigateway-authorizer": {
            "type": "request",
            "identitySource": AUTHORIZER_IDENTITY_SOURCE,
            "authorizerUri": Sub(LAMBDA_INVOKE_URI, AliasArn=authorizer_alias_arn),
            "authorizerResultTtlInSeconds": ttl_s,
        },
    }


def _operation_security(contract: dict, operation: dict, schemes: dict[str, str], where: str) -> list[dict] | None:
    """The operation's security as API Gateway reads it: its schemes plus the usage-plan key
    (which the authorizer supplies), or None for an operation the contract leaves open."""
    required = operation.get("security", contract.get("security", []))
    names = sorted({name for requirement in required for name in requirement})
    unknown = [name for name in names if name not in schemes]
    if unknown:
        raise ContractError(f"{where}: security names unknown scheme(s) {', '.join(unknown)}")
    if not names:
        return None
    return [{**{name: [] for name in names}, API_KEY_SCHEME: []}]


def integrate_contract(contract: dict, alias_arn_of: Callable[[str], Any], authorizer_ttl_s: int = 300) -> dict:
    """The RestApi Body for `contract`. `alias_arn_of(function_name)` gives the value (usually an
    Fn::ImportValue) of the function alias ARN each operation invokes. The input is not changed."""
    routes_by_function(contract)  # every operation names its function
    schemes = authorizer_schemes(contract)
    body = copy.deepcopy(contract)
    body.pop("servers", None)  # the invoke URL is the stage's; an example host would mislead
    body.pop("security", None)  # stated per operation below
    for path, method, operation in operations(body):
        function = operation.pop(FUNCTION_EXTENSION)
        operation["parameters"] = [_resolve_local_ref(contract, p, "parameters") for p in operation.get("parameters", [])]
        if not operation["parameters"]:
            del operation["parameters"]
        operation["responses"] = {
            status: _resolve_local_ref(contract, response, "responses")
            for status, response in operation.get("responses", {}).items()
        }
        security = _operation_security(contract, operation, schemes, f"{method.upper()} {path}")
        operation.pop("security", None)
        if security:
            operation["security"] = security
        operation["x-amazon-apigateway-request-validator"] = BODY_AND_PARAMS if "requestBody" in operation else PARAMS_ONLY
        operation["x-amazon-apigateway-integration"] = lambda_integration(alias_arn_of(function))
    components = body.setdefault("components", {})
    # Shared parameters and responses are inlined above; schemas stay as models.
    components.pop("parameters", None)
    components.pop("responses", None)
    components["schemas"] = {
        _model_name(name): draft4_schema(schema, f"components.schemas.{name}")
        for name, schema in components.get("schemas", {}).items()
    }
    components["securitySchemes"] = {
        API_KEY_SCHEME: {"type": "apiKey", "name": "x-api-key", "in": "header"},
        **{name: _authorizer_scheme(alias_arn_of(function), authorizer_ttl_s) for name, function in schemes.items()},
    }
    body["x-amazon-apigateway-api-key-source"] = "AUTHORIZER"
    body["x-amazon-apigateway-request-validators"] = copy.deepcopy(REQUEST_VALIDATORS)
    body["x-amazon-apigateway-gateway-responses"] = copy.deepcopy(GATEWAY_RESPONSES)
    return body


def body_digest(body: dict) -> str:
    """Stable short hash of the Body (intrinsics included) for the Deployment's logical id."""
    canonical = json.dumps(encode_to_dict(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _alias_arn_importer(config: EnvironmentConfig, functions: list[FunctionDeclaration]) -> Callable[[str], Any]:
    by_name = {function.name: function for function in functions}
    return lambda name: import_value(config, "compute", alias_export_key(by_name[name].logical_name))


def _logging_role(template: Template, config: EnvironmentConfig) -> iam.Role:
    """The role API Gateway uses to write execution and access logs. The setting that points at
    it is account-wide (every REST API of the account and region logs through it), so the role
    carries AWS's managed policy for exactly this, which covers every API's log groups: a role
    scoped to this platform's groups would silently break logging for every other API."""
    return template.add_resource(
        iam.Role(
            "ApiGatewayLoggingRole",
            RoleName=resource_name(config, "apigateway-logging"),
            Description="Account-wide setting: lets API Gateway write every API's execution and access logs",
            AssumeRolePolicyDocument=blocks.service_trust("apigateway.amazonaws.com"),
            ManagedPolicyArns=[Sub(API_GATEWAY_LOGGING_POLICY)],
            Tags=tags(config),
        )
    )


def _rest_api(template: Template, config: EnvironmentConfig, body: dict) -> apigateway.RestApi:
    return template.add_resource(
        apigateway.RestApi(
            "RestApi",
            Name=resource_name(config, "api"),
            Description=f"Payments API ({config.name}), from functions/{CONTRACT_FILE}",
            Body=body,
            # overwrite: an operation removed from the contract disappears from the API.
            Mode="overwrite",
            EndpointConfiguration=apigateway.EndpointConfiguration(Types=["REGIONAL"]),
            # the usage-plan key comes from the authorizer (usageIdentifierKey), not from clients
            ApiKeySourceType="AUTHORIZER",
            Tags=tags(config, resource_name(config, "api")),
        )
    )


def _stage(template, config, api, deployment, access_logs, depends_on) -> apigateway.Stage:
    settings = config.api
    stage = template.add_resource(
        apigateway.Stage(
            "ApiStage",
            DependsOn=depends_on,
            RestApiId=Ref(api),
            DeploymentId=Ref(deployment),
            StageName=settings.stage_name,
            Description=f"Payments API {settings.stage_name} ({config.name})",
            TracingEnabled=True,
            CacheClusterEnabled=False,
            MethodSettings=[
                apigateway.MethodSetting(
                    ResourcePath="/*",
                    HttpMethod="*",
                    ThrottlingRateLimit=settings.throttle_rate_per_s,
                    ThrottlingBurstLimit=settings.throttle_burst,
                    MetricsEnabled=True,
                    # INFO and data trace would write request bodies (card numbers) to the logs.
                    LoggingLevel="ERROR",
                    DataTraceEnabled=False,
                    CachingEnabled=False,
                )
            ],
            AccessLogSetting=apigateway.AccessLogSetting(
                DestinationArn=GetAtt(access_logs, "Arn"),
                Format=json.dumps(ACCESS_LOG_FIELDS, sort_keys=True, separators=(",", ":")),
            ),
            Tags=tags(config, resource_name(config, "api", settings.stage_name)),
        )
    )
    skip_checkov(stage, "CKV_AWS_120", "payment responses must never be served from a cache")
    return stage


def _usage_plan(template: Template, config: EnvironmentConfig, api, stage) -> apigateway.UsagePlan:
    """The plan every merchant's API key joins (tools/merchants.py): throttling and quotas only,
    never authentication. No key is created here."""
    settings = config.api
    return template.add_resource(
        apigateway.UsagePlan(
            "UsagePlan",
            UsagePlanName=resource_name(config, "usage-plan"),
            Description="Daily quota and throttle per merchant API key",
            ApiStages=[apigateway.ApiStage(ApiId=Ref(api), Stage=Ref(stage))],
            Quota=apigateway.QuotaSettings(Limit=settings.quota_per_day, Period="DAY"),
            Throttle=apigateway.ThrottleSettings(RateLimit=settings.throttle_rate_per_s, BurstLimit=settings.throttle_burst),
            Tags=tags(config, resource_name(config, "usage-plan")),
        )
    )


def _invoke_permissions(template, config, routed: list[FunctionDeclaration], authorizers: list[FunctionDeclaration], api) -> None:
    """One permission per function: only this API's stage may invoke a routed function's alias,
    only this API's authorizers an authorizer's."""
    stage_arn = f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{Api}}/{config.api.stage_name}/*"
    for functions, source_arn in ((routed, stage_arn), (authorizers, AUTHORIZERS_SOURCE_ARN)):
        for function in functions:
            template.add_resource(
                awslambda.Permission(
                    f"{function.logical_name}InvokePermission",
                    Action="lambda:InvokeFunction",
                    FunctionName=import_value(config, "compute", alias_export_key(function.logical_name)),
                    Principal="apigateway.amazonaws.com",
                    SourceArn=Sub(source_arn, Api=Ref(api)),
                )
            )


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR) -> Template:
    source = functions_dir / CONTRACT_FILE
    contract = load_contract(source)
    functions = load_functions(functions_dir)
    routes = routes_by_function(contract)
    check_functions(routes, functions, source)
    schemes = authorizer_schemes(contract)
    check_authorizers(schemes, functions, source)
    alias_arn_of = _alias_arn_importer(config, functions)
    body = integrate_contract(contract, alias_arn_of, config.api.authorizer_cache_ttl_s)

    template = new_template(config, LAYER, "REST API from functions/openapi.yaml, stage, keys, WAF")
    logs_key = import_value(config, "security", "LogsKeyArn")
    api = _rest_api(template, config, body)
    access_logs = blocks.log_group(
        template, config, "AccessLogGroup", f"/aws/apigateway/{resource_name(config, 'api')}-access", logs_key
    )
    # Created here so API Gateway does not create it itself (unencrypted, never expiring).
    execution_logs = blocks.log_group(
        template,
        config,
        "ExecutionLogGroup",
        Sub(f"API-Gateway-Execution-Logs_${{Api}}/{config.api.stage_name}", Api=Ref(api)),
        logs_key,
    )
    account = template.add_resource(
        apigateway.Account("ApiGatewayAccount", CloudWatchRoleArn=GetAtt(_logging_role(template, config), "Arn"))
    )
    deployment = template.add_resource(
        apigateway.Deployment(
            f"ApiDeployment{body_digest(body)}",
            RestApiId=Ref(api),
            Description=f"Contract {contract.get('info', {}).get('version', 'unversioned')} (id carries the Body hash)",
        )
    )
    stage = _stage(template, config, api, deployment, access_logs, [account.title, execution_logs.title])
    plan = _usage_plan(template, config, api, stage)
    _invoke_permissions(template, config, [f for f in functions if f.name in routes],
                        [f for f in functions if f.name in schemes.values()], api)
    template.add_resource(
        wafv2.WebACLAssociation(
            "StageWebAclAssociation",
            ResourceArn=Sub(
                "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${Api}/stages/${Stage}",
                Api=Ref(api),
                Stage=Ref(stage),
            ),
            WebACLArn=import_value(config, "compute", "WebAclArn"),
        )
    )
    export(template, config, LAYER, "RestApiId", Ref(api), "Id of the payments REST API")
    export(template, config, LAYER, "RestApiName", resource_name(config, "api"), "Name of the payments REST API (CloudWatch ApiName)")
    export(template, config, LAYER, "StageName", Ref(stage), "Stage serving the payments API")
    export(template, config, LAYER, "UsagePlanId", Ref(plan), "Usage plan every merchant's API key joins (tools/merchants.py)")
    return template
