"""Service APIs the deploy tool calls through the emulator (besides CloudFormation and S3)."""
from __future__ import annotations


def test_deploy_tool_service_calls(emu):
    c = emu.client
    assert c("sts").get_caller_identity()["Account"] == "123456789012"
    settings = c("lambda").get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountUsage"]["FunctionCount"] == 0
    role = c("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")["Role"]
    assert role["RoleName"] == "AWSServiceRoleForECS"
    assert c("iam").get_role(RoleName="AWSServiceRoleForECS")["Role"]["Path"] == "/aws-service-role/ecs.amazonaws.com/"
    assert c("acm").describe_certificate(CertificateArn=emu.certificate_arn)["Certificate"]["Status"] == "ISSUED"
    zone = c("route53").create_hosted_zone(Name="local.payments.test", CallerReference="ref")["HostedZone"]["Id"]
    assert c("route53").get_hosted_zone(Id=zone)["HostedZone"]["Name"] == "local.payments.test."
    assert "throttleSettings" in c("apigateway").get_account()
    quota = c("service-quotas").get_service_quota(ServiceCode="lambda", QuotaCode="L-B99A9384")["Quota"]
    assert quota["Value"] == 1000.0
    ec2 = c("ec2")
    assert any(r["RegionName"] == "eu-west-1" for r in ec2.describe_regions()["Regions"])
    assert [v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"]] == [True]
    assert ec2.describe_addresses()["Addresses"] == []
    assert ec2.describe_nat_gateways()["NatGateways"] == []
    c("ecr").create_repository(repositoryName="payments-api")
    assert c("ecr").describe_images(repositoryName="payments-api")["imageDetails"] == []


def test_function_concurrency_of_a_deployed_function(emu):
    from cfn_helpers import create_stack, template

    create_stack(emu.client("cloudformation"), "fn", template({
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": []}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "limited", "Runtime": "python3.12", "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "ReservedConcurrentExecutions": 5,
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"}}},
    }), capabilities=["CAPABILITY_IAM"])
    assert emu.client("lambda").get_function_concurrency(FunctionName="limited")["ReservedConcurrentExecutions"] == 5
