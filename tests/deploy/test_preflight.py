"""Preflight checks against botocore's Stubber on real boto3 clients: nothing reaches AWS.

Every (service, region) gets its own stubbed client; a call nobody stubbed makes the Stubber
raise, which the check turns into a "could not check" row, so the tests assert on rows and on
which clients were asked for, and end with assert_no_pending_responses on every stubber.
"""
from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from deploylib.aws import Backoff, Clock, Context
from deploylib.manifest import ManifestError
from deploylib.preflight import (
    CHECKS,
    CertificateToCreate,
    Row,
    Scope,
    Status,
    covers,
    parse_preflight,
    render,
    run_preflight,
)

REGION = "eu-west-1"
DR_REGION = "eu-central-1"
ACCOUNT = "222222222222"
OTHER_ACCOUNT = "999999999999"
CALLER_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/alice"
CERT_ARN = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/00000000-0000-4000-8000-000000000002"
DOMAIN = "api.staging.example.com"
ZONE_ID = "Z0123456789ABCDEFGHIJ"
DIGEST = "sha256:" + "ab" * 32
FUNCTIONS = ("payments-staging-payment-api", "payments-staging-validation")
STACKS = ("payments-staging-artifacts", "payments-staging-network")
CHECK_NAMES = [check.name for check in CHECKS]

FULL = {
    "environment": "staging",
    "account_id": ACCOUNT,
    "region": REGION,
    "parameters_file": "parameters/staging.yaml",
    "lambda_reserved_concurrency": {FUNCTIONS[0]: 20, FUNCTIONS[1]: 20},
    "certificate": {"mode": "existing", "arn": CERT_ARN, "domain_name": DOMAIN},
    "container_image": {"repository": "payments-staging-api", "tag": "1.0.0",
                        "repository_stack": "payments-staging-artifacts"},
    "service_linked_roles": [
        {"service": "ecs.amazonaws.com", "role_name": "AWSServiceRoleForECS", "required": True,
         "needed_by": "compute: ECS cluster and service"},
        {"service": "ecs.application-autoscaling.amazonaws.com",
         "role_name": "AWSServiceRoleForApplicationAutoScaling_ECSService", "required": False,
         "needed_by": "compute: ECS service auto scaling"},
    ],
    "api_gateway_logging_role": "payments-staging-apigateway-logging",
    "network": {"stack": "payments-staging-network", "vpcs": 1, "nat_gateways": 1, "elastic_ips": 1,
                "availability_zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"]},
    "dr_region": DR_REGION,
    "stacks": [{"name": name, "region": REGION} for name in STACKS],
}
# Every optional section off: a test turns on only the check it is about.
EMPTY = {**FULL, "lambda_reserved_concurrency": {}, "certificate": None, "container_image": None,
         "service_linked_roles": [], "api_gateway_logging_role": None, "network": None, "dr_region": None,
         "stacks": []}


def make_spec(base=EMPTY, **sections):
    raw = copy.deepcopy(base)
    raw.update(copy.deepcopy(sections))
    return parse_preflight(raw, "build/staging/manifest.json")


class FakeAws:
    """Real boto3 clients, one Stubber each, handed out per (service, region)."""

    def __init__(self):
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.clients: dict[tuple[str, str], object] = {}
        self.requested: set[tuple[str, str]] = set()

    def stubber(self, service, region=REGION) -> Stubber:
        key = (service, region)
        if key not in self.stubbers:
            client = boto3.client(service, region_name=region, aws_access_key_id="testing",
                                  aws_secret_access_key="testing")
            self.clients[key], self.stubbers[key] = client, Stubber(client)
            self.stubbers[key].activate()
        return self.stubbers[key]

    def factory(self, service, region):
        self.requested.add((service, region))
        self.stubber(service, region)
        return self.clients[(service, region)]

    def ok(self, service, operation, response, params=None, region=REGION):
        self.stubber(service, region).add_response(operation, response, params)

    def error(self, service, operation, code, message="", params=None, region=REGION, status=400):
        self.stubber(service, region).add_client_error(
            operation, service_error_code=code, service_message=message, http_status_code=status,
            expected_params=params)

    def assert_all_used(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()

    def close(self):
        for stubber in self.stubbers.values():
            stubber.deactivate()


@pytest.fixture
def aws(aws_env):
    fake = FakeAws()
    yield fake
    fake.close()


def no_sleep(seconds):
    raise AssertionError(f"preflight slept {seconds}s")


def context(factory):
    return Context(client_factory=factory, clock=Clock(sleep=no_sleep), backoff=Backoff(max_attempts=1))


def run(aws, spec, scope=Scope.PREFLIGHT, **kwargs):
    report = run_preflight(context(aws.factory), spec, scope, **kwargs)
    aws.assert_all_used()
    unexpected = [row for row in report.rows if "Stub" in row.detail]
    assert unexpected == [], "a check made a call no test stubbed"
    return report


def rows_of(report, check):
    return [row for row in report.rows if row.check == check]


def only_row(report, check) -> Row:
    rows = rows_of(report, check)
    assert len(rows) == 1, rows
    return rows[0]


# --- the stubbed answers of a healthy account --------------------------------------------------

def stub_identity(aws, account=ACCOUNT, arn=CALLER_ARN, region=REGION):
    aws.ok("sts", "get_caller_identity", {"UserId": "AROAEXAMPLE:alice", "Account": account, "Arn": arn},
           region=region)


def stub_lambda(aws, total=1000, unreserved=1000, reserved_today=(None, None)):
    aws.ok("lambda", "get_account_settings",
           {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}})
    for name, reserved in zip(FUNCTIONS, reserved_today, strict=False):
        if reserved is None:
            aws.error("lambda", "get_function_concurrency", "ResourceNotFoundException",
                      f"Function not found: {name}", {"FunctionName": name}, status=404)
        else:
            aws.ok("lambda", "get_function_concurrency", {"ReservedConcurrentExecutions": reserved},
                   {"FunctionName": name})


def stub_certificate(aws, status="ISSUED", domain=DOMAIN, sans=(DOMAIN,)):
    certificate = {"CertificateArn": CERT_ARN, "DomainName": domain, "Status": status}
    if sans:  # the model wants at least one when present
        certificate["SubjectAlternativeNames"] = list(sans)
    aws.ok("acm", "describe_certificate", {"Certificate": certificate}, {"CertificateArn": CERT_ARN})


def stub_image(aws, image_id=None):
    image_id = image_id or {"imageTag": "1.0.0"}
    aws.ok("ecr", "describe_images", {"imageDetails": [{"repositoryName": "payments-staging-api",
                                                        "imageDigest": DIGEST, "imageTags": ["1.0.0"]}]},
           {"repositoryName": "payments-staging-api", "imageIds": [image_id]})


def role(name):
    return {"Role": {"Path": "/aws-service-role/", "RoleName": name, "RoleId": "AROAEXAMPLEEXAMPLE1",
                     "Arn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{name}",
                     "CreateDate": datetime(2024, 1, 1, tzinfo=UTC)}}


def stub_role_exists(aws, name):
    aws.ok("iam", "get_role", role(name), {"RoleName": name})


def stub_role_missing(aws, name):
    aws.error("iam", "get_role", "NoSuchEntity", f"The role with name {name} cannot be found.",
              {"RoleName": name}, status=404)


def stub_apigw(aws, role_arn=None):
    aws.ok("apigateway", "get_account", {"cloudwatchRoleArn": role_arn} if role_arn else {})


def stub_stack(aws, name, status=None, region=REGION):
    if status is None:
        aws.error("cloudformation", "describe_stacks", "ValidationError", f"Stack with id {name} does not exist",
                  {"StackName": name}, region=region)
    else:
        aws.ok("cloudformation", "describe_stacks",
               {"Stacks": [{"StackName": name, "StackStatus": status,
                            "CreationTime": datetime(2024, 1, 1, tzinfo=UTC)}]},
               {"StackName": name}, region=region)


QUOTA_CODES = {"vpcs": ("vpc", "L-F678F1CE"), "eips": ("ec2", "L-0263D0A3"), "nat": ("vpc", "L-FE5A380F")}


def stub_quota(aws, which, value=5.0, error=None):
    service_code, quota_code = QUOTA_CODES[which]
    params = {"ServiceCode": service_code, "QuotaCode": quota_code}
    if error:
        aws.error("service-quotas", "get_service_quota", error, "no applied quota", params)
    else:
        aws.ok("service-quotas", "get_service_quota",
               {"Quota": {"ServiceCode": service_code, "QuotaCode": quota_code, "Value": value}}, params)


def stub_network_usage(aws, vpcs=1, eips=0, nat_subnets=(), quotas=(5.0, 5.0, 5.0)):
    """Usage then quota, in the order the check asks: VPCs, Elastic IPs, NAT gateways."""
    aws.ok("ec2", "describe_vpcs", {"Vpcs": [{"VpcId": f"vpc-{i:08x}"} for i in range(vpcs)]})
    stub_quota(aws, "vpcs", quotas[0])
    aws.ok("ec2", "describe_addresses", {"Addresses": [{"AllocationId": f"eipalloc-{i}", "Domain": "vpc"}
                                                      for i in range(eips)]},
           {"Filters": [{"Name": "domain", "Values": ["vpc"]}]})
    stub_quota(aws, "eips", quotas[1])
    aws.ok("ec2", "describe_nat_gateways",
           {"NatGateways": [{"NatGatewayId": f"nat-{i}", "SubnetId": subnet, "State": "available"}
                            for i, (subnet, _) in enumerate(nat_subnets)]},
           {"Filter": [{"Name": "state", "Values": ["pending", "available"]}]})
    if nat_subnets:
        subnets = sorted(dict(nat_subnets).items())
        aws.ok("ec2", "describe_subnets",
               {"Subnets": [{"SubnetId": subnet, "AvailabilityZone": zone} for subnet, zone in subnets]},
               {"SubnetIds": [subnet for subnet, _ in subnets]})
    stub_quota(aws, "nat", quotas[2])


def stub_dr(aws, opt_in="opt-in-not-required"):
    aws.ok("ec2", "describe_regions", {"Regions": [{"RegionName": DR_REGION, "OptInStatus": opt_in}]},
           {"AllRegions": True, "RegionNames": [DR_REGION]})


# --- the whole pass -----------------------------------------------------------------------------

def stub_healthy_account(aws):
    stub_identity(aws)
    stub_lambda(aws)
    stub_certificate(aws)
    stub_image(aws)
    stub_role_exists(aws, "AWSServiceRoleForECS")
    stub_role_exists(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    stub_apigw(aws)
    stub_stack(aws, "payments-staging-network")  # network check: not deployed yet
    stub_network_usage(aws)
    stub_dr(aws)
    stub_identity(aws, region=DR_REGION)
    stub_stack(aws, "payments-staging-artifacts", "CREATE_COMPLETE")
    stub_stack(aws, "payments-staging-network")


def test_a_healthy_account_passes_every_check(aws):
    stub_healthy_account(aws)
    report = run(aws, make_spec(FULL), Scope.DEPLOY, configured_region=REGION)
    assert report.ok
    assert [row for row in report.rows if row.status is not Status.PASS] == []
    assert {row.check for row in report.rows} == set(CHECK_NAMES)
    text = render(report)
    lines = text.splitlines()
    assert lines[0] == "preflight (deploy) of staging: account 222222222222, region eu-west-1"
    assert lines[-1] == "preflight passed"
    for name in CHECK_NAMES:
        assert name in text
    assert [line for line in lines if not fits(line, lines[1].index("DETAIL"))] == []
    assert rows_of(report, "network quota")[-1].subject == "NAT gateways eu-west-1a"


def fits(line: str, detail_column: int) -> bool:
    """At most 100 columns, except where the detail is one word too long for its column (an ARN
    is never cut, so it stays copyable)."""
    return len(line) <= 100 or " " not in line[detail_column:].strip()


def test_the_rendered_table_is_aligned_wrapped_and_100_columns_wide(aws):
    stub_identity(aws)
    stub_lambda(aws, total=1000, unreserved=120, reserved_today=(10, None))
    stub_stack(aws, "payments-staging-artifacts", "UPDATE_ROLLBACK_FAILED")
    spec = make_spec(lambda_reserved_concurrency=FULL["lambda_reserved_concurrency"],
                     stacks=[{"name": "payments-staging-artifacts", "region": REGION}])
    lines = render(run(aws, spec)).splitlines()
    header = lines[1]
    assert header.split() == ["STATUS", "CHECK", "SUBJECT", "DETAIL"]
    detail_column = header.index("DETAIL")
    commands = [line for line in lines if re.match(r"^ {4}( {2})?\S", line)]
    table = [line for line in lines[2:-1] if line not in commands]
    for line in lines:
        assert fits(line, detail_column)
    for line in table:
        if line.split()[0] in {status.value for status in Status}:  # a row's first line
            assert line[detail_column - 2:detail_column] == "  " and line[detail_column] != " "
        else:  # a wrapped line continues the detail column
            assert line.startswith(" " * detail_column) and line[detail_column] != " "
    assert len(table) > 3, "long details wrap"
    # the command is wrapped with backslash continuations and pastes back as the exact command
    assert commands[0].endswith(" \\")
    pasted = " ".join(line.strip().removesuffix(" \\") for line in commands[:2])
    assert pasted == ("aws service-quotas request-service-quota-increase --region eu-west-1 --service-code lambda "
                      "--quota-code L-B99A9384 --desired-value 1010")
    assert commands[2] == "    make recover ENV=staging STACK=payments-staging-artifacts"
    assert lines[-1] == "preflight refused: 2 problem(s)"


# --- identity -----------------------------------------------------------------------------------

def test_credentials_for_another_account_are_refused_and_nothing_else_is_inspected(aws):
    stub_identity(aws, account=OTHER_ACCOUNT, arn=f"arn:aws:iam::{OTHER_ACCOUNT}:user/bob")
    report = run(aws, make_spec(FULL), fix=True)
    row = report.rows[0]
    assert row.status is Status.FAIL
    assert row.detail.startswith(
        "your credentials are for account 999999999999 (arn:aws:iam::999999999999:user/bob), "
        "parameters/staging.yaml says account_id 222222222222")
    assert aws.requested == {("sts", REGION)}  # with fix=True too: no role created in the wrong account
    skipped = report.rows[-1]
    assert skipped.status is Status.WARN and "not run until the credentials are for account 222222222222" \
        in skipped.detail
    assert not report.ok


def test_a_session_in_another_region_is_refused(aws):
    stub_identity(aws)
    report = run(aws, make_spec(), configured_region="us-east-1")
    region = [row for row in report.rows if row.subject == "region"][0]
    assert region.status is Status.FAIL
    assert "your AWS session's region is us-east-1, the staging environment is in eu-west-1" in region.detail
    assert "unset AWS_REGION and AWS_DEFAULT_REGION" in region.detail and "set them to eu-west-1" in region.detail


@pytest.mark.parametrize("configured", [None, REGION])
def test_no_session_region_or_the_right_one_passes(aws, configured):
    stub_identity(aws)
    report = run(aws, make_spec(), configured_region=configured)
    assert report.ok and [row.status for row in rows_of(report, "identity")] == [Status.PASS, Status.PASS]


def test_missing_credentials_are_a_fail_row_not_a_traceback():
    class NoCredentials:
        def get_caller_identity(self):
            raise NoCredentialsError()

    report = run_preflight(context(lambda service, region: NoCredentials()), make_spec(), Scope.PREFLIGHT)
    assert report.rows[0].status is Status.FAIL
    assert report.rows[0].detail.startswith("could not check: NoCredentialsError (Unable to locate credentials)")
    assert "use credentials for account 222222222222" in report.rows[0].detail
    assert not report.ok and render(report).endswith("preflight refused: 1 problem(s)")


# --- Lambda concurrency -------------------------------------------------------------------------

@pytest.mark.parametrize("total, unreserved, today, pool, quota", [
    (1000, 120, (10, None), 90, 1010),   # others reserve 870, these hold 10 and want 40
    (10, 10, (None, None), -30, 140),    # a new account's quota of 10
])
def test_a_reservation_that_leaves_less_than_100_unreserved_is_refused(aws, total, unreserved, today, pool, quota):
    stub_identity(aws)
    stub_lambda(aws, total=total, unreserved=unreserved, reserved_today=today)
    spec = make_spec(lambda_reserved_concurrency=FULL["lambda_reserved_concurrency"])
    row = only_row(run(aws, spec), "lambda concurrency")
    held = sum(t or 0 for t in today)
    assert row.status is Status.FAIL
    assert f"the unreserved pool would drop to {pool}" in row.detail
    assert (f"account quota {total}, unreserved now {unreserved}; these 2 functions reserve 40 "
            f"({held} reserved by them today)") in row.detail
    assert f"at least {quota}" in row.detail and "quota of 10" in row.detail
    assert row.commands == (
        f"aws service-quotas request-service-quota-increase --region eu-west-1 --service-code lambda "
        f"--quota-code L-B99A9384 --desired-value {quota}",)
    # with the requested quota the pool after the deploy is exactly the 100 Lambda keeps
    assert unreserved + (quota - total) - (40 - held) == 100


def test_exactly_100_left_unreserved_passes(aws):
    stub_identity(aws)
    stub_lambda(aws, total=1000, unreserved=130, reserved_today=(10, None))  # 130 - (40 - 10) = 100
    row = only_row(run(aws, make_spec(lambda_reserved_concurrency=FULL["lambda_reserved_concurrency"])),
                   "lambda concurrency")
    assert row.status is Status.PASS and row.detail.startswith("100 stay unreserved")


# --- certificate --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, domain, expected", [
    ("api.example.com", "api.example.com", True),
    ("API.Example.com.", "api.example.com", True),
    ("*.example.com", "api.example.com", True),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False),
    ("api.example.com", "www.example.com", False),
])
def test_certificate_name_coverage(name, domain, expected):
    assert covers(name, domain) is expected


def existing_cert(arn=CERT_ARN, domain=DOMAIN):
    return {"certificate": {"mode": "existing", "arn": arn, "domain_name": domain}}


def test_a_missing_certificate_is_refused(aws):
    stub_identity(aws)
    aws.error("acm", "describe_certificate", "ResourceNotFoundException", "Could not find certificate",
              {"CertificateArn": CERT_ARN})
    row = only_row(run(aws, make_spec(**existing_cert())), "certificate")
    assert row.status is Status.FAIL and f"{CERT_ARN} not found in account 222222222222" in row.detail


def test_a_certificate_from_another_region_is_refused_without_asking_acm(aws):
    stub_identity(aws)
    arn = CERT_ARN.replace(REGION, "us-east-1")
    row = only_row(run(aws, make_spec(**existing_cert(arn))), "certificate")
    assert row.status is Status.FAIL
    assert "is in us-east-1, the environment is in eu-west-1: an ALB takes a certificate from its own region" \
        in row.detail
    assert ("acm", REGION) not in aws.requested


def test_a_certificate_not_issued_is_refused_with_its_status(aws):
    stub_identity(aws)
    stub_certificate(aws, status="PENDING_VALIDATION")
    row = only_row(run(aws, make_spec(**existing_cert())), "certificate")
    assert row.status is Status.FAIL and "the certificate is PENDING_VALIDATION, not ISSUED: finish its validation" in row.detail


def test_a_certificate_for_other_names_is_refused_naming_what_it_covers(aws):
    stub_identity(aws)
    stub_certificate(aws, domain="www.example.com", sans=("www.example.com", "shop.example.com"))
    row = only_row(run(aws, make_spec(**existing_cert())), "certificate")
    assert row.status is Status.FAIL
    assert f"the certificate does not cover {DOMAIN}: it covers www.example.com, shop.example.com" in row.detail


def test_a_wildcard_covers_one_label_only(aws):
    stub_identity(aws)
    stub_certificate(aws, domain="*.example.com", sans=("*.example.com",))
    row = only_row(run(aws, make_spec(**existing_cert())), "certificate")  # api.staging.example.com: 2 labels
    assert row.status is Status.FAIL and "it covers *.example.com" in row.detail


def test_a_wildcard_subject_alternative_name_covers_the_domain(aws):
    stub_identity(aws)
    stub_certificate(aws, domain="staging.example.com", sans=("staging.example.com", "*.staging.example.com"))
    assert only_row(run(aws, make_spec(**existing_cert())), "certificate").status is Status.PASS


def created_cert(domain=DOMAIN):
    return {"certificate": {"mode": "create", "domain_name": domain, "hosted_zone_id": ZONE_ID}}


def stub_zone(aws, name="staging.example.com.", private=False):
    aws.ok("route53", "get_hosted_zone",
           {"HostedZone": {"Id": f"/hostedzone/{ZONE_ID}", "Name": name, "CallerReference": "ref",
                           "Config": {"PrivateZone": private}},
            "DelegationSet": {"NameServers": ["ns-1.awsdns-01.org"]}},
           {"Id": ZONE_ID})


def test_a_certificate_created_by_dns_validation_in_a_public_zone_passes(aws):
    stub_identity(aws)
    stub_zone(aws)
    row = only_row(run(aws, make_spec(**created_cert())), "certificate")
    assert row.status is Status.PASS
    assert "the compute stack creates the certificate and validates it by DNS in public zone " \
           "staging.example.com" in row.detail


def test_a_missing_hosted_zone_is_refused(aws):
    stub_identity(aws)
    aws.error("route53", "get_hosted_zone", "NoSuchHostedZone", f"No hosted zone found with ID: {ZONE_ID}",
              {"Id": ZONE_ID}, status=404)
    row = only_row(run(aws, make_spec(**created_cert())), "certificate")
    assert row.status is Status.FAIL and f"hosted zone {ZONE_ID} not found" in row.detail


def test_a_private_hosted_zone_is_refused(aws):
    stub_identity(aws)
    stub_zone(aws, private=True)
    row = only_row(run(aws, make_spec(**created_cert())), "certificate")
    assert row.status is Status.FAIL and "is private: DNS validation needs a public zone" in row.detail


@pytest.mark.parametrize("zone", ["other.example.com.", "api.staging.example.com.evil.", "ging.example.com."])
def test_a_hosted_zone_the_domain_is_not_in_is_refused(aws, zone):
    stub_identity(aws)
    stub_zone(aws, name=zone)
    row = only_row(run(aws, make_spec(**created_cert())), "certificate")
    assert row.status is Status.FAIL and f"{DOMAIN} is not in hosted zone {zone.rstrip('.')}" in row.detail


def test_the_zone_apex_itself_is_in_the_zone(aws):
    stub_identity(aws)
    stub_zone(aws, name="api.staging.example.com.")
    assert only_row(run(aws, make_spec(**created_cert())), "certificate").status is Status.PASS


# --- container image ----------------------------------------------------------------------------

IMAGE = FULL["container_image"]
REGISTRY = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"


def test_a_missing_image_is_refused_with_the_push_commands(aws):
    stub_identity(aws)
    aws.error("ecr", "describe_images", "ImageNotFoundException", "The image with imageId ... does not exist")
    row = only_row(run(aws, make_spec(container_image=IMAGE)), "container image")
    assert row.status is Status.FAIL and f"payments-staging-api:1.0.0 is not in {REGISTRY}" in row.detail
    assert row.commands == (
        f"aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin {REGISTRY}",
        f"docker tag <local image> {REGISTRY}/payments-staging-api:1.0.0",
        f"docker push {REGISTRY}/payments-staging-api:1.0.0",
    )


def test_an_image_is_found_by_digest(aws):
    stub_identity(aws)
    stub_image(aws, {"imageDigest": DIGEST})
    image = {"repository": "payments-staging-api", "digest": DIGEST, "repository_stack": STACKS[0]}
    row = only_row(run(aws, make_spec(container_image=image)), "container image")
    assert row.status is Status.PASS and row.subject == f"payments-staging-api@{DIGEST}"


def test_a_repository_its_stack_will_create_is_pending(aws):
    stub_identity(aws)
    aws.error("ecr", "describe_images", "RepositoryNotFoundException", "repository does not exist")
    stub_stack(aws, "payments-staging-artifacts")
    row = only_row(run(aws, make_spec(container_image=IMAGE)), "container image")
    assert row.status is Status.PENDING
    assert ("created by payments-staging-artifacts; push the image after it is deployed, the deploy stops "
            "before compute until it exists") in row.detail
    assert row.commands[-1] == f"docker push {REGISTRY}/payments-staging-api:1.0.0"


def test_a_repository_whose_stack_is_an_empty_review_stack_is_pending(aws):
    stub_identity(aws)
    aws.error("ecr", "describe_images", "RepositoryNotFoundException", "repository does not exist")
    stub_stack(aws, "payments-staging-artifacts", "REVIEW_IN_PROGRESS")
    assert only_row(run(aws, make_spec(container_image=IMAGE)), "container image").status is Status.PENDING


def test_a_repository_missing_after_its_stack_is_deployed_is_refused(aws):
    stub_identity(aws)
    aws.error("ecr", "describe_images", "RepositoryNotFoundException", "repository does not exist")
    stub_stack(aws, "payments-staging-artifacts", "UPDATE_COMPLETE")
    row = only_row(run(aws, make_spec(container_image=IMAGE)), "container image")
    assert row.status is Status.FAIL
    assert "does not exist although payments-staging-artifacts, which creates it, is deployed" in row.detail


# --- service-linked roles -----------------------------------------------------------------------

ROLES = FULL["service_linked_roles"]


def test_missing_service_linked_roles_without_fix(aws):
    stub_identity(aws)
    stub_role_missing(aws, "AWSServiceRoleForECS")
    stub_role_missing(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    required, optional = rows_of(run(aws, make_spec(service_linked_roles=ROLES)), "service-linked role")
    assert required.status is Status.FAIL
    assert "in a never-used account ECS's first cluster can race its creation" in required.detail
    assert required.commands == ("make preflight ENV=staging FIX=1",)
    assert optional.status is Status.WARN
    assert ("created on first use if the deploying role may iam:CreateServiceLinkedRole for "
            "ecs.application-autoscaling.amazonaws.com; FIX=1 creates it now") in optional.detail


def test_fix_creates_the_missing_service_linked_roles(aws):
    stub_identity(aws)
    stub_role_missing(aws, "AWSServiceRoleForECS")
    aws.ok("iam", "create_service_linked_role", role("AWSServiceRoleForECS"),
           {"AWSServiceName": "ecs.amazonaws.com"})
    stub_role_exists(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    report = run(aws, make_spec(service_linked_roles=ROLES), fix=True)
    created, existing = rows_of(report, "service-linked role")
    assert created.status is Status.FIXED and existing.status is Status.PASS
    assert report.ok and render(report).endswith("preflight passed (1 fixed)")


def test_a_role_created_meanwhile_by_another_caller_passes(aws):
    stub_identity(aws)
    stub_role_missing(aws, "AWSServiceRoleForECS")
    aws.error("iam", "create_service_linked_role", "InvalidInput",
              "Service role name AWSServiceRoleForECS has been taken in this account, please try a different suffix.",
              {"AWSServiceName": "ecs.amazonaws.com"})
    report = run(aws, make_spec(service_linked_roles=ROLES[:1]), fix=True)
    row = only_row(report, "service-linked role")
    assert row.status is Status.PASS and "another caller" in row.detail


def test_fix_that_may_not_create_a_required_role_fails(aws):
    stub_identity(aws)
    stub_role_missing(aws, "AWSServiceRoleForECS")
    aws.error("iam", "create_service_linked_role", "AccessDenied", "not authorized", status=403)
    row = only_row(run(aws, make_spec(service_linked_roles=ROLES[:1]), fix=True), "service-linked role")
    assert row.status is Status.FAIL and "creating it failed: AccessDenied" in row.detail


# --- API Gateway account logging role -----------------------------------------------------------

def test_api_gateway_logging_role_of_someone_else_is_a_warning(aws):
    stub_identity(aws)
    stub_apigw(aws, f"arn:aws:iam::{ACCOUNT}:role/legacy-apigw-logs")
    report = run(aws, make_spec(api_gateway_logging_role="payments-staging-apigateway-logging"))
    row = only_row(report, "api gateway logging")
    assert row.status is Status.WARN and report.ok
    assert (f"the account-wide setting currently points at arn:aws:iam::{ACCOUNT}:role/legacy-apigw-logs; the "
            "api stack will point it at its own role (payments-staging-apigateway-logging), which carries "
            "AWS's managed policy AmazonAPIGatewayPushToCloudWatchLogs so every other API in the account "
            "keeps logging") in row.detail


def test_api_gateway_logging_role_already_ours_passes(aws):
    stub_identity(aws)
    stub_apigw(aws, f"arn:aws:iam::{ACCOUNT}:role/payments-staging-apigateway-logging")
    row = only_row(run(aws, make_spec(api_gateway_logging_role="payments-staging-apigateway-logging")),
                   "api gateway logging")
    assert row.status is Status.PASS


# --- network quotas -----------------------------------------------------------------------------

NETWORK = FULL["network"]


def network_rows(aws, network=NETWORK):
    report = run(aws, make_spec(network=network))
    return {row.subject: row for row in rows_of(report, "network quota")}


def test_too_many_vpcs_is_refused_with_the_quota_to_request(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network")
    stub_network_usage(aws, vpcs=5)
    row = network_rows(aws)["VPCs"]
    assert row.status is Status.FAIL
    assert "VPCs per Region: quota 5, in use 5, this deploy adds 1, 1 short" in row.detail
    assert "request quota L-F678F1CE (vpc) of at least 6" in row.detail
    assert row.commands == ("aws service-quotas request-service-quota-increase --region eu-west-1 "
                            "--service-code vpc --quota-code L-F678F1CE --desired-value 6",)


def test_too_many_elastic_ips_is_refused(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network")
    stub_network_usage(aws, eips=5, quotas=(5.0, 5.0, 5.0))
    rows = network_rows(aws, {**NETWORK, "elastic_ips": 2})
    assert rows["Elastic IPs"].status is Status.FAIL
    assert "EC2-VPC Elastic IPs: quota 5, in use 5, this deploy adds 2, 2 short" in rows["Elastic IPs"].detail
    assert "--service-code ec2 --quota-code L-0263D0A3 --desired-value 7" in rows["Elastic IPs"].commands[0]
    assert rows["VPCs"].status is Status.PASS


def test_nat_gateways_are_counted_per_zone_of_the_subnet(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network")
    full_zone = [(f"subnet-a{i}", "eu-west-1a") for i in range(2)] + [("subnet-b0", "eu-west-1b")]
    stub_network_usage(aws, nat_subnets=full_zone + [("subnet-a0", "eu-west-1a")], quotas=(5.0, 5.0, 3.0))
    rows = network_rows(aws, {**NETWORK, "nat_gateways": 3})
    zone_a, zone_b, zone_c = (rows[f"NAT gateways eu-west-1{z}"] for z in "abc")
    assert zone_a.status is Status.FAIL
    assert "NAT gateways per Availability Zone: quota 3, in use 3, this deploy adds 1, 1 short" in zone_a.detail
    assert "--service-code vpc --quota-code L-FE5A380F --desired-value 4" in zone_a.commands[0]
    assert zone_b.status is Status.PASS and "in use 1" in zone_b.detail
    assert zone_c.status is Status.PASS and "in use 0" in zone_c.detail


def test_an_unreadable_quota_falls_back_to_the_aws_default(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network")
    aws.ok("ec2", "describe_vpcs", {"Vpcs": [{"VpcId": f"vpc-{i}"} for i in range(5)]})
    stub_quota(aws, "vpcs", error="NoSuchResourceException")
    aws.ok("ec2", "describe_addresses", {"Addresses": []})
    stub_quota(aws, "eips", error="AccessDeniedException")
    aws.ok("ec2", "describe_nat_gateways", {"NatGateways": []})
    stub_quota(aws, "nat")
    rows = network_rows(aws)
    assert rows["VPCs"].status is Status.FAIL
    assert ("quota 5 (AWS's default: the applied quota could not be read, NoSuchResourceException), "
            "in use 5") in rows["VPCs"].detail
    assert rows["Elastic IPs"].status is Status.PASS and "AccessDeniedException" in rows["Elastic IPs"].detail


def test_an_empty_network_stack_left_by_an_interrupted_plan_is_not_counted(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network", "REVIEW_IN_PROGRESS")
    stub_network_usage(aws)
    rows = network_rows(aws)
    assert list(rows) == ["VPCs", "Elastic IPs", "NAT gateways eu-west-1a"]
    assert all(row.status is Status.PASS for row in rows.values())


def test_no_nat_gateway_needs_no_nat_quota(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network")
    aws.ok("ec2", "describe_vpcs", {"Vpcs": []})
    stub_quota(aws, "vpcs")
    rows = network_rows(aws, {**NETWORK, "nat_gateways": 0, "elastic_ips": 0})
    assert rows["NAT gateways"].detail == "none needed" and rows["Elastic IPs"].detail == "none needed"


def test_a_deployed_network_stack_is_already_counted(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network", "UPDATE_COMPLETE")
    rows = network_rows(aws)
    assert list(rows) == ["payments-staging-network"]
    assert rows["payments-staging-network"].status is Status.PASS
    assert ("ec2", REGION) not in aws.requested and ("service-quotas", REGION) not in aws.requested


# --- DR region ----------------------------------------------------------------------------------

def test_a_dr_region_not_opted_in_is_refused(aws):
    stub_identity(aws)
    stub_dr(aws, opt_in="not-opted-in")
    row = only_row(run(aws, make_spec(dr_region=DR_REGION)), "dr region")
    assert row.status is Status.FAIL and "enable the region in the account settings" in row.detail
    assert row.commands == ("aws account enable-region --region-name eu-central-1",)
    assert ("sts", DR_REGION) not in aws.requested


def test_an_opted_in_dr_region_where_the_credentials_work_passes(aws):
    stub_identity(aws)
    stub_dr(aws, opt_in="opted-in")
    stub_identity(aws, region=DR_REGION)
    rows = rows_of(run(aws, make_spec(dr_region=DR_REGION)), "dr region")
    assert [row.status for row in rows] == [Status.PASS, Status.PASS]
    assert "credentials work in eu-central-1" in rows[1].detail


def test_credentials_refused_in_the_dr_region_fail(aws):
    stub_identity(aws)
    stub_dr(aws)
    aws.error("sts", "get_caller_identity", "InvalidClientTokenId", "The security token is invalid",
              region=DR_REGION, status=403)
    rows = rows_of(run(aws, make_spec(dr_region=DR_REGION)), "dr region")
    assert rows[1].status is Status.FAIL and "InvalidClientTokenId" in rows[1].detail


# --- blocked stacks -----------------------------------------------------------------------------

ONE_STACK = [{"name": "payments-staging-network", "region": REGION}]


@pytest.mark.parametrize("status", ["ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED",
                                    "IMPORT_ROLLBACK_FAILED"])
def test_a_stack_in_a_failed_state_blocks_with_the_recovery_command(aws, status):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network", status)
    row = only_row(run(aws, make_spec(stacks=ONE_STACK)), "stack state")
    assert row.status is Status.FAIL and row.detail.startswith(status)
    assert row.commands == ("make recover ENV=staging STACK=payments-staging-network",)


@pytest.mark.parametrize("status, says", [
    ("UPDATE_IN_PROGRESS", "the deploy waits for it"),
    ("DELETE_IN_PROGRESS", "the deploy waits for it"),
    ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "the deploy waits for it"),
    ("REVIEW_IN_PROGRESS", "an interrupted plan's empty stack; the next plan replaces it"),
    ("ROLLBACK_COMPLETE", "a failed first create"),
])
def test_a_stack_in_progress_is_a_warning(aws, status, says):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-network", status)
    report = run(aws, make_spec(stacks=ONE_STACK))
    row = only_row(report, "stack state")
    assert row.status is Status.WARN and says in row.detail and report.ok


def test_a_stack_is_described_in_its_own_region(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-prod-dr", "CREATE_COMPLETE", region=DR_REGION)
    report = run(aws, make_spec(stacks=[{"name": "payments-prod-dr", "region": DR_REGION}]))
    assert only_row(report, "stack state").status is Status.PASS


# --- scopes, errors, and every problem at once --------------------------------------------------

def test_destroy_scope_checks_identity_and_stacks_only(aws):
    stub_identity(aws)
    stub_stack(aws, "payments-staging-artifacts", "CREATE_COMPLETE")
    stub_stack(aws, "payments-staging-network", "DELETE_FAILED")
    report = run(aws, make_spec(FULL), Scope.DESTROY, fix=True)
    assert aws.requested == {("sts", REGION), ("cloudformation", REGION)}
    assert {row.check for row in report.rows} == {"identity", "stack state"}
    assert [row.status for row in report.failures] == [Status.FAIL]
    assert render(report).splitlines()[0].startswith("preflight (destroy) of staging")


def test_access_denied_on_an_optional_check_is_a_warning(aws):
    stub_identity(aws)
    aws.error("lambda", "get_account_settings", "AccessDeniedException",
              "User is not authorized to perform: lambda:GetAccountSettings", status=403)
    aws.error("apigateway", "get_account", "AccessDeniedException", "not authorized", status=403)
    spec = make_spec(lambda_reserved_concurrency=FULL["lambda_reserved_concurrency"],
                     api_gateway_logging_role="payments-staging-apigateway-logging")
    report = run(aws, spec)
    lambda_row, apigw_row = only_row(report, "lambda concurrency"), only_row(report, "api gateway logging")
    assert lambda_row.status is Status.WARN and lambda_row.detail.startswith(
        "could not check: AccessDeniedException (User is not authorized")
    assert apigw_row.status is Status.WARN and report.ok


def test_access_denied_on_an_essential_check_fails(aws):
    stub_identity(aws)
    aws.error("cloudformation", "describe_stacks", "AccessDenied", "not authorized", status=403)
    row = only_row(run(aws, make_spec(stacks=ONE_STACK)), "stack state")
    assert row.status is Status.FAIL and row.detail.startswith("could not check: AccessDenied")


def test_an_emulator_without_the_api_is_a_warning_not_a_traceback():
    from botocore.parsers import ResponseParserError

    class Emulator:
        def get_caller_identity(self):
            return {"Account": ACCOUNT, "Arn": CALLER_ARN, "UserId": "AIDAEXAMPLE"}

        def get_account(self):
            raise ResponseParserError("Unable to parse response, invalid XML received")

    spec = make_spec(api_gateway_logging_role="payments-staging-apigateway-logging")
    report = run_preflight(context(lambda service, region: Emulator()), spec, Scope.PREFLIGHT)
    row = only_row(report, "api gateway logging")
    assert row.status is Status.WARN and row.detail.startswith("could not check: ResponseParserError")


def test_an_error_in_one_subject_does_not_hide_the_others(aws):
    stub_identity(aws)
    aws.error("iam", "get_role", "ServiceFailure", "try again", status=500)
    stub_role_missing(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    first, second = rows_of(run(aws, make_spec(service_linked_roles=ROLES)), "service-linked role")
    assert first.status is Status.WARN and first.detail.startswith("could not check: ServiceFailure")
    assert second.status is Status.WARN and "FIX=1 creates it now" in second.detail


def test_every_problem_is_reported_together(aws):
    stub_identity(aws)
    stub_certificate(aws, status="EXPIRED", domain="www.example.com", sans=())
    aws.error("ecr", "describe_images", "ImageNotFoundException", "no such image")
    stub_stack(aws, "payments-staging-artifacts", "CREATE_COMPLETE")
    stub_stack(aws, "payments-staging-network", "ROLLBACK_FAILED")
    spec = make_spec(container_image=IMAGE, stacks=FULL["stacks"], **existing_cert())
    report = run(aws, spec, configured_region="us-west-2")
    failing = [(row.check, row.subject) for row in report.failures]
    assert failing == [("identity", "region"), ("certificate", DOMAIN), ("certificate", DOMAIN),
                       ("container image", "payments-staging-api:1.0.0"),
                       ("stack state", "payments-staging-network")]
    assert render(report).splitlines()[-1] == "preflight refused: 5 problem(s)"


# --- the manifest section -----------------------------------------------------------------------

def test_the_documented_section_parses():
    spec = make_spec(FULL)
    assert spec.account_id == ACCOUNT and spec.certificate.arn == CERT_ARN
    assert spec.container_image.image_id == {"imageTag": "1.0.0"}
    assert spec.network.availability_zones == ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    assert [role.required for role in spec.service_linked_roles] == [True, False]
    assert spec.stacks[1].name == "payments-staging-network" and spec.dr_region == DR_REGION


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw.pop("account_id"), "preflight: missing field 'account_id'"),
    (lambda raw: raw.update(account_id="2222"), "preflight.account_id: '2222' is not a 12-digit account id"),
    (lambda raw: raw["certificate"].pop("arn"), "preflight.certificate: missing field 'arn'"),
    (lambda raw: raw["certificate"].update(mode="import"),
     "preflight.certificate.mode: expected 'existing' or 'create'"),
    (lambda raw: raw["container_image"].update(digest=DIGEST), "exactly one of 'tag' and 'digest'"),
    (lambda raw: raw["container_image"].update(tag=None, digest="sha256:xyz"), "is not sha256:<64 hex>"),
    (lambda raw: raw["network"].update(nat_gateways=4), "preflight.network.nat_gateways: 4 is more than the 3 zones"),
    (lambda raw: raw["network"].update(vpcs="1"), "preflight.network.vpcs: expected an integer"),
    (lambda raw: raw["lambda_reserved_concurrency"].update(x=-1), "lambda_reserved_concurrency.x: must be 0 or more"),
    (lambda raw: raw["service_linked_roles"][1].pop("required"), "service_linked_roles[1]: missing field 'required'"),
    (lambda raw: raw["stacks"][0].pop("region"), "preflight.stacks[0]: missing field 'region'"),
])
def test_a_bad_section_names_the_field(change, message):
    raw = copy.deepcopy(FULL)
    change(raw)
    with pytest.raises(ManifestError, match=None) as error:
        parse_preflight(raw, "build/staging/manifest.json")
    assert message in str(error.value) and str(error.value).startswith("build/staging/manifest.json")


def test_a_certificate_to_create_parses():
    spec = make_spec(**created_cert("API.Staging.Example.com."))
    assert isinstance(spec.certificate, CertificateToCreate) and spec.certificate.hosted_zone_id == ZONE_ID
    assert spec.certificate.domain_name == DOMAIN


def test_load_preflight_reads_the_manifest_section(tmp_path):
    from deploylib.preflight import load_preflight

    (tmp_path / "staging").mkdir()
    manifest = tmp_path / "staging" / "manifest.json"
    manifest.write_text(json.dumps({"format": 1, "environment": "staging", "preflight": FULL}))
    assert load_preflight(tmp_path, "staging") == make_spec(FULL)
    manifest.write_text(json.dumps({"format": 1, "environment": "staging"}))
    with pytest.raises(ManifestError, match="missing field 'preflight'; rebuild with `make build ENV=staging`"):
        load_preflight(tmp_path, "staging")
    manifest.write_text(json.dumps({"preflight": {**FULL, "environment": "dev"}}))
    with pytest.raises(ManifestError, match="written for environment 'dev', not 'staging'"):
        load_preflight(tmp_path, "staging")


def test_an_arn_in_a_detail_is_never_cut(aws):
    from deploylib.preflight import PreflightReport, Row, Scope

    arn = "arn:aws:acm:eu-west-1:222222222222:certificate/3f1b2c44-9d1e-4b7a-8c2e-5a6b7c8d9e0f"
    report = PreflightReport("staging", "222222222222", REGION, Scope.PREFLIGHT,
                             [Row("certificate", "api.example.com", Status.PASS, f"ISSUED: {arn}")])
    assert arn in render(report)
