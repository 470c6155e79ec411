"""api layer: the REST API from functions/openapi.yaml, its stage, keys, permissions and WAF."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from templates_src import api
from templates_src.config import ConfigError, load_environment
from templates_src.function_catalog import FUNCTIONS_DIR, load_functions

from .helpers import assert_data_policy, logical, write_function

ENVIRONMENTS = ("dev", "staging", "prod")
REAL_CONTRACT = FUNCTIONS_DIR / api.CONTRACT_FILE
PARAMETERS_DIR = Path(__file__).resolve().parents[2] / "parameters"


@pytest.fixture
def contract() -> dict:
    return api.load_contract(REAL_CONTRACT)


@pytest.fixture
def functions_dir(tmp_path: Path, contract: dict) -> Path:
    """The repository's contract with an api-triggered declaration per function it routes to."""
    directory = tmp_path / "functions"
    directory.mkdir()
    shutil.copy(REAL_CONTRACT, directory / api.CONTRACT_FILE)
    for name in api.routes_by_function(contract):
        write_function(directory, name, ["api"])
    write_function(directory, "authorizer", ["authorizer"])
    write_function(directory, "queue_only", ["stepfunctions"])
    return directory


def build_dict(env: str, functions_dir: Path) -> dict:
    return json.loads(api.build(load_environment(env), functions_dir).to_json())


def resources_of(template: dict, resource_type: str) -> dict[str, dict]:
    return {key: r for key, r in template["Resources"].items() if r["Type"] == resource_type}


# --- the contract transformation (pure) ----------------------------------------------------------


def marker(name: str) -> str:
    return f"alias-of:{name}"


def test_every_operation_is_integrated_with_its_function(contract):
    body = api.integrate_contract(contract, marker)
    source_operations = api.operations(contract)
    assert [(p, m) for p, m, _ in api.operations(body)] == [(p, m) for p, m, _ in source_operations]
    assert len(source_operations) >= 5
    for (path, method, source), (_, _, operation) in zip(source_operations, api.operations(body), strict=False):
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy" and integration["httpMethod"] == "POST", (method, path)
        template_string, variables = integration["uri"].to_dict()["Fn::Sub"]
        assert variables == {"AliasArn": marker(source["x-function"])}
        assert template_string.startswith("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/")
        expected_validator = api.BODY_AND_PARAMS if "requestBody" in source else api.PARAMS_ONLY
        assert operation["x-amazon-apigateway-request-validator"] == expected_validator
        assert api.FUNCTION_EXTENSION not in operation
        assert operation["operationId"] == source["operationId"]


def test_spec_routes_are_present(contract):
    routes = {(method, path) for routes in api.routes_by_function(contract).values() for method, path in routes}
    assert {("POST", "/payments"), ("GET", "/payments/{payment_id}"), ("POST", "/payments/validate"),
            ("POST", "/fraud-check"), ("GET", "/status")} <= routes


def test_post_validates_body_and_get_validates_parameters(contract):
    body = api.integrate_contract(contract, marker)
    validators = body["x-amazon-apigateway-request-validators"]
    assert validators[api.BODY_AND_PARAMS] == {"validateRequestBody": True, "validateRequestParameters": True}
    assert validators[api.PARAMS_ONLY] == {"validateRequestBody": False, "validateRequestParameters": True}
    operations = {(m, p): op for p, m, op in api.operations(body)}
    assert operations[("post", "/payments")]["x-amazon-apigateway-request-validator"] == api.BODY_AND_PARAMS
    assert operations[("get", "/status")]["x-amazon-apigateway-request-validator"] == api.PARAMS_ONLY


def test_shared_references_inlined(contract):
    body = api.integrate_contract(contract, marker)
    assert "servers" not in body
    text = json.dumps(api.integrate_contract(contract, marker), default=str)
    assert "#/components/parameters/" not in text and "#/components/responses/" not in text
    create = body["paths"]["/payments"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    assert set(body["components"]["schemas"]) == set(contract["components"]["schemas"])


def test_bearer_scheme_becomes_the_request_authorizer_api_gateway_imports(contract):
    # API Gateway imports authorizers only from apiKey schemes with x-amazon-apigateway-authorizer
    # (an http/bearer scheme is silently ignored): the contract's scheme is rewritten to that form.
    body = api.integrate_contract(contract, marker, authorizer_ttl_s=120)
    scheme = body["components"]["securitySchemes"]["merchant_key"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header" and scheme["name"] == "Authorization"
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert authorizer["authorizerResultTtlInSeconds"] == 120
    assert authorizer["authorizerUri"].to_dict()["Fn::Sub"][1] == {"AliasArn": "alias-of:authorizer"}
    assert body["components"]["securitySchemes"][api.API_KEY_SCHEME] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert body["x-amazon-apigateway-api-key-source"] == "AUTHORIZER"
    assert "security" not in body  # stated per operation, as API Gateway reads it


def test_every_operation_but_status_needs_the_authorizer_and_the_usage_plan_key(contract):
    body = api.integrate_contract(contract, marker)
    for path, method, operation in api.operations(body):
        if (method, path) == ("get", "/status"):
            assert "security" not in operation
        else:
            assert operation["security"] == [{"merchant_key": [], api.API_KEY_SCHEME: []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_a_scheme_without_its_authorizer_function_is_refused(contract):
    del contract["components"]["securitySchemes"]["merchant_key"][api.FUNCTION_EXTENSION]
    with pytest.raises(api.ContractError, match="merchant_key.*x-function"):
        api.integrate_contract(contract, marker)


def test_an_operation_naming_an_unknown_scheme_is_refused(contract):
    contract["paths"]["/payments"]["post"]["security"] = [{"mystery": []}]
    with pytest.raises(api.ContractError, match="POST /payments.*mystery"):
        api.integrate_contract(contract, marker)


def test_missing_key_answers_401_with_the_bearer_challenge(contract):
    responses = api.integrate_contract(contract, marker)["x-amazon-apigateway-gateway-responses"]
    assert responses["UNAUTHORIZED"]["statusCode"] == "401"
    assert responses["UNAUTHORIZED"]["responseParameters"] == {"gatewayresponse.header.WWW-Authenticate": "'Bearer'"}


def test_transformation_leaves_the_input_alone(contract):
    before = copy.deepcopy(contract)
    api.integrate_contract(contract, marker)
    assert contract == before


def test_gateway_errors_use_the_contract_error_shape(contract):
    body = api.integrate_contract(contract, marker)
    for response in body["x-amazon-apigateway-gateway-responses"].values():
        template = response["responseTemplates"]["application/json"]
        rendered = template.replace("$context.error.messageString", '"a message"')
        assert set(json.loads(rendered)["error"]) == {"code", "message"}


def test_operation_without_function_is_refused(contract):
    del contract["paths"]["/status"]["get"][api.FUNCTION_EXTENSION]
    with pytest.raises(api.ContractError, match="GET /status.*x-function"):
        api.integrate_contract(contract, marker)


def test_operation_without_operation_id_is_refused(contract):
    del contract["paths"]["/status"]["get"]["operationId"]
    with pytest.raises(api.ContractError, match="GET /status.*operationId"):
        api.integrate_contract(contract, marker)


# --- draft 4 models ------------------------------------------------------------------------------


def test_openapi_only_keywords_are_dropped():
    schema = {
        "type": "object",
        "example": {"a": 1},
        "properties": {
            "id": {"type": "integer", "format": "int64", "readOnly": True},
            "note": {"type": "string", "nullable": True, "maxLength": 5},
            "when": {"type": "string", "format": "date-time"},
        },
    }
    converted = api.draft4_schema(schema)
    assert converted == {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "note": {"maxLength": 5}, "when": {"type": "string", "format": "date-time"}},
    }


def test_property_named_like_a_keyword_is_kept():
    schema = {"type": "object", "properties": {"example": {"type": "string"}}}
    assert api.draft4_schema(schema) == schema


def test_exclusive_integer_bounds_become_inclusive():
    converted = api.draft4_schema({"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 10, "exclusiveMaximum": True})
    assert converted == {"type": "integer", "minimum": 1, "maximum": 9}


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, "exclusiveMinimum"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "oneOf"),
        ({"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}]}}}, r"properties\.x.*oneOf"),
    ],
)
def test_unrepresentable_schema_is_refused(schema, message):
    with pytest.raises(api.ContractError, match=message):
        api.draft4_schema(schema)


def test_model_name_api_gateway_refuses_is_reported(contract):
    contract["components"]["schemas"]["Payment_Request"] = {"type": "object"}
    with pytest.raises(api.ContractError, match="Payment_Request.*letters and digits"):
        api.integrate_contract(contract, marker)


def test_contract_models_carry_no_openapi_only_keyword(contract):
    text = json.dumps(api.integrate_contract(contract, marker)["components"]["schemas"])
    for keyword in ("nullable", "example", "readOnly", "writeOnly", "discriminator", "oneOf", "int64"):
        assert f'"{keyword}"' not in text


# --- contract vs declarations --------------------------------------------------------------------


def test_undeclared_function_is_refused(functions_dir):
    shutil.rmtree(functions_dir / "status")
    with pytest.raises(api.ContractError, match="GET /status.*'status' is not a declared function"):
        api.build(load_environment("dev"), functions_dir)


def test_function_without_api_trigger_is_refused(functions_dir):
    shutil.rmtree(functions_dir / "status")
    write_function(functions_dir, "status", ["stepfunctions"])
    with pytest.raises(api.ContractError, match="'status' does not declare '- type: api'"):
        api.build(load_environment("dev"), functions_dir)


def test_api_function_without_route_is_refused(functions_dir):
    write_function(functions_dir, "orphan_handler", ["api"])
    with pytest.raises(api.ContractError, match="orphan_handler declare an api trigger"):
        api.build(load_environment("dev"), functions_dir)


def test_contract_that_is_not_openapi_3_is_refused(functions_dir):
    (functions_dir / api.CONTRACT_FILE).write_text("swagger: '2.0'\npaths: {}\n")
    with pytest.raises(api.ContractError, match="OpenAPI 3.0"):
        api.build(load_environment("dev"), functions_dir)


# --- the template --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rest_api_is_regional_with_the_integrated_contract(env, functions_dir, contract):
    template = build_dict(env, functions_dir)
    properties = template["Resources"]["RestApi"]["Properties"]
    assert properties["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    assert properties["Name"] == f"payments-{env}-api"
    assert properties["Mode"] == "overwrite"
    for path, method, source in api.operations(contract):
        uri = properties["Body"]["paths"][path][method]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"][1]
        assert uri == {"AliasArn": {"Fn::ImportValue": f"payments-{env}-compute-{logical(source['x-function'])}AliasArn"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stage_settings_come_from_the_environment(env, functions_dir):
    config = load_environment(env)
    template = build_dict(env, functions_dir)
    stage = template["Resources"]["ApiStage"]
    properties = stage["Properties"]
    assert properties["StageName"] == config.api.stage_name
    assert properties["TracingEnabled"] is True
    assert properties["CacheClusterEnabled"] is False
    assert [s["id"] for s in stage["Metadata"]["checkov"]["skip"]] == ["CKV_AWS_120"]
    (setting,) = properties["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == config.api.throttle_rate_per_s
    assert setting["ThrottlingBurstLimit"] == config.api.throttle_burst
    assert setting["LoggingLevel"] == "ERROR"
    assert setting["DataTraceEnabled"] is False
    assert setting["MetricsEnabled"] is True
    access_log = properties["AccessLogSetting"]
    assert access_log["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}
    fields = json.loads(access_log["Format"])
    assert fields["requestId"] == "$context.requestId" and fields["status"] == "$context.status"
    assert {"ApiGatewayAccount", "ExecutionLogGroup"} <= set(stage["DependsOn"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_log_groups_are_encrypted_with_retention(env, functions_dir):
    config = load_environment(env)
    log_groups = resources_of(build_dict(env, functions_dir), "AWS::Logs::LogGroup")
    assert set(log_groups) == {"AccessLogGroup", "ExecutionLogGroup"}
    for log_group in log_groups.values():
        assert log_group["Properties"]["KmsKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-LogsKeyArn"}
        assert log_group["Properties"]["RetentionInDays"] == config.log_retention_days
        assert_data_policy(log_group, env)
    execution_name = log_groups["ExecutionLogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
    assert execution_name[0] == f"API-Gateway-Execution-Logs_${{Api}}/{config.api.stage_name}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_key_usage_plan_quota_and_throttle(env, functions_dir):
    config = load_environment(env)
    template = build_dict(env, functions_dir)
    (plan,) = resources_of(template, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Quota"] == {"Limit": config.api.quota_per_day, "Period": "DAY"}
    assert plan["Properties"]["Throttle"] == {"BurstLimit": config.api.throttle_burst, "RateLimit": config.api.throttle_rate_per_s}
    assert plan["Properties"]["ApiStages"] == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": "ApiStage"}}]
    # merchants' keys are created by tools/merchants.py under this plan, never in the template
    assert not resources_of(template, "AWS::ApiGateway::ApiKey")
    assert not resources_of(template, "AWS::ApiGateway::UsagePlanKey")
    assert template["Outputs"]["UsagePlanId"]["Export"]["Name"] == f"payments-{env}-api-UsagePlanId"
    assert template["Resources"]["RestApi"]["Properties"]["ApiKeySourceType"] == "AUTHORIZER"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_this_api_may_invoke_the_authorizer_with_the_configured_cache(env, functions_dir):
    config = load_environment(env)
    template = build_dict(env, functions_dir)
    properties = template["Resources"]["AuthorizerInvokePermission"]["Properties"]
    assert properties["FunctionName"] == {"Fn::ImportValue": f"payments-{env}-compute-AuthorizerAliasArn"}
    assert properties["Principal"] == "apigateway.amazonaws.com"
    assert properties["SourceArn"]["Fn::Sub"][0].endswith(":${Api}/authorizers/*")
    body = template["Resources"]["RestApi"]["Properties"]["Body"]
    authorizer = body["components"]["securitySchemes"]["merchant_key"]["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerResultTtlInSeconds"] == config.api.authorizer_cache_ttl_s == 300


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_invoke_permission_per_routed_function_scoped_to_the_stage(env, functions_dir, contract):
    config = load_environment(env)
    permissions = resources_of(build_dict(env, functions_dir), "AWS::Lambda::Permission")
    permissions.pop("AuthorizerInvokePermission")
    routed = sorted(api.routes_by_function(contract))
    assert sorted(permissions) == sorted(f"{logical(name)}InvokePermission" for name in routed)
    for name in routed:
        properties = permissions[f"{logical(name)}InvokePermission"]["Properties"]
        assert properties["FunctionName"] == {"Fn::ImportValue": f"payments-{env}-compute-{logical(name)}AliasArn"}
        assert properties["Principal"] == "apigateway.amazonaws.com"
        source_arn, variables = properties["SourceArn"]["Fn::Sub"]
        assert source_arn.endswith(f":${{Api}}/{config.api.stage_name}/*")
        assert source_arn.startswith("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:")
        assert variables == {"Api": {"Ref": "RestApi"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_waf_account_and_exports(env, functions_dir):
    template = build_dict(env, functions_dir)
    (association,) = resources_of(template, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::ImportValue": f"payments-{env}-compute-WebAclArn"}
    assert "/restapis/${Api}/stages/${Stage}" in association["Properties"]["ResourceArn"]["Fn::Sub"][0]
    (account,) = resources_of(template, "AWS::ApiGateway::Account").values()
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayLoggingRole", "Arn"]}
    role = template["Resources"]["ApiGatewayLoggingRole"]["Properties"]
    # the setting is account-wide: AWS's managed policy, never one scoped to this platform's logs
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]
    assert "Policies" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    exports = {key: output["Export"]["Name"] for key, output in template["Outputs"].items()}
    assert exports == {key: f"payments-{env}-api-{key}" for key in ("RestApiId", "RestApiName", "StageName", "UsagePlanId")}
    assert template["Outputs"]["RestApiName"]["Value"] == f"payments-{env}-api"


def deployment_ids(template: dict) -> list[str]:
    return sorted(resources_of(template, "AWS::ApiGateway::Deployment"))


def test_contract_change_redeploys_the_stage(functions_dir):
    before = build_dict("staging", functions_dir)
    assert build_dict("staging", functions_dir) == before  # same contract, same ids
    contract_file = functions_dir / api.CONTRACT_FILE
    changed = yaml.safe_load(contract_file.read_text())
    changed["paths"]["/status"]["get"]["summary"] = "Health, reworded"
    contract_file.write_text(yaml.safe_dump(changed))
    after = build_dict("staging", functions_dir)
    (old_id,), (new_id,) = deployment_ids(before), deployment_ids(after)
    assert old_id != new_id and new_id.startswith("ApiDeployment")
    assert after["Resources"]["ApiStage"]["Properties"]["DeploymentId"] == {"Ref": new_id}


def test_bad_stage_name_stops_the_config(tmp_path):
    for env in ENVIRONMENTS:
        shutil.copy(PARAMETERS_DIR / f"{env}.yaml", tmp_path / f"{env}.yaml")
    raw = yaml.safe_load((tmp_path / "dev.yaml").read_text())
    raw["api"]["stage_name"] = "v-1"
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"api\.stage_name"):
        load_environment("dev", tmp_path)


@pytest.mark.skipif(
    not any(d.name != "paylib" and (d / "function.yaml").exists() for d in FUNCTIONS_DIR.iterdir() if d.is_dir()),
    reason="functions/ declarations not written yet",
)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_repository_contract_and_declarations_build(env, contract):
    template = json.loads(api.build(load_environment(env)).to_json())
    declared = {f.name for f in load_functions()}
    assert set(api.routes_by_function(contract)) <= declared
    # one per routed function, and the authorizer's
    assert len(resources_of(template, "AWS::Lambda::Permission")) == len(api.routes_by_function(contract)) + 1
