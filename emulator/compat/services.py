"""Service APIs (not CloudFormation) the deploy tool calls through the emulator.

Checked to work unchanged in moto 5.2.5: STS GetCallerIdentity, Lambda GetFunctionConcurrency,
ECR DescribeImages, IAM GetRole / CreateServiceLinkedRole, ACM DescribeCertificate, Route 53
GetHostedZone, API Gateway GetAccount, EC2 DescribeVpcs / DescribeAddresses /
DescribeNatGateways / DescribeRegions (tests/emulator/test_service_apis.py calls each).
Patched here:
- Lambda GetAccountSettings: not implemented by moto (no route, HTML 500);
- Service Quotas GetServiceQuota: moto knows only the VPC quotas; the account-level quotas a
  deploy checks get AWS's default values (an account that never asked for an increase).
"""
from __future__ import annotations

import json
from typing import Any

# AWS's default values (Service Quotas console, "AWS default quota value"), for an account
# without increases. Keys: (service code, quota code).
DEFAULT_QUOTAS: dict[tuple[str, str], tuple[str, str, float, bool]] = {
    ("lambda", "L-B99A9384"): ("AWS Lambda", "Concurrent executions", 1000.0, True),
    ("lambda", "L-2ACBD22F"): ("AWS Lambda", "Function and layer storage", 80530636800.0, True),
    ("ec2", "L-0263D0A3"): ("Amazon Elastic Compute Cloud (Amazon EC2)", "EC2-VPC Elastic IPs", 5.0, True),
    ("cloudformation", "L-0485CB21"): ("AWS CloudFormation", "Stack count", 2000.0, True),
    ("cloudformation", "L-E8EA8C50"): ("AWS CloudFormation", "Export count", 5000.0, True),
    ("rds", "L-952B80B8"): ("Amazon Relational Database Service (Amazon RDS)", "DB clusters", 40.0, True),
    ("ecs", "L-21C621EB"): ("Amazon Elastic Container Service (Amazon ECS)", "Clusters per account", 10000.0, True),
    ("elasticloadbalancing", "L-53DA6B97"): ("Elastic Load Balancing (ELB)", "Application Load Balancers per Region", 50.0, True),
    ("apigateway", "L-A966AB5C"): ("Amazon API Gateway", "Regional APIs per account", 600.0, True),
}


def _account_settings(account_id: str, region: str) -> dict[str, Any]:
    from moto.awslambda.utils import get_backend

    backend = get_backend(account_id, region)
    functions = list(backend.list_functions())
    code_size = sum(int(getattr(f, "code_size", 0) or 0) for f in functions)
    reserved = sum(int(c) for c in (backend.get_function_concurrency(f.function_name) for f in functions) if c)
    return {
        "AccountLimit": {
            "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000 - reserved,
        },
        "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": len(functions)},
    }


def _lambda_patch() -> None:
    # moto gap: Lambda GetAccountSettings (GET /2016-08-19/account-settings/) has no route and
    # no handler in moto; the answer is AWS's default limits, the usage is moto's functions.
    from moto.awslambda import urls
    from moto.awslambda.responses import LambdaResponse

    urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = LambdaResponse.dispatch

    def get_account_settings(self: Any) -> Any:
        return 200, {}, json.dumps(_account_settings(self.current_account, self.region))

    LambdaResponse.get_account_settings = get_account_settings


def _quotas_patch() -> None:
    # moto gap: ServiceQuotas GetServiceQuota answers NoSuchResource for anything but VPC.
    from moto.servicequotas.models import ServiceQuotasBackend

    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        known = DEFAULT_QUOTAS.get((service_code, quota_code))
        if known is None:
            return original(self, service_code, quota_code)
        service_name, quota_name, value, adjustable = known
        return {
            "ServiceCode": service_code, "ServiceName": service_name, "QuotaCode": quota_code,
            "QuotaName": quota_name, "Value": value, "Unit": "None", "Adjustable": adjustable,
            "GlobalQuota": False,
            "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:{service_code}/{quota_code}",
        }

    ServiceQuotasBackend.get_service_quota = get_service_quota


def apply() -> None:
    _lambda_patch()
    _quotas_patch()
