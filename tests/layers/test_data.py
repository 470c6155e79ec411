"""data layer: Aurora PostgreSQL (writer + reader, TLS, IAM auth, RDS-managed master secret) and DynamoDB tables."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from templates_src import batch_writes, data
from templates_src.config import load_environment

from .helpers import assert_data_policy, exports_contract, imported_exports, of_type, rendered

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def built() -> dict[str, tuple]:
    return {env: rendered(data, env) for env in ENVIRONMENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cluster_is_encrypted_tls_only_and_iam_authenticated(built, env):
    config, template = built[env]
    cluster = template["Resources"]["DbCluster"]["Properties"]
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EngineVersion"] == config.data.aurora.engine_version
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["StorageEncrypted"] is True
    assert cluster["KmsKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"}
    assert cluster["BackupRetentionPeriod"] == config.data.aurora.backup_retention_days
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert cluster["VpcSecurityGroupIds"] == [{"Fn::ImportValue": f"payments-{env}-network-DatabaseSecurityGroupId"}]
    parameters = template["Resources"]["DbClusterParameterGroup"]["Properties"]
    assert parameters["Parameters"] == {"rds.force_ssl": "1"}
    major = config.data.aurora.engine_version.split(".")[0]
    assert parameters["Family"] == f"aurora-postgresql{major}"
    assert cluster["DBClusterParameterGroupName"] == {"Ref": "DbClusterParameterGroup"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cluster_lives_in_the_isolated_subnets(built, env):
    _, template = built[env]
    subnets = template["Resources"]["DbSubnetGroup"]["Properties"]["SubnetIds"]
    assert subnets == {"Fn::Split": [",", {"Fn::ImportValue": f"payments-{env}-network-IsolatedSubnetIds"}]}
    assert template["Resources"]["DbCluster"]["Properties"]["DBSubnetGroupName"] == {"Ref": "DbSubnetGroup"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_capacity_follows_the_mode(built, env):
    config, template = built[env]
    aurora = config.data.aurora
    cluster = template["Resources"]["DbCluster"]["Properties"]
    instances = of_type(template, "AWS::RDS::DBInstance")
    classes = {r["Properties"]["DBInstanceClass"] for r in instances.values()}
    if aurora.mode == "serverless_v2":
        assert cluster["ServerlessV2ScalingConfiguration"] == {
            "MinCapacity": aurora.min_capacity_acu,
            "MaxCapacity": aurora.max_capacity_acu,
        }
        assert classes == {"db.serverless"}
    else:
        assert "ServerlessV2ScalingConfiguration" not in cluster
        assert classes == {aurora.instance_class}


def test_the_environments_exercise_both_modes(built):
    assert {config.data.aurora.mode for config, _ in built.values()} == {"serverless_v2", "provisioned"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_writer_and_reader_with_insights_and_enhanced_monitoring(built, env):
    config, template = built[env]
    instances = of_type(template, "AWS::RDS::DBInstance")
    assert set(instances) == {"DbWriterInstance", "DbReaderInstance"}
    tiers = {key: r["Properties"]["PromotionTier"] for key, r in instances.items()}
    assert tiers == {"DbWriterInstance": 0, "DbReaderInstance": 1}
    for instance in instances.values():
        properties = instance["Properties"]
        assert properties["DBClusterIdentifier"] == {"Ref": "DbCluster"}
        assert properties["PubliclyAccessible"] is False
        assert properties["EnablePerformanceInsights"] is True
        assert properties["PerformanceInsightsKMSKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"}
        assert properties["MonitoringInterval"] == config.data.aurora.monitoring_interval_s
        assert properties["MonitoringRoleArn"] == {"Fn::GetAtt": ["DbMonitoringRole", "Arn"]}
    trust = template["Resources"]["DbMonitoringRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_postgres_log_group_exists_before_the_cluster(built, env):
    config, template = built[env]
    group = template["Resources"]["DbPostgresLogGroup"]
    assert group["Properties"]["LogGroupName"] == f"/aws/rds/cluster/payments-{env}-aurora/postgresql"
    assert group["Properties"]["RetentionInDays"] == config.log_retention_days
    assert group["Properties"]["KmsKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-LogsKeyArn"}
    assert "DbPostgresLogGroup" in template["Resources"]["DbCluster"]["DependsOn"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_data_is_protected_where_the_environment_keeps_it(built, env):
    config, template = built[env]
    # On only once the stack is established: protection from the first create would make the
    # rollback of a failed create fail (ROLLBACK_FAILED).
    protection = {"Fn::If": ["StackEstablished", True, False]} if config.retains_data else False
    assert template["Resources"]["DbCluster"]["Properties"]["DeletionProtection"] == protection
    for table in of_type(template, "AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] == protection
    if config.retains_data:
        assert template["Parameters"]["StackLifecycle"] == {
            "AllowedValues": ["creating", "established"], "Default": "creating", "Type": "String",
            "Description": template["Parameters"]["StackLifecycle"]["Description"]}
        assert template["Conditions"]["StackEstablished"] == {"Fn::Equals": [{"Ref": "StackLifecycle"}, "established"]}
    expected = {"dev": "Delete", "staging": "Snapshot", "prod": "Snapshot"}[env]
    cluster = template["Resources"]["DbCluster"]
    assert (cluster["DeletionPolicy"], cluster["UpdateReplacePolicy"]) == (expected, expected)
    for logical_id in ("DbWriterInstance", "DbReaderInstance"):
        # Instances hold no data of their own; a kept member would block the cluster's deletion.
        resource = template["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert config.retains_data is (env != "dev")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rds_manages_the_master_password_in_a_secret_under_the_secrets_key(built, env):
    _, template = built[env]
    cluster = template["Resources"]["DbCluster"]["Properties"]
    assert cluster["MasterUsername"] == "payments_admin"
    assert cluster["ManageMasterUserPassword"] is True
    assert cluster["MasterUserSecret"] == {"KmsKeyId": {"Fn::ImportValue": f"payments-{env}-security-SecretsKeyArn"}}
    assert "MasterUserPassword" not in cluster
    # No password anywhere: no dynamic reference, no import of a security-layer secret.
    assert "resolve:secretsmanager" not in json.dumps(template)
    assert "DbCredentials" not in json.dumps(template)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_transform_and_no_hosted_rotation(built, env):
    """RDS rotates its own secret (every 7 days by default): no transform (whose nested rotation
    role the service role may not create), no attachment, no rotation schedule."""
    _, template = built[env]
    assert "Transform" not in template
    types = {resource["Type"] for resource in template["Resources"].values()}
    assert not types & {"AWS::SecretsManager::RotationSchedule", "AWS::SecretsManager::SecretTargetAttachment",
                        "AWS::SecretsManager::Secret", "AWS::Serverless::Application"}


def tables_contract() -> dict[str, dict]:
    """The key table of functions/paylib/TABLES.md: {prefix: {partition, sort, gsis, ttl}}."""
    text = (ROOT / "functions" / "paylib" / "TABLES.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[0] in ("table (export prefix)",) or set(cells[0]) <= {"-"}:
            continue
        rows[cells[0]] = {
            "partition": _key(cells[1]),
            "sort": _key(cells[2]),
            "gsis": set(re.findall(r"`([^`]+)`", cells[3])),
            "ttl": _key(cells[4], typed=False),
        }
    assert rows, "no table rows found in TABLES.md"
    return rows


def _key(cell: str, typed: bool = True):
    if cell == "-":
        return None
    if not typed:
        return cell.strip("`")
    match = re.fullmatch(r"`([a-z_]+)` \(([SN])\)", cell)
    assert match, f"unreadable key cell {cell!r}"
    return match.group(1), match.group(2)


def _table_keys(properties: dict) -> dict:
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    schema = {k["KeyType"]: k["AttributeName"] for k in properties["KeySchema"]}
    return {
        "partition": (schema["HASH"], types[schema["HASH"]]),
        "sort": (schema["RANGE"], types[schema["RANGE"]]) if "RANGE" in schema else None,
        "gsis": {index["IndexName"] for index in properties.get("GlobalSecondaryIndexes", [])},
        "ttl": properties.get("TimeToLiveSpecification", {}).get("AttributeName"),
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tables_match_the_functions_contract(built, env):
    _, template = built[env]
    contract = tables_contract()
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert set(tables) == {f"{prefix}Table" for prefix in contract}
    for prefix, expected in contract.items():
        assert _table_keys(tables[f"{prefix}Table"]["Properties"]) == expected, prefix


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_transaction_indexes_are_sorted_by_time(built, env):
    _, template = built[env]
    properties = template["Resources"]["TransactionsTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in properties["GlobalSecondaryIndexes"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    for name, partition in (("by-customer", "customer_id"), ("by-status", "status")):
        schema = [(k["AttributeName"], k["KeyType"]) for k in indexes[name]["KeySchema"]]
        assert schema == [(partition, "HASH"), ("created_at", "RANGE")]
        assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}
    assert types["created_at"] == "S"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tables_are_on_demand_recoverable_and_kms_encrypted(built, env):
    config, template = built[env]
    for logical_id, table in of_type(template, "AWS::DynamoDB::Table").items():
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"},
        }
        assert properties["TableName"].startswith(f"payments-{env}-")
        assert_data_policy(table, env, logical_id)


def _warm_writes(template: dict) -> dict[str, int]:
    """{table or table/index: WriteUnitsPerSecond} of everything that carries WarmThroughput."""
    warm = {}
    for table in of_type(template, "AWS::DynamoDB::Table").values():
        properties = table["Properties"]
        name = properties["TableName"].split("-", 2)[2]
        targets = [(name, properties)] + [(f"{name}/{i['IndexName']}", i) for i in properties.get("GlobalSecondaryIndexes", [])]
        warm.update({target: spec["WarmThroughput"]["WriteUnitsPerSecond"] for target, spec in targets if "WarmThroughput" in spec})
    return warm


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_what_the_batch_rows_write_is_warm_where_the_environment_says(built, env):
    config, template = built[env]
    units = config.data.warm_write_units_per_s
    expected = {} if units is None else {
        "transactions": units, "transactions/by-customer": units, "transactions/by-status": units, "velocity": units}
    assert _warm_writes(template) == expected


def test_the_environments_exercise_both_warm_and_default_tables(built):
    assert {built[env][0].data.warm_write_units_per_s is None for env in ENVIRONMENTS} == {True, False}


def test_the_batch_write_load_names_real_tables_and_indexes():
    """A renamed table or index would otherwise silently lose its warm throughput."""
    targets = {spec.purpose for spec in data.TABLES} | {
        f"{spec.purpose}/{index.name}" for spec in data.TABLES for index in spec.indexes}
    assert set(batch_writes.WRITE_UNITS_PER_ROW) <= targets


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_and_imports_follow_the_contract(built, env):
    _, template = built[env]
    outputs = template["Outputs"]
    assert set(outputs) == exports_contract("data")
    for key, output in outputs.items():
        assert output["Export"]["Name"] == f"payments-{env}-data-{key}"
    allowed = {
        f"payments-{env}-{layer}-{key}" for layer in ("network", "security") for key in exports_contract(layer)
    }
    assert imported_exports(template["Resources"]) <= allowed
    assert outputs["DbClusterEndpoint"]["Value"] == {"Fn::GetAtt": ["DbCluster", "Endpoint.Address"]}
    assert outputs["DbClusterResourceId"]["Value"] == {"Fn::GetAtt": ["DbCluster", "DBClusterResourceId"]}
    assert outputs["DbReaderEndpoint"]["Value"] == {"Fn::GetAtt": ["DbCluster", "ReadEndpoint.Address"]}


def test_parameter_group_family_follows_the_engine_major_version():
    config = load_environment("dev")
    cases = (("15.10", "aurora-postgresql15"), ("16.11", "aurora-postgresql16"), ("17.4", "aurora-postgresql17"))
    for version, family in cases:
        aurora = config.data.aurora.model_copy(update={"engine_version": version})
        assert data.parameter_group_family(aurora) == family


def test_build_is_deterministic():
    config = load_environment("staging")
    assert data.build(config).to_json() == data.build(config).to_json()
