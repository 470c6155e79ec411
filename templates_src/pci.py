"""docs/pci-dss.md: the PCI DSS v4.0 evidence an assessor asks for, generated from the build.

A table of data: per requirement the infrastructure can meet, the resources that implement it
(found in the rendered prod templates by layer and type or logical id, so a row names only
resources that exist) and the tests that prove it (checked to exist in the repository). A row
that finds no resource, or names a test that does not exist, stops the generation: nothing is
claimed without something behind it. Requirements that belong to the account or the
organisation are listed as such, with what the operator must turn on. Every checkov skip and
cfn-lint suppression of every environment, with its reason, closes the document.

`make golden` rewrites docs/pci-dss.md; tests/test_golden.py keeps it current.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Evidence:
    """Resources of one layer: every resource of `types`, plus the named `logical_ids`."""

    layer: str
    types: tuple[str, ...] = ()
    logical_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirement:
    number: str
    title: str
    how: str
    evidence: tuple[Evidence, ...]
    tests: tuple[str, ...]  # "path::test_name"


P = "tests/test_policies.py::"
NET = "tests/layers/test_network.py::"
SEC = "tests/layers/test_security.py::"
STO = "tests/layers/test_storage.py::"
CMP = "tests/layers/test_compute.py::"
API = "tests/layers/test_api.py::"
DAT = "tests/layers/test_data.py::"
MER = "tests/functions/test_merchants.py::"
MSG = "tests/layers/test_messaging.py::"
MON = "tests/layers/test_monitoring.py::"
DEL = "tests/layers/test_delivery.py::"

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("1.2, 1.3", "Network security controls restrict traffic to and from the cardholder data environment",
                "three tiers per AZ; the database tier has no route out; every security group states its ingress "
                "and egress; the VPC's default security group has no rules; flow logs on",
                (Evidence("network", ("AWS::EC2::VPC", "AWS::EC2::SecurityGroup", "AWS::EC2::FlowLog"),
                          ("IsolatedRouteTable", "DefaultSecurityGroupRestriction")),),
                (NET + "test_isolated_subnets_have_no_default_route", NET + "test_no_security_group_keeps_allow_all_egress",
                 NET + "test_database_accepts_postgres_from_app_tasks_only",
                 NET + "test_default_security_group_is_closed_by_the_custom_resource",
                 NET + "test_no_subnet_hands_out_public_ips")),
    Requirement("1.4", "Connections between untrusted networks and the CDE are controlled",
                "the internet reaches only the load balancer (443) and the regional API, both behind the WAF; "
                "tasks, functions and the database are private",
                (Evidence("compute", ("AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::WAFv2::WebACL")),
                 Evidence("api", ("AWS::ApiGateway::RestApi", "AWS::WAFv2::WebACLAssociation"))),
                (CMP + "test_service_is_private_and_rolls_with_the_circuit_breaker",
                 CMP + "test_every_function_runs_hardened_in_the_private_subnets",
                 CMP + "test_web_acl_rules_logging_and_association", NET + "test_app_tasks_accept_the_container_port_from_the_load_balancer_only")),
    Requirement("2.2", "System components are configured securely",
                "read-only, non-root containers; invalid headers dropped at the ALB; no account id or secret in "
                "any template; every resource tagged with its owner",
                (Evidence("compute", ("AWS::ECS::TaskDefinition",), ("LoadBalancer",)),),
                (CMP + "test_task_runs_read_only_non_root_and_reaches_the_database_with_iam",
                 P + "test_no_secret_values_in_templates", P + "test_no_template_names_an_account_literally",
                 P + "test_every_taggable_resource_carries_the_standard_tags")),
    Requirement("3.3.1.2, 3.5", "Sensitive authentication data is not retained; stored account data is protected",
                "the card number is never stored (brand, last four and a keyed fingerprint only) and the CVC never "
                "leaves the request, not even hashed: the idempotency request hash covers the fingerprint, not the "
                "number, and no CVC; every store is encrypted with a customer-managed key",
                (Evidence("data", ("AWS::DynamoDB::Table", "AWS::RDS::DBCluster")),
                 Evidence("storage", ("AWS::S3::Bucket",))),
                ("tests/functions/test_card_scan.py::test_nothing_stored_or_logged_so_far_holds_a_card_number",
                 "tests/functions/test_idempotency.py::test_the_request_hash_does_not_depend_on_the_cvc",
                 P + "test_every_bucket_is_encrypted_versioned_private_and_tls_only",
                 P + "test_queues_topics_tables_use_kms", DAT + "test_tables_are_on_demand_recoverable_and_kms_encrypted")),
    Requirement("3.6, 3.7", "Cryptographic keys are protected and managed",
                "one customer-managed key per purpose, rotated yearly; key policies name only the services that use "
                "a key as themselves, with source conditions; nobody may create a grant that is not for an AWS "
                "resource",
                (Evidence("security", ("AWS::KMS::Key",)),),
                (P + "test_kms_keys_rotate", P + "test_pci_3_6_every_key_refuses_grants_that_are_not_for_an_aws_resource",
                 P + "test_pci_3_6_each_consumer_of_the_keys_still_works",
                 SEC + "test_data_key_names_only_the_services_that_use_it_as_themselves_with_source_conditions")),
    Requirement("4.2", "Cardholder data is encrypted in transit over open networks",
                "HTTPS only (TLS 1.2+ policy) and no port 80 in staging and prod; buckets, queues and topics deny "
                "requests without TLS; the database refuses connections without TLS",
                (Evidence("compute", ("AWS::ElasticLoadBalancingV2::Listener",)),
                 Evidence("storage", ("AWS::S3::BucketPolicy",)),
                 Evidence("data", ("AWS::RDS::DBClusterParameterGroup",))),
                (P + "test_pci_4_2_staging_and_prod_have_no_port_80", CMP + "test_alb_terminates_tls_and_redirects_http",
                 P + "test_every_bucket_is_encrypted_versioned_private_and_tls_only",
                 DAT + "test_cluster_is_encrypted_tls_only_and_iam_authenticated")),
    Requirement("6.4", "Public-facing web applications are protected against attacks",
                "AWS managed rule sets (common, known bad inputs, SQL injection) and a per-IP rate limit on the ALB "
                "and the API stage; the API validates requests against its contract",
                (Evidence("compute", ("AWS::WAFv2::WebACL", "AWS::WAFv2::LoggingConfiguration")),
                 Evidence("api", ("AWS::WAFv2::WebACLAssociation",))),
                (CMP + "test_web_acl_rules_logging_and_association", API + "test_post_validates_body_and_get_validates_parameters")),
    Requirement("7.2", "Access is least privilege",
                "one role per function with only its declared permissions; no wildcard action anywhere; `*` "
                "resources only where AWS authorises nothing narrower; each merchant sees only its own payments "
                "(another merchant's is a 404), idempotency keys, velocity and batch files scoped by merchant",
                (Evidence("compute", ("AWS::IAM::Role",)), Evidence("data", (), ("MerchantsTable",))),
                (P + "test_no_allow_statement_has_a_wildcard_action", P + "test_star_resource_only_where_aws_allows_nothing_narrower",
                 CMP + "test_each_role_writes_only_its_own_log_group_and_declared_resources",
                 MER + "test_another_merchants_payment_is_404", MER + "test_no_merchant_reads_another_merchants_payment",
                 MER + "test_another_merchant_with_the_same_idempotency_key_gets_its_own_payment")),
    Requirement("7.2", "Access to change the environment is least privilege",
                "CloudFormation deploys as its own service role: only the actions AWS's resource registry lists for "
                "the platform's resource types, on this account's resources; roles only `payments-<env>-*` and only "
                "with the permissions boundary; no IAM users or keys. The GitHub deploy role creates change sets only "
                "with that role and the platform's resource types, and never touches the bootstrap and delivery "
                "stacks; pull requests plan with a role that cannot execute",
                (Evidence("delivery", ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy")),),
                (DEL + "test_the_service_role_creates_roles_only_with_the_boundary_and_never_users",
                 DEL + "test_change_sets_only_as_the_service_role_with_the_platforms_types",
                 DEL + "test_only_the_deploy_role_executes_and_neither_touches_iam",
                 DEL + "test_every_platform_role_carries_the_boundary_and_stays_inside_it",
                 DEL + "test_the_service_role_may_manage_this_accounts_resources_only")),
    Requirement("8.2.2, 8.3.1", "No shared or long-lived credentials for deployments",
                "the pipeline holds no AWS keys: each job gets a one-hour session from GitHub's OIDC token, trusted "
                "only for this repository's pull requests (plan) or its environment's jobs (deploy), which GitHub "
                "keeps to main behind required reviewers",
                (Evidence("delivery", ("AWS::IAM::OIDCProvider",), ("GitHubDeployRole",)),),
                (DEL + "test_github_tokens_against_the_trust_policies",
                 DEL + "test_a_token_for_another_audience_or_provider_is_refused",
                 DEL + "test_prod_has_no_plan_role_and_its_deploy_role_trusts_the_prod_environment_only",
                 "tests/test_workflows.py::test_credentials_come_from_oidc_only")),
    Requirement("8.3, 8.6", "Authentication of system and application accounts",
                "the API tasks reach the database with IAM authentication (no password in the task); generated "
                "secrets in Secrets Manager; the database master password generated, kept and rotated by RDS "
                "(ManageMasterUserPassword, every 7 days by default) in a secret under the secrets key; every API client "
                "(merchant) authenticates with a secret key checked by a Lambda authorizer before any handler runs, "
                "stored only as a peppered HMAC, revocable, at most two active per merchant; API keys serve the "
                "usage plan only",
                (Evidence("security", ("AWS::SecretsManager::Secret",)),
                 Evidence("data", (), ("DbCluster",)),
                 Evidence("compute", (), ("AuthorizerFunction",)),
                 Evidence("api", ("AWS::ApiGateway::UsagePlan",), ("RestApi", "AuthorizerInvokePermission"))),
                (DAT + "test_rds_manages_the_master_password_in_a_secret_under_the_secrets_key",
                 DAT + "test_no_transform_and_no_hosted_rotation",
                 CMP + "test_task_runs_read_only_non_root_and_reaches_the_database_with_iam",
                 API + "test_every_operation_but_status_needs_the_authorizer_and_the_usage_plan_key",
                 MER + "test_a_revoked_key_is_denied", MER + "test_a_missing_or_malformed_key_is_401",
                 MER + "test_no_secret_key_is_logged_or_stored",
                 "tests/tools/test_merchants_tool.py::test_an_issued_key_is_printed_once_and_stored_only_as_a_hash")),
    Requirement("10.2", "Audit logs capture activity",
                "VPC flow logs, ALB and S3 access logs, API access and execution logs (no bodies), WAF logs, "
                "state machine logs (no execution data), the audit logger's records of every payment notification",
                (Evidence("network", ("AWS::EC2::FlowLog",)), Evidence("storage", (), ("AuditBucket", "AccessLogBucket")),
                 Evidence("api", ("AWS::Logs::LogGroup",)), Evidence("compute", ("AWS::WAFv2::LoggingConfiguration",))),
                (NET + "test_flow_logs_go_to_a_kms_encrypted_group_with_configured_retention",
                 CMP + "test_alb_writes_access_logs_to_the_storage_access_log_bucket", API + "test_log_groups_are_encrypted_with_retention")),
    Requirement("10.3, 10.5", "Audit logs are protected from destruction and retained",
                "the audit bucket and its DR replica are locked (S3 Object Lock: COMPLIANCE, 7 years in prod) and "
                "replicated with their retention; log groups encrypted with the logs key and kept 365 days in prod",
                (Evidence("storage", (), ("AuditBucket", "ReplicationPolicy")), Evidence("dr", (), ("ReplicaAuditBucket",))),
                (P + "test_pci_10_3_audit_trail_buckets_are_locked_as_the_environment_requires",
                 P + "test_pci_10_3_locked_versions_replicate_with_their_retention", P + "test_every_log_group_has_retention_and_kms",
                 STO + "test_prod_keeps_audit_logs_seven_years")),
    Requirement("10.7", "Failures of critical security controls are detected and reported",
                "alarms on API, functions, queues, database and load balancer to an encrypted topic; what the topic "
                "cannot deliver lands in an encrypted queue with an alarm; a subscription nobody confirmed alarms too",
                (Evidence("monitoring", ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")),
                 Evidence("messaging", (), ("AlarmDlq", "AlarmWatch", "AlarmEmailSubscription"))),
                (P + "test_pci_10_7_alarm_notifications_cannot_vanish", MON + "test_alarm_delivery_itself_is_alarmed",
                 MSG + "test_undelivered_alarms_land_in_an_encrypted_queue_only_the_alarm_topic_writes")),
    Requirement("11.3", "Vulnerabilities are identified",
                "every image pushed to the API repository is scanned on push; tags are immutable",
                (Evidence("artifacts", ("AWS::ECR::Repository",)),),
                ("tests/layers/test_artifacts.py::test_api_repository_is_immutable_scanned_encrypted_and_bounded",)),
)

ACCOUNT_LEVEL = (
    ("1.2.5, 10.2", "AWS CloudTrail: an organisation trail in every region, log file validation on, delivered to a locked bucket of a log archive account"),
    ("2.2, 11.5", "AWS Config with the PCI DSS conformance pack, and drift detection of these stacks (`make status DRIFT=1`)"),
    ("5.2, 11.5", "Amazon GuardDuty in every region (threat detection), findings to Security Hub"),
    ("8.2-8.4", "IAM Identity Center for people: no IAM users, MFA for every console and CLI session; administrators alone deploy the bootstrap and delivery stacks"),
    ("10.4", "Security Hub with the PCI DSS standard, reviewed daily"),
    ("11.3", "Amazon Inspector enhanced scanning of ECR images and Lambda functions (continuous, beyond scan on push)"),
    ("12.x", "the organisation's policies, risk assessment, incident response and training"),
)

DECISIONS = (
    ("public load balancer on 443", "the payment API is an internet service; the ALB is the only public entry, behind the WAF, TLS 1.2+ only"),
    ("SSE-S3 access-log buckets", "S3 server access logs and ALB access logs can only be delivered to SSE-S3 buckets; they hold request metadata, never card data"),
    ("`Resource: \"*\"`", "only for actions AWS authorises on nothing narrower (X-Ray, ENI management through AWS's managed policy, log delivery, ECR tokens, PutMetricData narrowed by namespace), each commented in the template"),
    ("staging log retention 90 days", "staging holds test data only (no production card data); prod keeps 365 days (10.5.1)"),
)


def _resources(templates: dict[str, dict], evidence: Evidence) -> list[str]:
    resources = templates.get(evidence.layer, {}).get("Resources", {})
    found = sorted(logical_id for logical_id, resource in resources.items()
                   if resource["Type"] in evidence.types or logical_id in evidence.logical_ids)
    missing = [logical_id for logical_id in evidence.logical_ids if logical_id not in resources]
    if missing or not found:
        raise ValueError(f"pci: {evidence.layer} has no {missing or evidence.types}: the evidence names nothing real")
    return found


def _check_test(test: str) -> None:
    path, name = test.split("::")
    source = (ROOT / path).read_text()
    if not re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE):
        raise ValueError(f"pci: {test} does not exist: no claim without a test behind it")


def _suppressions(environments: dict[str, dict[str, dict]]) -> list[tuple[str, str, str]]:
    """(rule, resource type, reason) of every checkov skip and cfn-lint suppression, once each."""
    found = set()
    for templates in environments.values():
        for template in templates.values():
            for resource in template.get("Resources", {}).values():
                metadata = resource.get("Metadata", {})
                for skip in metadata.get("checkov", {}).get("skip", []):
                    found.add((f"checkov {skip['id']}", resource["Type"], skip["comment"]))
                for rule, reason in metadata.get("LintSuppressionReasons", {}).items():
                    found.add((f"cfn-lint {rule}", resource["Type"], reason))
    return sorted(found)


def render(environments: dict[str, dict[str, dict]], stack_prefix: str = "payments-prod") -> str:
    """The document from the rendered templates: {env: {layer: template}} (prod is the evidence)."""
    prod = environments["prod"]
    lines = ["# PCI DSS v4.0: what the infrastructure implements, and the evidence",
             "", "Generated from the build (`templates_src/pci.py`; `make golden` rewrites it, a test keeps it",
             "current). Resources are those of the prod templates (staging and dev use the same templates with",
             "their own parameters); tests are the repository's, run by `make test`.", "",
             "| requirement | how | resources (stack: logical ids) | tests |", "|---|---|---|---|"]
    for requirement in REQUIREMENTS:
        for test in requirement.tests:
            _check_test(test)
        resources = "<br>".join(f"`{stack_prefix}-{e.layer}`: {', '.join(_resources(prod, e))}" for e in requirement.evidence)
        tests = "<br>".join(f"`{test.split('::')[1]}` ({test.split('::')[0]})" for test in requirement.tests)
        lines.append(f"| **{requirement.number}** {requirement.title} | {requirement.how} | {resources} | {tests} |")
    lines += ["", "## Belongs to the account or the organisation (turn on before handling card data)", "",
              "| requirement | what the operator must turn on |", "|---|---|"]
    lines += [f"| {number} | {what} |" for number, what in ACCOUNT_LEVEL]
    lines += ["", "## Decisions not to follow a common rule, with the reason", "", "| decision | reason |", "|---|---|"]
    lines += [f"| {what} | {why} |" for what, why in DECISIONS]
    lines += ["", "## Every checkov skip and cfn-lint suppression (all environments)", "",
              "| rule | resource type | reason |", "|---|---|---|"]
    lines += [f"| {rule} | `{resource_type}` | {reason} |" for rule, resource_type, reason in _suppressions(environments)]
    return "\n".join(lines) + "\n"
