"""Resource-level rules of the compatibility layer, with small templates."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from cfn_helpers import create_stack, events, resource_statuses, template, update_stack

ACCOUNT = "123456789012"
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/payments-api:1.0.0"


def network(nat: bool = False) -> dict:
    resources = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16", "EnableDnsHostnames": True,
                                                         "EnableDnsSupport": True}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.0.0/24",
                                                                "AvailabilityZone": "eu-west-1a"}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.1.0/24",
                                                                "AvailabilityZone": "eu-west-1b"}},
        "Igw": {"Type": "AWS::EC2::InternetGateway", "Properties": {}},
        "IgwAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}}},
        "Routes": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "DefaultRoute": {"Type": "AWS::EC2::Route", "DependsOn": "IgwAttachment", "Properties": {
            "RouteTableId": {"Ref": "Routes"}, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": {"Ref": "Igw"}}},
        "AssocA": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "SubnetA"}, "RouteTableId": {"Ref": "Routes"}}},
        "AssocB": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "SubnetB"}, "RouteTableId": {"Ref": "Routes"}}},
        "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {  # no GroupName: generated
            "GroupDescription": "app", "VpcId": {"Ref": "Vpc"},
            "SecurityGroupEgress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}]}},
        "SgIngress": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": {"Ref": "Sg"}, "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "SourceSecurityGroupId": {"Ref": "Sg"}}},
        "S3Endpoint": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "ServiceName": "com.amazonaws.eu-west-1.s3", "VpcEndpointType": "Gateway",
            "RouteTableIds": [{"Ref": "Routes"}]}},
        "SqsEndpoint": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
            "VpcId": {"Ref": "Vpc"}, "ServiceName": "com.amazonaws.eu-west-1.sqs", "VpcEndpointType": "Interface",
            "SubnetIds": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}], "SecurityGroupIds": [{"Ref": "Sg"}]}},
    }
    if nat:
        resources["Eip"] = {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc"}}
        resources["Nat"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
            "SubnetId": {"Ref": "SubnetA"}, "AllocationId": {"Fn::GetAtt": ["Eip", "AllocationId"]}}}
        resources["NatRoute"] = {"Type": "AWS::EC2::Route", "Properties": {
            "RouteTableId": {"Ref": "PrivateRoutes"}, "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": {"Ref": "Nat"}}}
        resources["PrivateRoutes"] = {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}}
    return resources


def test_network_stack_deletes_completely(emu, cfn):
    create_stack(cfn, "network", template(network(nat=True)))
    ec2 = emu.client("ec2")
    vpc = [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]][0]["VpcId"]
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert tags["aws:cloudformation:logical-id"] == "Vpc"
    routes = [t for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
              if not any(a.get("Main") for a in t.get("Associations", []))]
    assert sorted(len(t.get("Associations", [])) for t in routes) == [0, 2]
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "description", "Values": ["app"]}])["SecurityGroups"][0]
    assert group["GroupName"].startswith("network-Sg-")
    assert [p["FromPort"] for p in group["IpPermissionsEgress"]] == [443]  # the default allow-all egress was replaced
    cfn.delete_stack(StackName="network")
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert [g for g in ec2.describe_nat_gateways()["NatGateways"] if g["State"] != "deleted"] == []
    assert [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"] == []
    assert ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"] == []


def service_stack(image: str, certificate: str) -> str:
    resources = network()
    resources.update({
        "Lb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}], "SecurityGroups": [{"Ref": "Sg"}]}},
        "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "Port": 8080, "Protocol": "HTTP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"}}},
        "Https": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": {"Ref": "Lb"}, "Port": 443, "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": certificate}],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]}},
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": "api", "Cpu": "256", "Memory": "512", "NetworkMode": "awsvpc", "RequiresCompatibilities": ["FARGATE"],
            "ContainerDefinitions": [{"Name": "api", "Image": image, "PortMappings": [{"ContainerPort": 8080}]}]}},
        "Service": {"Type": "AWS::ECS::Service", "DependsOn": "Https", "Properties": {  # no DesiredCount
            "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Task"}, "LaunchType": "FARGATE",
            "DeploymentConfiguration": {"MinimumHealthyPercent": 100, "MaximumPercent": 200,
                                        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}},
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": [{"Ref": "SubnetA"}], "SecurityGroups": [{"Ref": "Sg"}]}},
            "LoadBalancers": [{"ContainerName": "api", "ContainerPort": 8080, "TargetGroupArn": {"Ref": "Tg"}}]}},
    })
    return template(resources, {
        "LbFullName": {"Value": {"Fn::GetAtt": ["Lb", "LoadBalancerFullName"]}},
        "TgFullName": {"Value": {"Fn::GetAtt": ["Tg", "TargetGroupFullName"]}},
    })


def push(emu, repository: str = "payments-api", tag: str = "1.0.0") -> None:
    ecr = emu.client("ecr")
    ecr.create_repository(repositoryName=repository)
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"digest": "sha256:" + "1" * 64}, "layers": []}))


def first_failure(cfn, name: str) -> dict:
    return [e for e in events(cfn, name) if e["ResourceStatus"] == "CREATE_FAILED"][0]


def test_service_with_its_image_in_ecr_deploys(emu, cfn):
    push(emu)
    stack = create_stack(cfn, "svc", service_stack(IMAGE, emu.certificate_arn))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["LbFullName"].startswith("app/")
    assert outputs["TgFullName"].startswith("targetgroup/")
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName="svc")["StackResourceSummaries"]}
    service = emu.client("ecs").describe_services(cluster=physical["Cluster"], services=[physical["Service"]])["services"][0]
    assert service["desiredCount"] == 1  # AWS's default when DesiredCount is left out
    assert service["loadBalancers"][0]["containerPort"] == 8080


def test_service_whose_image_is_missing_from_this_accounts_ecr_fails(emu, cfn):
    push(emu, tag="0.9.0")
    create_stack(cfn, "svc", service_stack(IMAGE, emu.certificate_arn), expect="ROLLBACK_COMPLETE")
    failure = first_failure(cfn, "svc")
    assert failure["LogicalResourceId"] == "Service"
    assert "CannotPullContainerError" in failure["ResourceStatusReason"]
    assert "tag 1.0.0 not found in repository payments-api" in failure["ResourceStatusReason"]
    assert [v for v in emu.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []  # rolled back


def test_https_listener_with_an_unknown_certificate_fails(emu, cfn):
    push(emu)
    missing = f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/00000000-0000-4000-8000-000000000001"
    create_stack(cfn, "svc", service_stack(IMAGE, missing), expect="ROLLBACK_COMPLETE")
    failure = first_failure(cfn, "svc")
    assert failure["LogicalResourceId"] == "Https"
    assert f"Certificate '{missing}' not found" in failure["ResourceStatusReason"]


def test_features_about_to_arrive_in_the_templates(emu, cfn):
    """ECR repository (KMS, scan on push, immutable tags, lifecycle), a DNS-validated certificate,
    a StackLifecycle parameter with conditions and Fn::If, RetainExceptOnCreate."""
    zone = emu.client("route53").create_hosted_zone(Name="local.payments.test", CallerReference="z")["HostedZone"]["Id"].split("/")[-1]
    lifecycle = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                                              "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}]}
    body = template({
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                                                          "Tags": [{"Key": "Name", "Value": "artifacts"}]}},
        "Repository": {"Type": "AWS::ECR::Repository", "DeletionPolicy": "RetainExceptOnCreate", "Properties": {
            "RepositoryName": "payments-api", "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": {"Fn::GetAtt": ["Key", "Arn"]}},
            "LifecyclePolicy": {"LifecyclePolicyText": json.dumps(lifecycle)}}},
        "Certificate": {"Type": "AWS::CertificateManager::Certificate", "Condition": "IsShared", "Properties": {
            "DomainName": "api.local.payments.test", "ValidationMethod": "DNS",
            "DomainValidationOptions": [{"DomainName": "api.local.payments.test", "HostedZoneId": zone}]}},
        "Marker": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {
            "Fn::If": ["IsShared", {"Ref": "Certificate"}, "none"]}}},
    }, {"RepositoryUri": {"Value": {"Fn::GetAtt": ["Repository", "RepositoryUri"]}}},
        Parameters={"StackLifecycle": {"Type": "String", "AllowedValues": ["ephemeral", "shared"], "Default": "shared"}},
        Conditions={"IsShared": {"Fn::Equals": [{"Ref": "StackLifecycle"}, "shared"]}})
    create_stack(cfn, "bootstrap", body)
    repository = emu.client("ecr").describe_repositories(repositoryNames=["payments-api"])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"]["scanOnPush"] is True
    assert repository["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert json.loads(emu.client("ecr").get_lifecycle_policy(repositoryName="payments-api")["lifecyclePolicyText"]) == lifecycle
    certificate = cfn.describe_stack_resource(StackName="bootstrap", LogicalResourceId="Certificate")["StackResourceDetail"]["PhysicalResourceId"]
    assert emu.client("acm").describe_certificate(CertificateArn=certificate)["Certificate"]["Status"] == "ISSUED"
    records = emu.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert any(r["Type"] == "CNAME" for r in records)
    # the ephemeral lifecycle drops the certificate (condition false) and keeps the rest
    described = cfn.describe_change_set(ChangeSetName=cfn.create_change_set(
        StackName="bootstrap", ChangeSetName="ephemeral", ChangeSetType="UPDATE", TemplateBody=body,
        Parameters=[{"ParameterKey": "StackLifecycle", "ParameterValue": "ephemeral"}])["Id"])
    actions = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]["Action"] for c in described["Changes"]}
    assert actions == {"Certificate": "Remove", "Marker": "Modify"}
    # RetainExceptOnCreate keeps the repository when the stack is deleted
    cfn.delete_stack(StackName="bootstrap")
    assert emu.client("ecr").describe_repositories()["repositories"][0]["repositoryName"] == "payments-api"


def test_certificate_without_dns_validation_route_fails(emu, cfn):
    create_stack(cfn, "cert", template({"Certificate": {"Type": "AWS::CertificateManager::Certificate", "Properties": {
        "DomainName": "api.example.test", "ValidationMethod": "DNS"}}}), expect="ROLLBACK_COMPLETE")
    reason = first_failure(cfn, "cert")["ResourceStatusReason"]
    assert "stays PENDING_VALIDATION" in reason and "HostedZoneId" in reason
    assert emu.client("acm").list_certificates()["CertificateSummaryList"] == [
        s for s in emu.client("acm").list_certificates()["CertificateSummaryList"] if s["CertificateArn"] == emu.certificate_arn]


def test_non_empty_bucket_is_kept_like_s3_does(emu, cfn):
    create_stack(cfn, "bucket", template({"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "kept-bucket"}}}))
    emu.client("s3").put_object(Bucket="kept-bucket", Key="a", Body=b"x")
    cfn.delete_stack(StackName="bucket")
    stack = cfn.describe_stacks(StackName="bucket")["Stacks"][0]
    assert stack["StackStatus"] == "DELETE_FAILED"
    assert resource_statuses(cfn, "bucket")["Bucket"] == "DELETE_FAILED"
    emu.client("s3").delete_object(Bucket="kept-bucket", Key="a")
    cfn.delete_stack(StackName="bucket")
    assert emu.client("s3").list_buckets()["Buckets"] == []


LOCKED_BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {
    "BucketName": "locked-bucket", "VersioningConfiguration": {"Status": "Enabled"}, "ObjectLockEnabled": True,
    "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
                                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}}}


def test_object_lock_applies_default_retention_and_only_bypass_deletes(emu, cfn):
    create_stack(cfn, "locked", template({"Bucket": LOCKED_BUCKET}))
    s3 = emu.client("s3")
    rule = s3.get_object_lock_configuration(Bucket="locked-bucket")["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"]["Mode"] == "GOVERNANCE" and rule["DefaultRetention"]["Days"] == 1
    version = s3.put_object(Bucket="locked-bucket", Key="audit.json", Body=b"{}", ChecksumAlgorithm="SHA256")["VersionId"]
    assert s3.head_object(Bucket="locked-bucket", Key="audit.json")["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="locked-bucket", Key="audit.json", VersionId=version)
    s3.delete_object(Bucket="locked-bucket", Key="audit.json", VersionId=version, BypassGovernanceRetention=True)
    cfn.delete_stack(StackName="locked")
    assert s3.list_buckets()["Buckets"] == []


def test_object_lock_cannot_be_turned_off_by_an_update(emu, cfn):
    create_stack(cfn, "locked", template({"Bucket": LOCKED_BUCKET}))
    unlocked = {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketName": "locked-bucket", "VersioningConfiguration": {"Status": "Enabled"}}}
    update_stack(cfn, "locked", template({"Bucket": unlocked}), expect="UPDATE_ROLLBACK_COMPLETE")
    failed = [e for e in events(cfn, "locked") if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert "Object Lock cannot be disabled" in failed[0]["ResourceStatusReason"]
    assert emu.client("s3").get_object_lock_configuration(
        Bucket="locked-bucket")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    cfn.delete_stack(StackName="locked")


def test_object_lock_turned_on_for_an_existing_versioned_bucket(emu, cfn):
    # S3 allows enabling Object Lock on an existing versioned bucket (the staging/prod upgrade path)
    plain = {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketName": "locked-bucket", "VersioningConfiguration": {"Status": "Enabled"}}}
    create_stack(cfn, "locked", template({"Bucket": plain}))
    emu.client("s3").put_object(Bucket="locked-bucket", Key="before.json", Body=b"{}")
    described, _ = update_stack(cfn, "locked", template({"Bucket": LOCKED_BUCKET}))
    assert [c["ResourceChange"]["Replacement"] for c in described["Changes"]] == ["False"]
    s3 = emu.client("s3")
    assert s3.get_object_lock_configuration(Bucket="locked-bucket")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    s3.put_object(Bucket="locked-bucket", Key="after.json", Body=b"{}", ChecksumAlgorithm="SHA256")
    assert s3.head_object(Bucket="locked-bucket", Key="after.json")["ObjectLockMode"] == "GOVERNANCE"
    assert "ObjectLockMode" not in s3.head_object(Bucket="locked-bucket", Key="before.json")
    for version in s3.list_object_versions(Bucket="locked-bucket")["Versions"]:
        s3.delete_object(Bucket="locked-bucket", Key=version["Key"], VersionId=version["VersionId"],
                         BypassGovernanceRetention=True)
    cfn.delete_stack(StackName="locked")


def aurora(**properties) -> dict:
    return {"Type": "AWS::RDS::DBCluster", "Properties": {
        "Engine": "aurora-postgresql", "EngineVersion": "16.6", "MasterUsername": "payments_admin",
        "StorageEncrypted": True, **properties}}


def test_cluster_with_an_rds_managed_password_gives_its_secret_arn(emu, cfn):
    key = emu.client("kms").create_key(Description="secrets")["KeyMetadata"]["Arn"]
    body = template({"Cluster": aurora(ManageMasterUserPassword=True, MasterUserSecret={"KmsKeyId": key})},
                    {"SecretArn": {"Value": {"Fn::GetAtt": ["Cluster", "MasterUserSecret.SecretArn"]}}})
    stack = create_stack(cfn, "managed-secret", body)
    [output] = stack["Outputs"]
    described = emu.client("secretsmanager").describe_secret(SecretId=output["OutputValue"])
    assert described["Name"].startswith("rds!cluster-")
    assert described["KmsKeyId"] == key


def test_cluster_refuses_a_password_when_rds_manages_it(emu, cfn):
    body = template({"Cluster": aurora(ManageMasterUserPassword=True, MasterUserPassword="not-a-real-one-123")})
    create_stack(cfn, "both-passwords", body, expect="ROLLBACK_COMPLETE")
    assert "ManageMasterUserPassword" in first_failure(cfn, "both-passwords")["ResourceStatusReason"]


def warm_table(units: int) -> dict:
    return {"Type": "AWS::DynamoDB::Table", "Properties": {
        "TableName": "warm-table", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "WarmThroughput": {"WriteUnitsPerSecond": units}}}


def test_warm_throughput_is_applied_raised_and_never_lowered(emu, cfn):
    ddb = emu.client("dynamodb")
    create_stack(cfn, "warm", template({"Table": warm_table(5_000)}))
    assert ddb.describe_table(TableName="warm-table")["Table"]["WarmThroughput"]["WriteUnitsPerSecond"] == 5_000
    update_stack(cfn, "warm", template({"Table": warm_table(6_000)}))
    assert ddb.describe_table(TableName="warm-table")["Table"]["WarmThroughput"]["WriteUnitsPerSecond"] == 6_000
    update_stack(cfn, "warm", template({"Table": warm_table(5_500)}), change_set_name="lower",
                 expect="UPDATE_ROLLBACK_COMPLETE")
    failed = [e for e in events(cfn, "warm") if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert "warm throughput cannot be decreased" in failed[0]["ResourceStatusReason"]
    assert ddb.describe_table(TableName="warm-table")["Table"]["WarmThroughput"]["WriteUnitsPerSecond"] == 6_000
    cfn.delete_stack(StackName="warm")
