"""Contracts the build (build.py, templates_src) and the deploy tool (deploylib) both rely on,
stated once. Dependency-free on purpose (standard library only, no troposphere): deploy.py and
the emulator import it without the template toolchain.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

# Resource types whose data outlives a deploy: they get DeletionPolicy/UpdateReplacePolicy from
# the environment, the build lists them in the manifest and deploy guards them (stateful guard,
# stack policy, what `destroy` reports as kept).
STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBCluster",
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::SQS::Queue",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
        "AWS::ECR::Repository",
    }
)

# CloudFormation's template size quotas: the build keeps templates that must go inline under the
# TemplateBody one, deploy.py sends larger ones by S3 URL, the emulator refuses what AWS refuses.
TEMPLATE_BODY_LIMIT_BYTES = 51_200
TEMPLATE_URL_LIMIT_BYTES = 1_000_000

# How CloudFormation shows a NoEcho parameter's value (DescribeStacks), and how deploy masks one
# in what it prints or writes (the review, deployed.json).
NO_ECHO_MASK = "****"

# IAM resource types a stack may create only with CAPABILITY_IAM (CAPABILITY_NAMED_IAM when one
# of IAM_NAME_PROPERTIES names it): the build derives each stack's capabilities from them.
IAM_CAPABILITY_TYPES = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::User",
        "AWS::IAM::Group",
        "AWS::IAM::InstanceProfile",
        "AWS::IAM::AccessKey",
        "AWS::IAM::UserToGroupAddition",
    }
)
IAM_NAME_PROPERTIES = ("RoleName", "ManagedPolicyName", "UserName", "GroupName", "InstanceProfileName")
# Resource types whose change changes who may do what: every IAM type, the resource policies the
# platform writes and the KMS key (its key policy). The review lists their changes apart.
PERMISSION_TYPE_PREFIXES = ("AWS::IAM::", "AWS::Lambda::Permission", "AWS::KMS::Key", "AWS::SQS::QueuePolicy",
                            "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy", "AWS::Logs::ResourcePolicy",
                            "AWS::SecretsManager::ResourcePolicy")
# Resource types whose change changes who may reach what over the network.
NETWORK_TYPES = ("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")


def changes_permissions(resource_type: str) -> bool:
    return resource_type.startswith(PERMISSION_TYPE_PREFIXES)


# The deploy-managed lifecycle parameter: `creating` on a stack's first create, `established`
# once that create has succeeded (templates_src.common declares it, deploylib.lifecycle sets it).
# Lambda concurrency of a fresh account (Service Quotas default) and the part Lambda refuses to let
# reservations take: the build keeps every environment's reservations within the difference, and
# preflight checks the real account against the same floor.
LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY = 1000
LAMBDA_MIN_UNRESERVED = 100

LIFECYCLE_PARAMETER = "StackLifecycle"
LIFECYCLE_CREATING = "creating"
LIFECYCLE_ESTABLISHED = "established"


class DependencyCycle(ValueError):
    """The stacks depend on each other in a circle; `cycle` lists it, each depending on the next."""

    def __init__(self, cycle: list[str]):
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


def dependency_order(dependencies: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after the nodes it depends on (ties by name, so the order is deterministic).
    Raises DependencyCycle naming the cycle."""
    sorter = TopologicalSorter({name: sorted(deps) for name, deps in dependencies.items()})
    try:
        sorter.prepare()
    except CycleError as error:
        # graphlib lists each node before the nodes that depend on it; reversed, each depends on the next
        raise DependencyCycle(list(reversed(error.args[1]))) from None
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(ready)
        sorter.done(*ready)
    return ordered
