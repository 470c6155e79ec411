"""network layer: 3 AZs, 9 /24 subnets, NAT per configured count, endpoints, security groups, flow logs,
the closed default security group (its handler run against moto) and optional peering."""
from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from templates_src import network
from templates_src.config import ConfigError, load_environment

from .helpers import assert_data_policy, exports_contract, of_type

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


def render(config) -> dict:
    return json.loads(network.build(config).to_json())


def with_network(config, **changes):
    """The same environment with network settings changed (validated like a parameter file)."""
    raw = config.model_dump()
    raw["network"].update(changes)
    return type(config).model_validate(raw)


def ref(value) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def subnets_of_tier(template: dict, tier: str) -> dict[str, dict]:
    return {
        name: subnet
        for name, subnet in of_type(template, "AWS::EC2::Subnet").items()
        if {"Key": "Tier", "Value": tier} in subnet["Properties"]["Tags"]
    }


def table_of_subnet(template: dict, subnet: str) -> str:
    for association in of_type(template, "AWS::EC2::SubnetRouteTableAssociation").values():
        if ref(association["Properties"]["SubnetId"]) == subnet:
            return ref(association["Properties"]["RouteTableId"])
    raise AssertionError(f"{subnet} has no route table")


def routes_of(template: dict, table: str) -> list[dict]:
    return [
        route["Properties"]
        for route in of_type(template, "AWS::EC2::Route").values()
        if ref(route["Properties"]["RouteTableId"]) == table
    ]


def default_route(template: dict, table: str) -> dict | None:
    found = [route for route in routes_of(template, table) if route["DestinationCidrBlock"] == "0.0.0.0/0"]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def env(request):
    config = load_environment(request.param)
    return config, render(config)


def test_vpc_uses_the_environment_cidr_with_dns(env):
    config, template = env
    (vpc,) = of_type(template, "AWS::EC2::VPC").values()
    assert vpc["Properties"]["CidrBlock"] == config.network.cidr
    assert vpc["Properties"]["EnableDnsSupport"] is True
    assert vpc["Properties"]["EnableDnsHostnames"] is True


def test_nine_distinct_24_subnets_over_three_named_zones(env):
    config, template = env
    vpc = ipaddress.IPv4Network(config.network.cidr)
    subnets = of_type(template, "AWS::EC2::Subnet")
    assert len(subnets) == 9
    networks = [ipaddress.IPv4Network(s["Properties"]["CidrBlock"]) for s in subnets.values()]
    assert all(n.prefixlen == 24 and n.subnet_of(vpc) for n in networks)
    assert len(set(networks)) == 9
    for tier in network.TIERS:
        zones = [s["Properties"]["AvailabilityZone"] for s in subnets_of_tier(template, tier).values()]
        assert sorted(zones) == sorted(config.network.availability_zones), tier


def test_no_subnet_hands_out_public_ips(env):
    _, template = env
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in of_type(template, "AWS::EC2::Subnet").values())


def test_public_subnets_route_to_the_internet_gateway(env):
    _, template = env
    for subnet in subnets_of_tier(template, "public"):
        route = default_route(template, table_of_subnet(template, subnet))
        assert ref(route["GatewayId"]) == "InternetGateway"


def test_isolated_subnets_have_no_default_route(env):
    _, template = env
    for subnet in subnets_of_tier(template, "isolated"):
        assert default_route(template, table_of_subnet(template, subnet)) is None


def nat_zone(template: dict, nat_logical_id: str) -> str:
    subnet = ref(template["Resources"][nat_logical_id]["Properties"]["SubnetId"])
    return template["Resources"][subnet]["Properties"]["AvailabilityZone"]


@pytest.mark.parametrize("count", [0, 1, 2, 3])
@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_private_subnets_route_to_nat_as_configured(env_name, count):
    config = with_network(load_environment(env_name), nat_gateways=count)
    template = render(config)
    gateways = of_type(template, "AWS::EC2::NatGateway")
    assert len(gateways) == count
    assert len(of_type(template, "AWS::EC2::EIP")) == count
    zones = config.network.availability_zones
    for name, subnet in subnets_of_tier(template, "private").items():
        route = default_route(template, table_of_subnet(template, name))
        if count == 0:
            assert route is None
            continue
        nat = ref(route["NatGatewayId"])
        assert ref(gateways[nat]["Properties"]["SubnetId"]) in subnets_of_tier(template, "public")
        own_zone = subnet["Properties"]["AvailabilityZone"]
        # a zone with its own NAT uses it; the others share the first zone's
        expected_zone = own_zone if own_zone in zones[:count] else zones[0]
        assert nat_zone(template, nat) == expected_zone


def test_each_environment_gets_its_configured_nat_count(env):
    config, template = env
    assert len(of_type(template, "AWS::EC2::NatGateway")) == config.network.nat_gateways


def test_gateway_endpoints_serve_private_and_isolated_tables(env):
    _, template = env
    tables = {
        table_of_subnet(template, subnet)
        for tier in ("private", "isolated")
        for subnet in subnets_of_tier(template, tier)
    }
    endpoints = {
        e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: e["Properties"]
        for e in of_type(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    }
    assert set(endpoints) == {"s3", "dynamodb"}
    for properties in endpoints.values():
        assert {ref(t) for t in properties["RouteTableIds"]} == tables


def test_interface_endpoints_with_private_dns_in_private_subnets(env):
    _, template = env
    private = set(subnets_of_tier(template, "private"))
    services = set()
    for endpoint in of_type(template, "AWS::EC2::VPCEndpoint").values():
        properties = endpoint["Properties"]
        if properties["VpcEndpointType"] != "Interface":
            continue
        services.add(properties["ServiceName"]["Fn::Sub"].split("}.", 1)[1])
        assert properties["PrivateDnsEnabled"] is True
        assert {ref(s) for s in properties["SubnetIds"]} == private
        assert [ref(g) for g in properties["SecurityGroupIds"]] == ["EndpointSecurityGroup"]
    assert {"secretsmanager", "logs", "ecr.api", "ecr.dkr", "sqs", "kms", "sns", "states", "monitoring"} <= services


def ingress_rules(template: dict, group: str) -> list[dict]:
    inline = template["Resources"][group]["Properties"].get("SecurityGroupIngress", [])
    standalone = [
        r["Properties"]
        for r in of_type(template, "AWS::EC2::SecurityGroupIngress").values()
        if ref(r["Properties"]["GroupId"]) == group
    ]
    return inline + standalone


def test_load_balancer_accepts_443_from_the_internet_and_80_only_where_dev_redirects(env):
    config, template = env
    rules = {(r["FromPort"], r.get("CidrIp")) for r in ingress_rules(template, "AlbSecurityGroup")}
    expected = {(443, "0.0.0.0/0"), (80, "0.0.0.0/0")} if config.compute.http_redirect else {(443, "0.0.0.0/0")}
    assert rules == expected
    assert config.compute.http_redirect is (config.name == "dev")


def test_app_tasks_accept_the_container_port_from_the_load_balancer_only(env):
    config, template = env
    (rule,) = ingress_rules(template, "AppSecurityGroup")
    port = config.compute.ecs.container_port
    assert (rule["FromPort"], rule["ToPort"], ref(rule["SourceSecurityGroupId"])) == (port, port, "AlbSecurityGroup")


def test_database_accepts_postgres_from_app_tasks_only(env):
    """No function talks to PostgreSQL (RDS rotates the master secret without a Lambda)."""
    _, template = env
    rules = ingress_rules(template, "DatabaseSecurityGroup")
    assert {(r["FromPort"], r["ToPort"], ref(r["SourceSecurityGroupId"])) for r in rules} == {
        (5432, 5432, "AppSecurityGroup"),
    }
    assert not any("CidrIp" in r for r in rules)


def test_endpoints_accept_https_from_the_vpc(env):
    config, template = env
    (rule,) = ingress_rules(template, "EndpointSecurityGroup")
    assert (rule["FromPort"], rule["CidrIp"]) == (443, config.network.cidr)


def test_no_security_group_keeps_allow_all_egress(env):
    _, template = env
    for name, group in of_type(template, "AWS::EC2::SecurityGroup").items():
        egress = group["Properties"]["SecurityGroupEgress"]
        assert egress, f"{name} would get CloudFormation's allow-all egress"
        assert not any(rule["IpProtocol"] == "-1" for rule in egress), name
    for rule in of_type(template, "AWS::EC2::SecurityGroupEgress").values():
        assert rule["Properties"]["IpProtocol"] == "tcp"
        assert "DestinationSecurityGroupId" in rule["Properties"]


def test_every_security_group_rule_is_described(env):
    _, template = env
    for group in of_type(template, "AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []) + group["Properties"]["SecurityGroupEgress"]:
            assert rule["Description"]


def test_flow_logs_go_to_a_kms_encrypted_group_with_configured_retention(env):
    config, template = env
    (flow_log,) = of_type(template, "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert ref(flow_log["Properties"]["ResourceId"]) == "Vpc"
    group = template["Resources"][ref(flow_log["Properties"]["LogGroupName"])]
    assert group["Properties"]["RetentionInDays"] == config.network.flow_log_retention_days
    key = group["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]
    assert template["Resources"][key]["Properties"]["EnableKeyRotation"] is True
    assert_data_policy(group, config.name)


def test_flow_log_role_is_least_privilege(env):
    _, template = env
    role = template["Resources"]["FlowLogRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnLike"}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"}
    assert statement["Resource"] == [{"Fn::GetAtt": ["FlowLogGroup", "Arn"]}]


def test_every_log_group_has_retention_and_kms(env):
    _, template = env
    for group in of_type(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] > 0
        assert "KmsKeyId" in group["Properties"]


def test_no_iam_statement_has_a_wildcard_action(env):
    _, template = env
    for role in of_type(template, "AWS::IAM::Role").values():
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                assert not any("*" in action for action in statement["Action"])
                assert "*" not in statement["Resource"]


def test_default_security_group_is_closed_by_the_custom_resource(env):
    _, template = env
    (restriction,) = of_type(template, "Custom::RestrictDefaultSecurityGroup").values()
    assert restriction["Properties"]["GroupId"] == {"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]}
    function = template["Resources"][restriction["Properties"]["ServiceToken"]["Fn::GetAtt"][0]]
    assert function["Properties"]["Code"]["ZipFile"] == network.RESTRICT_DEFAULT_SG_CODE
    assert ref(function["Properties"]["LoggingConfig"]["LogGroup"]) == "RestrictDefaultSgLogGroup"


class FakeResponseUrl:
    """Stands in for CloudFormation's pre-signed response URL."""

    def __init__(self):
        self.bodies: list[dict] = []

    def __call__(self, request, timeout):
        assert request.get_method() == "PUT"
        self.bodies.append(json.loads(request.data))
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def custom_resource_event(group_id: str, request_type: str = "Create") -> dict:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-response.invalid/x",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/payments-dev-network/1",
        "RequestId": "request-1",
        "LogicalResourceId": "DefaultSecurityGroupRestriction",
        "ResourceProperties": {"GroupId": group_id},
    }


@pytest.fixture
def handler_with_vpc(monkeypatch):
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        group_id = ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"][0]["GroupId"]
        # AWS gives the default group a self-referencing ingress rule; moto does not, so add it.
        ec2.authorize_security_group_ingress(
            GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}]
        )
        namespace: dict = {}
        exec(compile(network.RESTRICT_DEFAULT_SG_CODE, "index.py", "exec"), namespace)
        response_url = FakeResponseUrl()
        monkeypatch.setattr("urllib.request.urlopen", response_url)
        yield ec2, group_id, namespace["handler"], response_url


def rules_of(ec2, group_id: str) -> tuple[list, list]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return group["IpPermissions"], group["IpPermissionsEgress"]


def test_handler_removes_both_default_rules_and_reports_success(handler_with_vpc):
    ec2, group_id, handler, response_url = handler_with_vpc
    assert all(rules_of(ec2, group_id))
    assert handler(custom_resource_event(group_id), None) == "SUCCESS"
    assert rules_of(ec2, group_id) == ([], [])
    (body,) = response_url.bodies
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == f"restricted-{group_id}"
    assert body["LogicalResourceId"] == "DefaultSecurityGroupRestriction"


def test_handler_is_idempotent_on_update(handler_with_vpc):
    ec2, group_id, handler, response_url = handler_with_vpc
    handler(custom_resource_event(group_id), None)
    event = dict(custom_resource_event(group_id, "Update"), PhysicalResourceId=f"restricted-{group_id}")
    assert handler(event, None) == "SUCCESS"
    assert rules_of(ec2, group_id) == ([], [])


def test_handler_reports_failure_to_cloudformation_instead_of_hanging(handler_with_vpc):
    _, _, handler, response_url = handler_with_vpc
    assert handler(custom_resource_event("sg-0123456789abcdef0"), None) == "FAILED"
    (body,) = response_url.bodies
    assert body["Status"] == "FAILED"
    assert body["Reason"]


def test_handler_does_nothing_on_delete(handler_with_vpc):
    ec2, group_id, handler, response_url = handler_with_vpc
    before = rules_of(ec2, group_id)
    event = dict(custom_resource_event(group_id, "Delete"), PhysicalResourceId=f"restricted-{group_id}")
    assert handler(event, None) == "SUCCESS"
    assert rules_of(ec2, group_id) == before
    assert response_url.bodies[0]["PhysicalResourceId"] == f"restricted-{group_id}"


def test_no_peering_by_default(env):
    config, template = env
    assert not config.network.peering.enabled
    assert not of_type(template, "AWS::EC2::VPCPeeringConnection")


def test_peering_routes_private_and_isolated_tables_to_the_peer():
    config = with_network(
        load_environment("staging"),
        peering={"enabled": True, "peer_vpc_id": "vpc-0123456789abcdef0", "peer_cidr": "10.2.0.0/16"},
    )
    template = render(config)
    (name, connection) = next(iter(of_type(template, "AWS::EC2::VPCPeeringConnection").items()))
    assert connection["Properties"]["PeerVpcId"] == "vpc-0123456789abcdef0"
    expected_tables = {
        table_of_subnet(template, subnet) for tier in ("private", "isolated") for subnet in subnets_of_tier(template, tier)
    }
    peer_routes = [
        r["Properties"] for r in of_type(template, "AWS::EC2::Route").values() if "VpcPeeringConnectionId" in r["Properties"]
    ]
    assert {ref(r["RouteTableId"]) for r in peer_routes} == expected_tables
    assert all(r["DestinationCidrBlock"] == "10.2.0.0/16" and ref(r["VpcPeeringConnectionId"]) == name for r in peer_routes)


def write_parameters(tmp_path: Path, env_name: str, edit) -> Path:
    for name in ENVIRONMENTS:
        shutil.copy(ROOT / "parameters" / f"{name}.yaml", tmp_path / f"{name}.yaml")
    raw = yaml.safe_load((tmp_path / f"{env_name}.yaml").read_text())
    edit(raw)
    (tmp_path / f"{env_name}.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_peer_cidr_overlapping_the_vpc_is_refused(tmp_path):
    def overlap(raw):
        raw["network"]["peering"] = {"enabled": True, "peer_vpc_id": "vpc-0123456789abcdef0", "peer_cidr": "10.0.128.0/17"}

    directory = write_parameters(tmp_path, "dev", overlap)
    with pytest.raises(ConfigError) as error:
        load_environment("dev", directory)
    message = str(error.value)
    assert "dev.yaml" in message and "network" in message and "overlaps the VPC CIDR" in message


def test_enabled_peering_without_a_peer_is_refused(tmp_path):
    def incomplete(raw):
        raw["network"]["peering"] = {"enabled": True}

    with pytest.raises(ConfigError, match="peer_vpc_id and peer_cidr"):
        load_environment("dev", write_parameters(tmp_path, "dev", incomplete))


def test_exports_match_the_contract_and_nothing_is_imported(env):
    config, template = env
    assert set(template["Outputs"]) == exports_contract("network")
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-{config.name}-network-{key}"
    assert "Fn::ImportValue" not in json.dumps(template)


def test_subnet_id_exports_list_the_tier_in_zone_order(env):
    config, template = env
    joined = template["Outputs"]["PrivateSubnetIds"]["Value"]["Fn::Join"]
    assert joined[0] == ","
    zones = [template["Resources"][ref(s)]["Properties"]["AvailabilityZone"] for s in joined[1]]
    assert zones == list(config.network.availability_zones)


def test_template_is_deterministic(env):
    config, _ = env
    assert network.build(config).to_json() == network.build(config).to_json()
