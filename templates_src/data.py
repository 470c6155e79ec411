"""data layer: Aurora PostgreSQL (writer + reader) and the DynamoDB tables of the functions.

Design decisions:
- The master credentials are RDS's: `ManageMasterUserPassword` makes RDS generate the password,
  keep it in a Secrets Manager secret of its own (`rds!cluster-...`, encrypted with the security
  layer's secrets key) and rotate it, every 7 days by default, with no Lambda. So no password
  or dynamic reference is in this template, and the stack needs no transform: hosted rotation
  (the `AWS::SecretsManager-2024-09-16` transform) expanded into a nested application whose
  rotation role carries no permissions boundary, which the CloudFormation service role may not
  create (templates_src/delivery.py). The secret's ARN is `GetAtt DbCluster.MasterUserSecret.SecretArn`;
  nothing imports it (operators find it on the cluster), so it is not exported.
- The secret's key cannot be changed once RDS manages the password (ModifyDBCluster refuses
  MasterUserSecretKmsKeyId then): SecretsKeyArn is an export that must stay stable.
- Serverless v2 or provisioned comes from `data.aurora.mode`; both get a writer and a reader so a
  failover has somewhere to go.
- Deletion protection (cluster and tables) follows `retains_data` (staging keeps its data like
  prod, dev is disposable), and is switched on only once the stack is established: protection on
  from the first create would make the rollback of a failed create fail (ROLLBACK_FAILED).
- The payment API's tasks connect as DB_APP_USER with IAM authentication (the cluster enables
  it; DbClusterResourceId names the user in the task role's rds-db:connect). The user is created
  in the database by the application's first migration: `CREATE USER payments_app;
  GRANT rds_iam TO payments_app;` plus its table grants. The master secret is for
  administration and migrations only, so its rotation never touches running tasks.
- RDS would create the `postgresql` log group itself, without retention and without KMS. It is
  created here first (the cluster depends on it) so log exports land in a group that obeys the
  platform's rules.
- Instances carry the environment's policy like every stateful resource (Snapshot in
  staging/prod); the data itself lives in the cluster volume, which the cluster snapshot keeps.
- Engine version: cfn-lint W3690 knows which Aurora PostgreSQL versions can still create
  clusters (16.4 no longer can); the parameter group family follows the major version.
- The tables and indexes the batch Distributed Map writes (templates_src/batch_writes.py) carry
  `WarmThroughput` from `data.warm_write_units_per_s` where an environment sets it: a new
  on-demand table serves 4,000 writes/s at once, the map's children more. The value only ever goes
  up (DynamoDB cannot lower it), so the change set shows each raise; the config bounds it.
- The DynamoDB tables follow `functions/paylib/TABLES.md` (the functions' contract); a test
  compares that file's key table with this module's TABLES.
"""
from __future__ import annotations

from dataclasses import dataclass

import awacs.logs as logs_actions
from awacs.aws import Allow, Policy, Statement
from troposphere import GetAtt, Ref, Split, Template, dynamodb, iam, rds

from .batch_writes import warmed_indexes, warmed_tables
from .blocks import log_group, service_trust
from .common import arn, deletion_protection, export, import_value, keep_data, new_template, resource_name, tags
from .config import AuroraConfig, EnvironmentConfig

LAYER = "data"

ENGINE = "aurora-postgresql"
DATABASE_NAME = "payments"
DATABASE_PORT = 5432
# The database user of the payment API's tasks (IAM authentication, no password).
DB_APP_USER = "payments_app"
# The master user (administration and migrations); its password is RDS's, in its own secret.
DB_MASTER_USERNAME = "payments_admin"
# Performance Insights keeps 7 days at no extra cost; longer retention is billed per vCPU.
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7
BACKUP_WINDOW = "02:00-03:00"
MAINTENANCE_WINDOW = "sun:03:30-sun:04:30"


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # "S" or "N"


@dataclass(frozen=True)
class Index:
    name: str
    partition: Key
    sort: Key


@dataclass(frozen=True)
class TableSpec:
    export_prefix: str  # TransactionsTableName, TransactionsTableArn
    purpose: str  # payments-<env>-<purpose>
    partition: Key
    sort: Key | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None


CREATED_AT = Key("created_at", "S")
TABLES = (
    TableSpec(
        "Transactions",
        "transactions",
        Key("payment_id", "S"),
        indexes=(
            Index("by-customer", Key("customer_id", "S"), CREATED_AT),
            Index("by-status", Key("status", "S"), CREATED_AT),
        ),
    ),
    TableSpec("Idempotency", "idempotency", Key("idempotency_key", "S"), ttl_attribute="expires_at"),
    TableSpec(
        "Velocity", "velocity", Key("counter_key", "S"), sort=Key("window_start", "N"), ttl_attribute="expires_at"
    ),
    TableSpec("BatchStatus", "batch-status", Key("batch_id", "S"), ttl_attribute="expires_at"),
    # Merchants and their secret keys (peppered hashes only): `MERCHANT#<id>` and `KEY#<hash>`.
    TableSpec("Merchants", "merchants", Key("pk", "S")),
)


def cluster_identifier(config: EnvironmentConfig) -> str:
    return resource_name(config, "aurora")


def parameter_group_family(aurora: AuroraConfig) -> str:
    """aurora-postgresql16 for 16.x: the family must match the engine's major version."""
    return f"{ENGINE}{aurora.engine_version.split('.', 1)[0]}"


def build(config: EnvironmentConfig) -> Template:
    template = new_template(config, LAYER, "Aurora PostgreSQL cluster and DynamoDB tables")
    cluster = _aurora_cluster(template, config)
    _instances(template, config, cluster)
    _export_cluster(template, config, cluster)
    for spec in TABLES:
        _table(template, config, spec)
    return template


# --- Aurora -------------------------------------------------------------------------------------


def _aurora_cluster(template: Template, config: EnvironmentConfig) -> rds.DBCluster:
    aurora = config.data.aurora
    name = cluster_identifier(config)
    subnet_group = template.add_resource(
        rds.DBSubnetGroup(
            "DbSubnetGroup",
            DBSubnetGroupName=resource_name(config, "aurora-subnets"),
            DBSubnetGroupDescription=f"{name}: isolated subnets, no route to the internet",
            SubnetIds=Split(",", import_value(config, "network", "IsolatedSubnetIds")),
            Tags=tags(config, resource_name(config, "aurora-subnets")),
        )
    )
    parameter_group = template.add_resource(
        rds.DBClusterParameterGroup(
            "DbClusterParameterGroup",
            Description=f"{name}: TLS required for every connection",
            Family=parameter_group_family(aurora),
            Parameters={"rds.force_ssl": "1"},
            Tags=tags(config, resource_name(config, "aurora-params")),
        )
    )
    postgres_logs = log_group(
        template,
        config,
        "DbPostgresLogGroup",
        f"/aws/rds/cluster/{name}/postgresql",
        import_value(config, "security", "LogsKeyArn"),
    )
    cluster = rds.DBCluster(
        "DbCluster",
        DependsOn=[postgres_logs.title],
        DBClusterIdentifier=name,
        Engine=ENGINE,
        EngineVersion=aurora.engine_version,
        DatabaseName=DATABASE_NAME,
        Port=DATABASE_PORT,
        MasterUsername=DB_MASTER_USERNAME,
        ManageMasterUserPassword=True,
        MasterUserSecret=rds.MasterUserSecret(KmsKeyId=import_value(config, "security", "SecretsKeyArn")),
        DBSubnetGroupName=Ref(subnet_group),
        VpcSecurityGroupIds=[import_value(config, "network", "DatabaseSecurityGroupId")],
        DBClusterParameterGroupName=Ref(parameter_group),
        EnableIAMDatabaseAuthentication=True,
        StorageEncrypted=True,
        KmsKeyId=import_value(config, "security", "DataKeyArn"),
        BackupRetentionPeriod=aurora.backup_retention_days,
        PreferredBackupWindow=BACKUP_WINDOW,
        PreferredMaintenanceWindow=MAINTENANCE_WINDOW,
        CopyTagsToSnapshot=True,
        DeletionProtection=deletion_protection(template, config, on=True, off=False),
        EnableCloudwatchLogsExports=["postgresql"],
        Tags=tags(config, name),
    )
    if aurora.mode == "serverless_v2":
        cluster.ServerlessV2ScalingConfiguration = rds.ServerlessV2ScalingConfiguration(
            MinCapacity=aurora.min_capacity_acu, MaxCapacity=aurora.max_capacity_acu
        )
    return template.add_resource(keep_data(cluster, config))


def _instances(template: Template, config: EnvironmentConfig, cluster: rds.DBCluster) -> None:
    aurora = config.data.aurora
    instance_class = "db.serverless" if aurora.mode == "serverless_v2" else aurora.instance_class
    monitoring_role = _monitoring_role(template, config)
    for logical_id, role, promotion_tier in (("DbWriterInstance", "writer", 0), ("DbReaderInstance", "reader", 1)):
        name = f"{cluster_identifier(config)}-{role}"
        instance = rds.DBInstance(
            logical_id,
            DBInstanceIdentifier=name,
            DBClusterIdentifier=Ref(cluster),
            Engine=ENGINE,
            DBInstanceClass=instance_class,
            PromotionTier=promotion_tier,
            PubliclyAccessible=False,
            AutoMinorVersionUpgrade=True,
            EnablePerformanceInsights=True,
            PerformanceInsightsKMSKeyId=import_value(config, "security", "DataKeyArn"),
            PerformanceInsightsRetentionPeriod=PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            MonitoringInterval=aurora.monitoring_interval_s,
            MonitoringRoleArn=GetAtt(monitoring_role, "Arn"),
            Tags=tags(config, name, Role=role),
        )
        if role == "reader":
            # Created after the writer so the writer is the first instance (and the primary).
            instance.DependsOn = ["DbWriterInstance"]
        template.add_resource(keep_data(instance, config))


def _monitoring_role(template: Template, config: EnvironmentConfig) -> iam.Role:
    """Enhanced monitoring publishes OS metrics to the `RDSOSMetrics` log group that RDS owns;
    these are the actions of AWS's AmazonRDSEnhancedMonitoringRole policy, spelled out."""
    return template.add_resource(
        iam.Role(
            "DbMonitoringRole",
            Description=f"{cluster_identifier(config)}: enhanced monitoring",
            AssumeRolePolicyDocument=service_trust("monitoring.rds.amazonaws.com", on_behalf_of_this_account=False),
            Policies=[
                iam.Policy(
                    PolicyName="enhanced-monitoring",
                    PolicyDocument=Policy(
                        Version="2012-10-17",
                        Statement=[
                            Statement(
                                Sid="ManageRdsOsMetricsGroup",
                                Effect=Allow,
                                Action=[logs_actions.CreateLogGroup, logs_actions.PutRetentionPolicy],
                                Resource=[arn("logs", "log-group:RDS*")],
                            ),
                            Statement(
                                Sid="WriteRdsOsMetrics",
                                Effect=Allow,
                                Action=[
                                    logs_actions.CreateLogStream,
                                    logs_actions.DescribeLogStreams,
                                    logs_actions.GetLogEvents,
                                    logs_actions.PutLogEvents,
                                ],
                                Resource=[arn("logs", "log-group:RDS*:log-stream:*")],
                            ),
                        ],
                    ),
                )
            ],
            Tags=tags(config, resource_name(config, "aurora-monitoring")),
        )
    )


def _export_cluster(template: Template, config: EnvironmentConfig, cluster: rds.DBCluster) -> None:
    export(template, config, LAYER, "DbClusterIdentifier", Ref(cluster), "Aurora cluster identifier")
    export(template, config, LAYER, "DbClusterResourceId", GetAtt(cluster, "DBClusterResourceId"),
           "Aurora cluster resource id (IAM database authentication ARNs)")
    export(template, config, LAYER, "DbClusterEndpoint", GetAtt(cluster, "Endpoint.Address"), "Writer endpoint")
    export(template, config, LAYER, "DbReaderEndpoint", GetAtt(cluster, "ReadEndpoint.Address"), "Reader endpoint")
    export(template, config, LAYER, "DbPort", GetAtt(cluster, "Endpoint.Port"), "PostgreSQL port")


# --- DynamoDB -----------------------------------------------------------------------------------


def _table(template: Template, config: EnvironmentConfig, spec: TableSpec) -> dynamodb.Table:
    name = resource_name(config, spec.purpose)
    table = dynamodb.Table(
        f"{spec.export_prefix}Table",
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            dynamodb.AttributeDefinition(AttributeName=key.name, AttributeType=key.type)
            for key in _attributes(spec)
        ],
        KeySchema=_key_schema(spec.partition, spec.sort),
        PointInTimeRecoverySpecification=dynamodb.PointInTimeRecoverySpecification(PointInTimeRecoveryEnabled=True),
        SSESpecification=dynamodb.SSESpecification(
            SSEEnabled=True, SSEType="KMS", KMSMasterKeyId=import_value(config, "security", "DataKeyArn")
        ),
        DeletionProtectionEnabled=deletion_protection(template, config, on=True, off=False),
        Tags=tags(config, name),
    )
    if spec.indexes:
        table.GlobalSecondaryIndexes = [
            dynamodb.GlobalSecondaryIndex(
                IndexName=index.name,
                KeySchema=_key_schema(index.partition, index.sort),
                Projection=dynamodb.Projection(ProjectionType="ALL"),
            )
            for index in spec.indexes
        ]
    _warm(table, config, spec)
    if spec.ttl_attribute:
        table.TimeToLiveSpecification = dynamodb.TimeToLiveSpecification(
            AttributeName=spec.ttl_attribute, Enabled=True
        )
    template.add_resource(keep_data(table, config))
    export(template, config, LAYER, f"{spec.export_prefix}TableName", Ref(table), f"{name} table name")
    export(template, config, LAYER, f"{spec.export_prefix}TableArn", GetAtt(table, "Arn"), f"{name} table ARN")
    return table


def _warm(table: dynamodb.Table, config: EnvironmentConfig, spec: TableSpec) -> None:
    """Warm write throughput on the table and the indexes the batch rows write, where configured."""
    units = config.data.warm_write_units_per_s
    if units is None or spec.purpose not in warmed_tables():
        return
    table.WarmThroughput = dynamodb.WarmThroughput(WriteUnitsPerSecond=units)
    for index in table.properties.get("GlobalSecondaryIndexes", []):
        if index.IndexName in warmed_indexes(spec.purpose):
            index.WarmThroughput = dynamodb.WarmThroughput(WriteUnitsPerSecond=units)


def _attributes(spec: TableSpec) -> list[Key]:
    """Every key attribute of the table and its indexes, once, sorted (deterministic output)."""
    keys = {spec.partition, *([spec.sort] if spec.sort else [])}
    for index in spec.indexes:
        keys.update((index.partition, index.sort))
    return sorted(keys, key=lambda key: key.name)


def _key_schema(partition: Key, sort: Key | None) -> list[dynamodb.KeySchema]:
    schema = [dynamodb.KeySchema(AttributeName=partition.name, KeyType="HASH")]
    if sort:
        schema.append(dynamodb.KeySchema(AttributeName=sort.name, KeyType="RANGE"))
    return schema
