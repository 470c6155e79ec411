"""RDS: subnet groups, Aurora clusters and their parameter groups, DB instances.

moto gaps covered: AWS::RDS::DBCluster and AWS::RDS::DBClusterParameterGroup have no model in
moto; moto's AWS::RDS::DBInstance ignores DBClusterIdentifier (an Aurora instance becomes a
stand-alone MySQL-port instance), expects DBSubnetGroupName to be a Python object, and ignores
monitoring / performance insights; a Ref to an AWS::RDS::DBSubnetGroup returns the moto object
(no physical_resource_id). All are created through moto's RDS backend here, so
DescribeDBClusters / DescribeDBInstances show what a real deploy would.
"""
from __future__ import annotations

import re
from typing import Any

from moto.moto_api._internal import mock_random

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[request.account_id][request.region]


def _generated_identifier(request: Request, limit: int = 63) -> str:
    """RDS identifiers CloudFormation generates: lower case, letters/digits/hyphens."""
    name = re.sub(r"[^a-z0-9-]", "-", request.physical_name.lower())
    name = re.sub(r"-+", "-", name).strip("-")
    if not name[0].isalpha():
        name = "a" + name
    return name[:limit].rstrip("-")


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return str(value).lower() == "true"


class SubnetGroupProvider(MotoProvider):
    """Ref: the subnet group name (lower case, as RDS stores it)."""

    def resource_name(self, request: Request) -> str:
        return str(request.properties.get("DBSubnetGroupName") or _generated_identifier(request, 255)).lower()

    def physical_id(self, handle: Any) -> Any:
        return handle.name

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_subnet_group(state.physical_id)


class ClusterParameterGroupProvider(Provider):
    resource_type = "AWS::RDS::DBClusterParameterGroup"
    support = "created"

    def create(self, request: Request) -> State:
        p = request.properties
        name = str(p.get("DBClusterParameterGroupName") or _generated_identifier(request, 255)).lower()
        rds = backend(request)
        rds.create_db_cluster_parameter_group(name, p["Family"], p["Description"], p.get("Tags") or [])
        self._parameters(rds, name, p.get("Parameters") or {})
        return State(physical_id=name)

    def _parameters(self, rds: Any, name: str, parameters: dict) -> None:
        if parameters:
            rds.modify_db_cluster_parameter_group(name, [
                {"ParameterName": k, "ParameterValue": str(v), "ApplyMethod": "pending-reboot"}
                for k, v in parameters.items()])

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self._parameters(backend(request), state.physical_id, request.properties.get("Parameters") or {})
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_db_cluster_parameter_group(state.physical_id)


def _master_user_secret(cluster: Any) -> dict[str, Any]:
    """GetAtt MasterUserSecret.SecretArn: only a cluster whose password RDS manages has one."""
    secret = getattr(cluster, "master_user_secret", None)
    if secret is None:
        return {}
    return {"MasterUserSecret.SecretArn": secret.secret_arn, "MasterUserSecret": {"SecretArn": secret.secret_arn}}


class ClusterProvider(Provider):
    """An Aurora cluster in moto's RDS. GetAtt Endpoint.Address / Endpoint.Port /
    ReadEndpoint.Address / DBClusterArn / DBClusterResourceId, and MasterUserSecret.SecretArn when
    RDS manages the password (moto creates that secret in its Secrets Manager, with the key given;
    no rotation runs); Ref: the identifier. DeletionPolicy Snapshot takes a final cluster snapshot."""

    resource_type = "AWS::RDS::DBCluster"
    support = "created"

    def create(self, request: Request) -> State:
        rds = backend(request)
        p = request.properties
        identifier = str(p.get("DBClusterIdentifier") or _generated_identifier(request)).lower()
        group = p.get("DBClusterParameterGroupName")
        if group and group not in rds.db_cluster_parameter_groups and not str(group).startswith("default."):
            raise ResourceFailure(f"Resource handler returned message: \"DBClusterParameterGroup not found: {group}\" "
                                  "(Error Code: DBClusterParameterGroupNotFound)")
        subnet_group = p.get("DBSubnetGroupName")
        if subnet_group and str(subnet_group).lower() not in rds.subnet_groups:
            raise ResourceFailure(f"Resource handler returned message: \"DBSubnetGroup '{subnet_group}' not found.\" "
                                  "(Error Code: DBSubnetGroupNotFoundFault)")
        if _bool(p.get("ManageMasterUserPassword")) and p.get("MasterUserPassword"):
            raise ResourceFailure("Resource handler returned message: \"You can't specify MasterUserPassword when "
                                  "ManageMasterUserPassword is turned on.\" (Error Code: InvalidParameterCombination)")
        scaling = p.get("ServerlessV2ScalingConfiguration")
        kwargs = {
            "db_cluster_identifier": identifier, "engine": p["Engine"], "engine_version": p.get("EngineVersion"),
            "engine_mode": p.get("EngineMode"), "master_username": p.get("MasterUsername"),
            "master_user_password": p.get("MasterUserPassword"), "database_name": p.get("DatabaseName"),
            "db_cluster_parameter_group_name": group, "db_subnet_group_name": str(subnet_group).lower() if subnet_group else None,
            "port": int(p["Port"]) if p.get("Port") else None,
            "backup_retention_period": int(p.get("BackupRetentionPeriod", 1)),
            "preferred_backup_window": p.get("PreferredBackupWindow", "01:37-02:07"),
            "preferred_maintenance_window": p.get("PreferredMaintenanceWindow", "wed:02:40-wed:03:10"),
            "storage_encrypted": _bool(p.get("StorageEncrypted")), "kms_key_id": p.get("KmsKeyId"),
            "vpc_security_group_ids": list(p.get("VpcSecurityGroupIds") or []),
            "deletion_protection": _bool(p.get("DeletionProtection")), "copy_tags_to_snapshot": _bool(p.get("CopyTagsToSnapshot")),
            "enable_iam_database_authentication": _bool(p.get("EnableIAMDatabaseAuthentication")),
            "enable_cloudwatch_logs_exports": p.get("EnableCloudwatchLogsExports") or [],
            "enable_http_endpoint": _bool(p.get("EnableHttpEndpoint")),
            "manage_master_user_password": _bool(p.get("ManageMasterUserPassword")),
            "master_user_secret_kms_key_id": (p.get("MasterUserSecret") or {}).get("KmsKeyId"),
            "serverless_v2_scaling_configuration": {"MinCapacity": float(scaling["MinCapacity"]),
                                                    "MaxCapacity": float(scaling["MaxCapacity"])} if scaling else None,
            "tags": p.get("Tags") or [], "availability_zones": p.get("AvailabilityZones"),
            "db_cluster_instance_class": p.get("DBClusterInstanceClass"),
            "storage_type": p.get("StorageType"), "iops": p.get("Iops"),
        }
        cluster = rds.create_db_cluster({k: v for k, v in kwargs.items() if v is not None})
        cluster.status = "available"
        return self._state(cluster, request)

    def _state(self, cluster: Any, request: Request) -> State:
        port = str(cluster.port)
        return State(physical_id=cluster.db_cluster_identifier, handle=cluster, attributes={
            "Endpoint.Address": cluster.endpoint, "Endpoint.Port": port,
            "Endpoint": {"Address": cluster.endpoint, "Port": port},
            "ReadEndpoint.Address": cluster.reader_endpoint, "ReadEndpoint": {"Address": cluster.reader_endpoint},
            "DBClusterArn": cluster.db_cluster_arn, "DBClusterResourceId": cluster.db_cluster_resource_id,
            **_master_user_secret(cluster),
        })

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        cluster = state.handle
        p = request.properties
        cluster.backup_retention_period = int(p.get("BackupRetentionPeriod", 1))
        cluster.deletion_protection = _bool(p.get("DeletionProtection"))
        cluster.preferred_backup_window = p.get("PreferredBackupWindow", cluster.preferred_backup_window)
        cluster.preferred_maintenance_window = p.get("PreferredMaintenanceWindow", cluster.preferred_maintenance_window)
        cluster.vpc_security_group_ids = list(p.get("VpcSecurityGroupIds") or [])
        cluster.enabled_cloudwatch_logs_exports = p.get("EnableCloudwatchLogsExports") or []
        if p.get("EngineVersion"):
            cluster.engine_version = p["EngineVersion"]
        scaling = p.get("ServerlessV2ScalingConfiguration")
        if scaling:
            cluster.serverless_v2_scaling_configuration = {"MinCapacity": float(scaling["MinCapacity"]),
                                                           "MaxCapacity": float(scaling["MaxCapacity"])}
        if p.get("DBClusterParameterGroupName"):
            cluster.parameter_group = p["DBClusterParameterGroupName"]
        cluster.tags = p.get("Tags") or []
        return self._state(cluster, request)

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_db_cluster(state.physical_id)

    def snapshot(self, request: Request, state: State) -> None:
        name = f"{state.physical_id}-final-{''.join(mock_random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(8))}"
        backend(request).delete_db_cluster(state.physical_id, snapshot_name=name)


class InstanceProvider(Provider):
    """A DB instance in moto's RDS, clustered (DBClusterIdentifier) or stand-alone."""

    resource_type = "AWS::RDS::DBInstance"
    support = "created"

    def create(self, request: Request) -> State:
        rds = backend(request)
        p = request.properties
        identifier = str(p.get("DBInstanceIdentifier") or _generated_identifier(request)).lower()
        cluster_id = p.get("DBClusterIdentifier")
        if cluster_id and str(cluster_id).lower() not in rds.clusters:
            raise ResourceFailure(f"Resource handler returned message: \"The source cluster could not be found or cannot "
                                  f"be accessed: {cluster_id}\" (Error Code: DBClusterNotFoundFault)")
        kwargs = {
            "db_instance_identifier": identifier, "db_instance_class": p.get("DBInstanceClass"),
            "engine": p.get("Engine"), "engine_version": p.get("EngineVersion"),
            "db_cluster_identifier": str(cluster_id).lower() if cluster_id else None,
            "auto_minor_version_upgrade": _bool(p.get("AutoMinorVersionUpgrade"), True),
            "publicly_accessible": _bool(p.get("PubliclyAccessible")), "tags": p.get("Tags") or [],
            "monitoring_interval": int(p.get("MonitoringInterval", 0)), "monitoring_role_arn": p.get("MonitoringRoleArn"),
            "enable_performance_insights": _bool(p.get("EnablePerformanceInsights")),
            "performance_insights_kms_key_id": p.get("PerformanceInsightsKMSKeyId"),
            "performance_insights_retention_period": p.get("PerformanceInsightsRetentionPeriod"),
            "availability_zone": p.get("AvailabilityZone"),
            "db_parameter_group_name": p.get("DBParameterGroupName"),
            "ca_certificate_identifier": p.get("CACertificateIdentifier", "rds-ca-default"),
            "deletion_protection": _bool(p.get("DeletionProtection")),
        }
        if cluster_id:
            kwargs["promotion_tier"] = int(p.get("PromotionTier", 1))
        else:
            subnet_group = p.get("DBSubnetGroupName")
            kwargs.update({
                "allocated_storage": int(p["AllocatedStorage"]) if p.get("AllocatedStorage") else None,
                "db_name": p.get("DBName"), "master_username": p.get("MasterUsername"),
                "master_user_password": p.get("MasterUserPassword"),
                "db_subnet_group_name": str(subnet_group).lower() if subnet_group else None,
                "port": int(p["Port"]) if p.get("Port") else None, "multi_az": _bool(p.get("MultiAZ")),
                "storage_encrypted": _bool(p.get("StorageEncrypted")), "kms_key_id": p.get("KmsKeyId"),
                "storage_type": p.get("StorageType"), "iops": p.get("Iops"),
                "backup_retention_period": int(p.get("BackupRetentionPeriod", 1)),
                "vpc_security_group_ids": list(p.get("VpcSecurityGroupIds") or []),
                "copy_tags_to_snapshot": _bool(p.get("CopyTagsToSnapshot")),
            })
        instance = rds.create_db_instance({k: v for k, v in kwargs.items() if v is not None})
        instance.status = "available"
        port = str(instance.port)
        return State(physical_id=instance.db_instance_identifier, handle=instance, attributes={
            "Endpoint.Address": instance.address, "Endpoint.Port": port,
            "Endpoint": {"Address": instance.address, "Port": port},
            "DBInstanceArn": instance.db_instance_arn, "DbiResourceId": instance.dbi_resource_id,
        })

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        instance = state.handle
        p = request.properties
        instance.db_instance_class = p.get("DBInstanceClass", instance.db_instance_class)
        instance.auto_minor_version_upgrade = _bool(p.get("AutoMinorVersionUpgrade"), True)
        instance.tags = p.get("Tags") or []
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_db_instance(state.physical_id, skip_final_snapshot=True)

    def snapshot(self, request: Request, state: State) -> None:
        if state.handle.db_cluster_identifier:
            self.delete(request, state)  # an Aurora instance has no data of its own to snapshot
            return
        name = f"{state.physical_id}-final-{''.join(mock_random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(8))}"
        backend(request).delete_db_instance(state.physical_id, final_db_snapshot_identifier=name)


def apply() -> None:
    register(SubnetGroupProvider("AWS::RDS::DBSubnetGroup"))
    register(ClusterParameterGroupProvider())
    register(ClusterProvider())
    register(InstanceProvider())
