"""compute layer: the Lambda functions, the payment API on ECS Fargate behind an ALB, and the
WAFv2 web ACL that protects the ALB (and, through the WebAclArn export, the API stage).

The pieces live in helpers so each stays readable:
- `compute_functions`: one Lambda per `functions/<name>/function.yaml`, each with its own
  least-privilege role, KMS-encrypted log group, version + `live` alias, and triggers.
- `compute_ecs`: cluster, task definition, service (rolling deployments with the circuit
  breaker), ALB with HTTPS + HTTP->HTTPS redirect, auto scaling on CPU and memory.
- here: the web ACL (managed common, known bad inputs and SQLi rule sets plus a per-IP rate
  limit from the environment), its log group and the exports listed in docs/exports.md.
"""
from __future__ import annotations

from pathlib import Path

from troposphere import GetAtt, Ref, Sub, Template, wafv2

from . import blocks
from .common import export, import_value, new_template, resource_name, tags
from .compute_ecs import add_ecs
from .compute_functions import add_functions
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, alias_export_key, function_name_export_key, load_functions

LAYER = "compute"
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR) -> Template:
    template = new_template(config, LAYER, "Lambda functions, ECS Fargate payment API behind an ALB, WAF")
    functions = add_functions(template, config, load_functions(functions_dir), functions_dir)
    service = add_ecs(template, config)
    web_acl = _web_acl(template, config)
    template.add_resource(
        wafv2.WebACLAssociation(
            "LoadBalancerWebAcl", ResourceArn=Ref(service.load_balancer), WebACLArn=GetAtt(web_acl, "Arn")
        )
    )
    _exports(template, config, functions, service, web_acl)
    return template


def _visibility(metric_name: str) -> wafv2.VisibilityConfig:
    return wafv2.VisibilityConfig(
        CloudWatchMetricsEnabled=True, MetricName=metric_name, SampledRequestsEnabled=True
    )


def _web_acl(template: Template, config: EnvironmentConfig) -> wafv2.WebACL:
    rules = [
        wafv2.WebACLRule(
            Name="RateLimitPerIp",
            Priority=0,
            Action=wafv2.RuleAction(Block=wafv2.BlockAction()),
            Statement=wafv2.Statement(
                RateBasedStatement=wafv2.RateBasedStatement(
                    Limit=config.api.waf_rate_limit_per_5min, AggregateKeyType="IP", EvaluationWindowSec=300
                )
            ),
            VisibilityConfig=_visibility("RateLimitPerIp"),
        )
    ]
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
        rules.append(
            wafv2.WebACLRule(
                Name=group,
                Priority=priority,
                OverrideAction=wafv2.OverrideAction(**{"None": {}}),
                Statement=wafv2.Statement(
                    ManagedRuleGroupStatement=wafv2.ManagedRuleGroupStatement(VendorName="AWS", Name=group)
                ),
                VisibilityConfig=_visibility(group),
            )
        )
    name = resource_name(config, "web-acl")
    web_acl = template.add_resource(
        wafv2.WebACL(
            "WebAcl",
            Name=name,
            Scope="REGIONAL",
            Description="Payments ALB and API stage: managed rule sets and a per-IP rate limit",
            DefaultAction=wafv2.DefaultAction(Allow=wafv2.AllowAction()),
            Rules=rules,
            VisibilityConfig=_visibility(name),
            Tags=tags(config, name),
        )
    )
    # WAF insists on the aws-waf-logs- prefix for log group destinations.
    log_group = blocks.log_group(
        template,
        config,
        "WebAclLogGroup",
        f"aws-waf-logs-payments-{config.name}",
        import_value(config, "security", "LogsKeyArn"),
    )
    template.add_resource(
        wafv2.LoggingConfiguration(
            "WebAclLogging",
            ResourceArn=GetAtt(web_acl, "Arn"),
            # WAF wants the bare log group ARN, without the ":*" that GetAtt Arn carries.
            LogDestinationConfigs=[
                Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${LogGroup}", LogGroup=Ref(log_group))
            ],
        )
    )
    return web_acl


def _exports(template: Template, config: EnvironmentConfig, functions: dict, service, web_acl) -> None:
    for name, (function, alias) in sorted(functions.items()):
        logical = function.title.removesuffix("Function")
        export(template, config, LAYER, function_name_export_key(logical), Ref(function), f"{name} function name")
        export(template, config, LAYER, alias_export_key(logical), Ref(alias), f"{name} `live` alias ARN (invoke this)")
    export(template, config, LAYER, "AlbFullName", GetAtt(service.load_balancer, "LoadBalancerFullName"), "ALB (metrics dimension)")
    export(
        template,
        config,
        LAYER,
        "TargetGroupFullName",
        GetAtt(service.target_group, "TargetGroupFullName"),
        "API target group (metrics dimension)",
    )
    export(template, config, LAYER, "EcsClusterName", Ref(service.cluster), "ECS cluster name")
    export(template, config, LAYER, "EcsServiceName", GetAtt(service.service, "Name"), "ECS payment API service name")
    export(template, config, LAYER, "WebAclArn", GetAtt(web_acl, "Arn"), "WAFv2 web ACL for the ALB and the API stage")
