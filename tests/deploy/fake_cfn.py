"""In-memory CloudFormation: the subset of the boto3 client deploy.py calls.

Same method names, response shapes and error codes/messages as the real service (as far as
they matter to deploy.py). Stack operations progress with the clock: executing a change set
schedules resource events at (start + cumulative latency), and every API call first applies
the events that are due. No background threads, so tests are deterministic.

Scenario knobs live on FakeAws (shared by every region):
- latency[(stack, logical_id)] / stack_latency[stack] / default_latency: seconds per resource;
- failures[stack] = (logical_id, reason): that resource fails on the next operation;
- rollback_fails: stacks whose update rollback ends UPDATE_ROLLBACK_FAILED;
- replacement_properties[type] = {property}: changes forcing replacement;
- throttle_first_n: the first N API calls answer Throttling;
- page_size / resource_page_size: page sizes of DescribeStackEvents / ListStackResources;
- change_set_latency: seconds a change set stays CREATE_IN_PROGRESS;
- named: (resource type, physical name) -> owning stack, or None once a stack let it go (retained):
  the account's named resources. Creating a name that exists fails "already exists"; an IMPORT
  change set adopts an unowned one;
- on_resource_created / on_resource_deleting(region, type, physical id): hooks (S3 buckets live
  in moto; deleting one that is not empty fails like S3 does).

Deletion follows DeletionPolicy: Retain and RetainExceptOnCreate keep the resource on stack
deletion, only Retain keeps it when a failed create rolls back; deletion protection (Aurora
cluster, DynamoDB table, ALB attribute, evaluated with the stack's parameters and conditions)
makes the deletion fail: ROLLBACK_FAILED on a create's rollback, DELETE_FAILED on DeleteStack.

Conservative where AWS only guarantees less: a TemplateURL is read only from a bucket in the
stack's own region (the S3 host names the bucket's region), and TemplateBody is limited to
51,200 bytes as in the real API.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
NO_CHANGES_REASON = ("The submitted information didn't contain changes. "
                     "Submit different information to create a change set.")
DEFAULT_REPLACEMENT_PROPERTIES = {
    "AWS::DynamoDB::Table": {"TableName", "KeySchema"},
    "AWS::S3::Bucket": {"BucketName"},
    "AWS::RDS::DBCluster": {"DBClusterIdentifier", "Engine", "StorageEncrypted", "KmsKeyId"},
    "AWS::SQS::Queue": {"QueueName", "FifoQueue"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
    "AWS::KMS::Key": {"KeySpec"},
    "AWS::EC2::SecurityGroup": {"GroupDescription", "VpcId", "GroupName"},
    "AWS::EC2::VPC": {"CidrBlock"},
}
IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User")
TEMPLATE_BODY_LIMIT = 51_200
_S3_HOST_REGION = re.compile(r"\.s3[.-]([a-z0-9-]+)\.amazonaws\.com$")
_SUB = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.([A-Za-z0-9.]+))?\}")


def evaluate_conditions(template: dict, parameters: dict) -> dict[str, bool]:
    """Fn::Equals / Not / And / Or over parameters, as CloudFormation evaluates Conditions."""
    conditions = template.get("Conditions", {})
    values: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return parameters.get(node["Ref"], node["Ref"])
        if isinstance(node, dict) and set(node) == {"Condition"}:
            return condition(node["Condition"])
        if isinstance(node, dict):
            (key, args), = node.items()
            if key == "Fn::Equals":
                return str(value(args[0])) == str(value(args[1]))
            if key == "Fn::Not":
                return not value(args[0])
            if key == "Fn::And":
                return all(value(arg) for arg in args)
            if key == "Fn::Or":
                return any(value(arg) for arg in args)
        return node

    def condition(name: str) -> bool:
        if name not in values:
            values[name] = bool(value(conditions[name]))
        return values[name]

    for name in conditions:
        condition(name)
    return values


NO_VALUE = object()


def effective(properties: Any, parameters: dict, conditions: dict[str, bool]) -> Any:
    """Properties with parameter Refs, Fn::If and AWS::NoValue resolved (everything else as written)."""
    if isinstance(properties, dict):
        if set(properties) == {"Ref"} and properties["Ref"] == "AWS::NoValue":
            return NO_VALUE
        if set(properties) == {"Ref"} and properties["Ref"] in parameters:
            return parameters[properties["Ref"]]
        if set(properties) == {"Fn::If"}:
            name, when_true, when_false = properties["Fn::If"]
            return effective(when_true if conditions.get(name) else when_false, parameters, conditions)
        resolved = {k: effective(v, parameters, conditions) for k, v in properties.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}
    if isinstance(properties, list):
        return [v for v in (effective(item, parameters, conditions) for item in properties) if v is not NO_VALUE]
    return properties


def deletion_protected(resource_type: str, properties: dict) -> bool:
    """Whether AWS would refuse to delete the resource, by its (effective) properties."""
    if resource_type == "AWS::RDS::DBCluster":
        return str(properties.get("DeletionProtection")).lower() == "true"
    if resource_type == "AWS::DynamoDB::Table":
        return str(properties.get("DeletionProtectionEnabled")).lower() == "true"
    if resource_type == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        attributes = {a.get("Key"): str(a.get("Value")).lower() for a in properties.get("LoadBalancerAttributes", [])}
        return attributes.get("deletion_protection.enabled") == "true"
    return False


PROTECTED_REASON = {
    "AWS::RDS::DBCluster": "Cannot delete protected Cluster, please disable deletion protection and try again.",
    "AWS::DynamoDB::Table": "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Load balancer cannot be deleted because deletion protection is enabled",
}
UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")


def client_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message, "Type": "Sender"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@dataclass
class FakeStack:
    name: str
    stack_id: str
    region: str
    status: str = "REVIEW_IN_PROGRESS"
    status_reason: str = ""
    template: dict = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    resource_status: dict[str, str] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    scheduled: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    termination_protection: bool = False
    policy: str | None = None
    rollback_configuration: dict = field(default_factory=dict)
    created: float = 0.0
    updated: float | None = None
    deleted: bool = False


@dataclass
class FakeChangeSet:
    id: str
    name: str
    stack: FakeStack
    type: str
    template: dict
    parameters: dict[str, str]
    tags: dict[str, str]
    capabilities: list[str]
    rollback_configuration: dict
    ready_at: float
    final_status: str
    reason: str = ""
    changes: list[dict] = field(default_factory=list)
    execution_status: str = "UNAVAILABLE"
    executed: bool = False
    imports: dict = field(default_factory=dict)
    retain_except_on_create: bool = False


VALUE_KEYS = ("Path", "BeforeValue", "AfterValue", "AttributeChangeType")


def property_values(name: str, before: Any, after: Any) -> dict:
    """What DescribeChangeSet adds to a detail's Target with IncludePropertyValues: the path and
    the values as strings (JSON for objects and lists)."""
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    values: dict[str, Any] = {"Path": f"/Properties/{name}",
                              "AttributeChangeType": "Add" if before is None else "Remove" if after is None else "Modify"}
    if before is not None:
        values["BeforeValue"] = text(before)
    if after is not None:
        values["AfterValue"] = text(after)
    return values


def without_values(changes: list[dict]) -> list[dict]:
    """Changes as DescribeChangeSet returns them without IncludePropertyValues."""
    changes = copy.deepcopy(changes)
    for change in changes:
        for detail in change.get("ResourceChange", {}).get("Details", []):
            for key in VALUE_KEYS:
                detail.get("Target", {}).pop(key, None)
    return changes


class FakeAws:
    """The shared world: knobs, clock, S3 reader and one FakeCloudFormation per region."""

    def __init__(self, s3_reader: Callable[[str], bytes] | None = None, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.s3_reader = s3_reader
        self.latency: dict[tuple[str, str], float] = {}
        self.stack_latency: dict[str, float] = {}
        self.default_latency = 0.0
        self.change_set_latency = 0.0
        self.failures: dict[str, tuple[str, str]] = {}
        self.rollback_fails: set[str] = set()
        self.replacement_properties = copy.deepcopy(DEFAULT_REPLACEMENT_PROPERTIES)
        self.throttle_first_n = 0
        self.page_size = 100
        self.resource_page_size = 100
        self.on_resource_created: Callable[[str, str, str], None] | None = None
        self.on_resource_deleting: Callable[[str, str, str], str | None] | None = None
        self.named: dict[tuple[str, str], str | None] = {}
        self.change_set_failures: dict[str, str] = {}  # stack name -> reason its next change set FAILS with
        self.unprotected: set[str] = set()  # physical ids whose deletion protection was turned off by API
        self.calls: list[tuple[str, str, dict]] = []
        self.regions: dict[str, FakeCloudFormation] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def cfn(self, region: str) -> FakeCloudFormation:
        with self.lock:
            if region not in self.regions:
                self.regions[region] = FakeCloudFormation(self, region)
            return self.regions[region]

    def resource_latency(self, stack: str, logical_id: str) -> float:
        return self.latency.get((stack, logical_id), self.stack_latency.get(stack, self.default_latency))

    def calls_of(self, operation: str, stack: str | None = None) -> list[dict]:
        return [kwargs for op, _, kwargs in self.calls
                if op == operation and (stack is None or stack in str(kwargs.get("StackName", ""))
                                        or stack in str(kwargs.get("ChangeSetName", "")))]


class FakeCloudFormation:
    def __init__(self, world: FakeAws, region: str):
        self.world = world
        self.region = region
        self.stacks: list[FakeStack] = []
        self.change_sets: dict[str, FakeChangeSet] = {}

    # ---- plumbing ----------------------------------------------------------------------
    def _enter(self, operation: str, kwargs: dict) -> None:
        self.world.calls.append((operation, self.region, kwargs))
        if self.world.throttle_first_n > 0:
            self.world.throttle_first_n -= 1
            raise client_error(operation, "Throttling", "Rate exceeded")
        self._advance_all()

    def _advance_all(self) -> None:
        now = self.world.clock()
        for stack in self.stacks:
            while stack.scheduled and stack.scheduled[0][0] <= now:
                _, action = stack.scheduled.pop(0)
                action()

    def _now(self) -> float:
        return self.world.clock()

    def _find(self, operation: str, name_or_id: str, include_deleted: bool = False) -> FakeStack:
        for stack in reversed(self.stacks):
            if stack.stack_id == name_or_id:
                return stack
        for stack in reversed(self.stacks):
            if stack.name == name_or_id and not stack.deleted:
                return stack
        raise client_error(operation, "ValidationError", f"Stack with id {name_or_id} does not exist")

    def _event(self, stack: FakeStack, logical_id: str, resource_type: str, status: str, reason: str = "") -> None:
        event = {
            "StackId": stack.stack_id, "EventId": f"{logical_id}-{status}-{self.world.next_id()}",
            "StackName": stack.name, "LogicalResourceId": logical_id,
            "PhysicalResourceId": stack.physical_ids.get(logical_id, stack.stack_id if logical_id == stack.name else ""),
            "ResourceType": resource_type, "Timestamp": self._now(), "ResourceStatus": status,
        }
        if reason:
            event["ResourceStatusReason"] = reason
        stack.events.append(event)
        if logical_id != stack.name:
            stack.resource_status[logical_id] = status

    def _stack_event(self, stack: FakeStack, status: str, reason: str = "") -> None:
        stack.status = status
        stack.status_reason = reason
        self._event(stack, stack.name, "AWS::CloudFormation::Stack", status, reason)

    # ---- template evaluation --------------------------------------------------------------
    def _exports(self) -> dict[str, tuple[FakeStack, str]]:
        found = {}
        for stack in self.stacks:
            if stack.deleted or stack.status in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE", "CREATE_IN_PROGRESS",
                                                 "ROLLBACK_IN_PROGRESS", "DELETE_COMPLETE", "ROLLBACK_FAILED"):
                continue
            for output in stack.template.get("Outputs", {}).values():
                if "Export" in output:
                    name = self._resolve(stack, output["Export"]["Name"], stack.parameters, stack.physical_ids)
                    value = self._resolve(stack, output["Value"], stack.parameters, stack.physical_ids)
                    found[name] = (stack, value)
        return found

    def _resolve(self, stack: FakeStack, expression: Any, parameters: dict, physical: dict) -> str:
        def ref(name: str, attribute: str | None = None) -> str:
            if name == "AWS::StackName":
                return stack.name
            if name == "AWS::Region":
                return self.region
            if name == "AWS::AccountId":
                return ACCOUNT
            if name == "AWS::Partition":
                return "aws"
            if attribute:
                return f"arn:aws:fake:{self.region}:{ACCOUNT}:{physical.get(name, name)}/{attribute}"
            if name in parameters:
                return parameters[name]
            return physical.get(name, name)

        if isinstance(expression, str):
            return expression
        if isinstance(expression, dict):
            (key, value), = expression.items()
            if key == "Ref":
                return ref(value)
            if key == "Fn::GetAtt":
                name, attribute = value if isinstance(value, list) else value.split(".", 1)
                return ref(name, attribute)
            if key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                return _SUB.sub(lambda m: self._resolve(stack, variables[m.group(1)], parameters, physical)
                                if m.group(1) in variables else ref(m.group(1), m.group(2)), text)
            if key == "Fn::Join":
                return value[0].join(self._resolve(stack, part, parameters, physical) for part in value[1])
            if key == "Fn::ImportValue":
                name = self._resolve(stack, value, parameters, physical)
                exported = self._exports().get(name)
                return exported[1] if exported else ""
        return json.dumps(expression, sort_keys=True)

    def _imported_names(self, stack: FakeStack, template: dict | None = None, parameters: dict | None = None) -> set[str]:
        names = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "Fn::ImportValue":
                        names.add(self._resolve(stack, value, parameters or stack.parameters, {}))
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(template if template is not None else stack.template)
        return names

    def _importers(self, export_name: str) -> list[str]:
        return sorted(s.name for s in self.stacks
                      if not s.deleted and s.status not in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE")
                      and export_name in self._imported_names(s))

    def _compute_changes(self, stack: FakeStack, template: dict, parameters: dict, tags: dict, is_create: bool) -> list[dict]:
        old = {} if is_create else stack.template.get("Resources", {})
        new = template.get("Resources", {})
        changes = []
        for logical_id, body in new.items():
            resource_type = body["Type"]
            base = {"LogicalResourceId": logical_id, "ResourceType": resource_type, "Scope": [], "Details": []}
            if logical_id not in old:
                changes.append({"Type": "Resource", "ResourceChange": {**base, "Action": "Add"}})
                continue
            before = effective(old[logical_id].get("Properties", {}), stack.parameters,
                               evaluate_conditions(stack.template, stack.parameters))
            after = effective(body.get("Properties", {}), parameters, evaluate_conditions(template, parameters))
            details, replace = [], old[logical_id]["Type"] != resource_type
            for prop in sorted(set(before) | set(after)):
                if before.get(prop) != after.get(prop):
                    forces = prop in self.world.replacement_properties.get(resource_type, set())
                    replace = replace or forces
                    details.append({"Target": {"Attribute": "Properties", "Name": prop,
                                               "RequiresRecreation": "Always" if forces else "Never",
                                               **property_values(prop, before.get(prop), after.get(prop))},
                                    "Evaluation": "Static", "ChangeSource": "DirectModification"})
            if tags != stack.tags:
                details.append({"Target": {"Attribute": "Tags", "RequiresRecreation": "Never"},
                                "Evaluation": "Static", "ChangeSource": "DirectModification"})
            if details or replace:
                changes.append({"Type": "Resource", "ResourceChange": {
                    **base, "Action": "Modify", "Replacement": "True" if replace else "False",
                    "PhysicalResourceId": stack.physical_ids.get(logical_id, ""),
                    "Scope": sorted({d["Target"]["Attribute"] for d in details}), "Details": details}})
        for logical_id, body in old.items():
            if logical_id not in new:
                changes.append({"Type": "Resource", "ResourceChange": {
                    "Action": "Remove", "LogicalResourceId": logical_id, "ResourceType": body["Type"],
                    "PhysicalResourceId": stack.physical_ids.get(logical_id, ""), "Scope": [], "Details": []}})
        return changes

    @staticmethod
    def _required_capabilities(template: dict) -> list[str]:
        """What CreateChangeSet insists on: AUTO_EXPAND for a Transform (Secrets Manager's
        hosted rotation also expands into an IAM role, hence IAM), NAMED_IAM for named IAM
        resources (it covers IAM), IAM for other IAM resources."""
        needed: set[str] = set()
        transforms = template.get("Transform", [])
        transforms = [transforms] if isinstance(transforms, str) else list(transforms)
        if transforms:
            needed.add("CAPABILITY_AUTO_EXPAND")
        if any(str(t).startswith("AWS::SecretsManager") for t in transforms):
            needed.add("CAPABILITY_IAM")
        for body in template.get("Resources", {}).values():
            if body["Type"] in IAM_TYPES:
                props = body.get("Properties", {})
                if any(k in props for k in ("RoleName", "PolicyName", "ManagedPolicyName", "UserName")) and body["Type"] != "AWS::IAM::Policy":
                    needed.add("CAPABILITY_NAMED_IAM")
                else:
                    needed.add("CAPABILITY_IAM")
        return sorted(needed)

    def _template_from(self, op: str, kwargs: dict) -> str:
        if "TemplateBody" in kwargs:
            body = kwargs["TemplateBody"]
            if len(body.encode()) > TEMPLATE_BODY_LIMIT:
                raise client_error(op, "ValidationError", (
                    "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {TEMPLATE_BODY_LIMIT}"))
            return body
        if "TemplateURL" in kwargs:
            url = kwargs["TemplateURL"]
            host_region = _S3_HOST_REGION.search(urlparse(url).hostname or "")
            if host_region and host_region.group(1) != self.region:
                raise client_error(op, "ValidationError",
                                   "TemplateURL must reference a valid S3 object to which you have access.")
            try:
                return self.world.s3_reader(url).decode()
            except Exception:
                raise client_error(op, "ValidationError", "S3 error: Access Denied") from None
        raise client_error(op, "ValidationError", "Either Template URL or Template Body must be specified.")

    # ---- change sets ----------------------------------------------------------------------------
    def create_change_set(self, **kwargs: Any) -> dict:  # noqa: C901 the fake mirrors CloudFormation's branching; kept whole to stay readable against the API
        op = "CreateChangeSet"
        with self.world.lock:
            self._enter("create_change_set", kwargs)
            name, change_set_name = kwargs["StackName"], kwargs["ChangeSetName"]
            change_set_type = kwargs.get("ChangeSetType", "UPDATE")
            if not re.fullmatch(r"[a-zA-Z][-a-zA-Z0-9]{0,127}", change_set_name):
                raise client_error(op, "ValidationError", f"1 validation error detected: Value '{change_set_name}' at 'changeSetName' failed to satisfy constraint")
            try:
                stack = self._find(op, name)
            except ClientError:
                stack = None
            if kwargs.get("UsePreviousTemplate"):
                if not stack or not stack.template:
                    raise client_error(op, "ValidationError", "UsePreviousTemplate is only valid for an existing stack")
                template = copy.deepcopy(stack.template)
            else:
                template = json.loads(self._template_from(op, kwargs))
            if change_set_type == "IMPORT":
                return self._create_import_change_set(op, kwargs, stack, template)
            capabilities = kwargs.get("Capabilities", [])
            granted = set(capabilities) | ({"CAPABILITY_IAM"} if "CAPABILITY_NAMED_IAM" in capabilities else set())
            missing_capabilities = [c for c in self._required_capabilities(template) if c not in granted]
            if missing_capabilities:  # refused before any stack exists
                raise client_error(op, "InsufficientCapabilitiesException",
                                   f"Requires capabilities : [{', '.join(missing_capabilities)}]")
            if change_set_type == "CREATE":
                if stack and stack.status != "REVIEW_IN_PROGRESS":
                    raise client_error(op, "AlreadyExistsException", f"Stack [{name}] already exists and cannot be created again with the changeSet [{change_set_name}].")
                if not stack:
                    stack = FakeStack(name, f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{name}/{self.world.next_id():08d}",
                                      self.region, created=self._now(),
                                      tags={t["Key"]: t["Value"] for t in kwargs.get("Tags", [])})
                    self.stacks.append(stack)
            else:
                if not stack:
                    raise client_error(op, "ValidationError", f"Stack [{name}] does not exist")
                if stack.status not in UPDATABLE:
                    raise client_error(op, "ValidationError", f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
            parameters = self._parameters(op, kwargs, stack)
            declared = template.get("Parameters", {})
            for key, spec in declared.items():
                if key not in parameters:
                    if "Default" not in spec:
                        raise client_error(op, "ValidationError", f"Parameters: [{key}] must have values")
                    parameters[key] = str(spec["Default"])
            tags = {t["Key"]: t["Value"] for t in kwargs.get("Tags", [])}
            change_set_id = f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:changeSet/{change_set_name}/{self.world.next_id():08d}"
            change_set = FakeChangeSet(change_set_id, change_set_name, stack, change_set_type, template, parameters,
                                       tags, capabilities, kwargs.get("RollbackConfiguration", {}),
                                       ready_at=self._now() + self.world.change_set_latency, final_status="CREATE_COMPLETE")
            missing = sorted(n for n in self._imported_names(stack, template, parameters) if n not in self._exports())
            if name in self.world.change_set_failures:
                change_set.final_status, change_set.reason = "FAILED", self.world.change_set_failures.pop(name)
            elif missing:
                change_set.final_status, change_set.reason = "FAILED", f"No export named {missing[0]} found."
            else:
                change_set.changes = self._compute_changes(stack, template, parameters, tags, change_set_type == "CREATE")
                same_outputs = template.get("Outputs") == stack.template.get("Outputs")
                if not change_set.changes and change_set_type == "UPDATE" and parameters == stack.parameters \
                        and same_outputs:
                    change_set.final_status, change_set.reason = "FAILED", NO_CHANGES_REASON
            self.change_sets[change_set_id] = change_set
            return {"Id": change_set_id, "StackId": stack.stack_id}

    @staticmethod
    def _parameters(op: str, kwargs: dict, stack: FakeStack | None) -> dict[str, str]:
        parameters = {}
        for parameter in kwargs.get("Parameters", []):
            key = parameter["ParameterKey"]
            if parameter.get("UsePreviousValue"):
                if not stack or key not in stack.parameters:
                    raise client_error(op, "ValidationError", f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template")
                parameters[key] = stack.parameters[key]
            else:
                parameters[key] = parameter["ParameterValue"]
        return parameters

    def _create_import_change_set(self, op: str, kwargs: dict, stack: FakeStack | None, template: dict) -> dict:
        """IMPORT: the template holds the existing stack's resources plus exactly the imported
        ones, each with a DeletionPolicy; each must exist and belong to no stack."""
        to_import = {item["LogicalResourceId"]: item for item in kwargs.get("ResourcesToImport", [])}
        existing = set(stack.template.get("Resources", {})) if stack and stack.template else set()
        resources = template.get("Resources", {})
        if set(resources) != existing | set(to_import):
            raise client_error(op, "ValidationError", "As part of the import operation, you cannot modify or add "
                                                      "[Outputs] or resources other than those being imported")
        for logical_id, item in to_import.items():
            if "DeletionPolicy" not in resources[logical_id]:
                raise client_error(op, "ValidationError", f"Resources to import must have a DeletionPolicy: {logical_id}")
            name = str(next(iter(item["ResourceIdentifier"].values()))).rstrip("/").rsplit("/", 1)[-1]
            key = (item["ResourceType"], name)
            if key not in self.world.named or self.world.named[key] is not None:
                raise client_error(op, "ValidationError", f"Resource {name} of type {item['ResourceType']} "
                                                          "does not exist or already belongs to a stack")
        if stack is None:
            stack = FakeStack(kwargs["StackName"], f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/"
                                                   f"{kwargs['StackName']}/{self.world.next_id():08d}", self.region,
                              created=self._now())
            self.stacks.append(stack)
        parameters = self._parameters(op, kwargs, stack)
        for key, spec in template.get("Parameters", {}).items():
            parameters.setdefault(key, str(spec.get("Default", "")))
        change_set_id = f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:changeSet/{kwargs['ChangeSetName']}/{self.world.next_id():08d}"
        change_set = FakeChangeSet(change_set_id, kwargs["ChangeSetName"], stack, "IMPORT", template, parameters,
                                   {t["Key"]: t["Value"] for t in kwargs.get("Tags", [])}, kwargs.get("Capabilities", []),
                                   {}, ready_at=self._now(), final_status="CREATE_COMPLETE")
        change_set.changes = [{"Type": "Resource", "ResourceChange": {
            "Action": "Import", "LogicalResourceId": logical_id, "ResourceType": item["ResourceType"],
            "PhysicalResourceId": str(next(iter(item["ResourceIdentifier"].values()))), "Scope": [], "Details": []}}
            for logical_id, item in sorted(to_import.items())]
        change_set.imports = to_import
        self.change_sets[change_set_id] = change_set
        return {"Id": change_set_id, "StackId": stack.stack_id}

    def _change_set(self, op: str, name: str, stack_name: str | None = None) -> FakeChangeSet:
        if name in self.change_sets:
            return self.change_sets[name]
        for change_set in self.change_sets.values():
            if change_set.name == name and stack_name in (change_set.stack.name, change_set.stack.stack_id):
                return change_set
        raise client_error(op, "ChangeSetNotFound", f"ChangeSet [{name}] does not exist")

    def _change_set_status(self, change_set: FakeChangeSet) -> str:
        if self._now() < change_set.ready_at:
            return "CREATE_IN_PROGRESS"
        if change_set.final_status == "CREATE_COMPLETE" and change_set.execution_status == "UNAVAILABLE" and not change_set.executed:
            change_set.execution_status = "AVAILABLE"
        return change_set.final_status

    def describe_change_set(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("describe_change_set", kwargs)
            change_set = self._change_set("DescribeChangeSet", kwargs["ChangeSetName"], kwargs.get("StackName"))
            status = self._change_set_status(change_set)
            start = int(kwargs.get("NextToken", 0))
            page = change_set.changes[start:start + self.world.page_size]
            no_echo = {k for k, v in change_set.template.get("Parameters", {}).items() if v.get("NoEcho")}
            response = {
                "ChangeSetId": change_set.id, "ChangeSetName": change_set.name, "StackId": change_set.stack.stack_id,
                "StackName": change_set.stack.name, "Status": status, "ExecutionStatus": change_set.execution_status,
                "Changes": copy.deepcopy(page) if kwargs.get("IncludePropertyValues") else without_values(page), "Capabilities": change_set.capabilities,
                "Parameters": [{"ParameterKey": k, "ParameterValue": "****" if k in no_echo else v}
                               for k, v in sorted(change_set.parameters.items())],
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(change_set.tags.items())],
                "RollbackConfiguration": change_set.rollback_configuration,
            }
            if change_set.reason and status == "FAILED":
                response["StatusReason"] = change_set.reason
            if start + self.world.page_size < len(change_set.changes):
                response["NextToken"] = str(start + self.world.page_size)
            return response

    def list_change_sets(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("list_change_sets", kwargs)
            stack = self._find("ListChangeSets", kwargs["StackName"])
            summaries = []
            for change_set in self.change_sets.values():
                if change_set.stack is stack:
                    summaries.append({"ChangeSetId": change_set.id, "ChangeSetName": change_set.name,
                                      "StackId": stack.stack_id, "StackName": stack.name,
                                      "Status": self._change_set_status(change_set),
                                      "ExecutionStatus": change_set.execution_status})
            return {"Summaries": summaries}

    def delete_change_set(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("delete_change_set", kwargs)
            change_set = self._change_set("DeleteChangeSet", kwargs["ChangeSetName"], kwargs.get("StackName"))
            del self.change_sets[change_set.id]
            return {}

    def execute_change_set(self, **kwargs: Any) -> dict:
        op = "ExecuteChangeSet"
        with self.world.lock:
            self._enter("execute_change_set", kwargs)
            change_set = self._change_set(op, kwargs["ChangeSetName"], kwargs.get("StackName"))
            self._change_set_status(change_set)
            if kwargs.get("RetainExceptOnCreate") is not None:
                change_set.retain_except_on_create = bool(kwargs["RetainExceptOnCreate"])
            if change_set.execution_status != "AVAILABLE":
                raise client_error(op, "InvalidChangeSetStatus", f"ChangeSet [{change_set.id}] cannot be executed in its current execution status of [{change_set.execution_status}]")
            change_set.executed = True
            change_set.execution_status = "EXECUTE_IN_PROGRESS"
            for other in self.change_sets.values():
                if other.stack is change_set.stack and other is not change_set:
                    other.execution_status = "OBSOLETE"
            self._schedule_operation(change_set)
            return {}

    # ---- stack operations ------------------------------------------------------------------------
    def _policy_denies(self, stack: FakeStack, logical_id: str, action: str) -> bool:
        if not stack.policy:
            return False
        for statement in json.loads(stack.policy).get("Statement", []):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if statement.get("Effect") == "Deny" and action in actions and (
                    f"LogicalResourceId/{logical_id}" in resources or "*" in resources):
                return True
        return False

    def _export_conflict(self, stack: FakeStack, template: dict, parameters: dict, physical: dict) -> str | None:
        new_exports = {}
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                new_exports[self._resolve(stack, output["Export"]["Name"], parameters, physical)] = \
                    self._resolve(stack, output["Value"], parameters, physical)
        for name, (owner, value) in self._exports().items():
            if owner is not stack:
                continue
            users = [u for u in self._importers(name) if u != stack.name]
            if not users:
                continue
            if name not in new_exports:
                return f"Cannot delete export {name} as it is in use by {users[0]}."
            if new_exports[name] != value:
                return f"Export {name} cannot be updated as it is in use by {users[0]}"
        return None

    def _schedule_import(self, change_set: FakeChangeSet) -> None:
        stack, t = change_set.stack, self._now()
        steps = [(t, lambda: self._stack_event(stack, "IMPORT_IN_PROGRESS", "User Initiated"))]
        for logical_id, item in sorted(change_set.imports.items()):
            name = str(next(iter(item["ResourceIdentifier"].values()))).rstrip("/").rsplit("/", 1)[-1]
            self.world.named[(item["ResourceType"], name)] = stack.name
            stack.physical_ids[logical_id] = name
            steps.append((t, lambda lid=logical_id, r=item["ResourceType"]: self._event(stack, lid, r, "IMPORT_COMPLETE")))

        def finish() -> None:
            stack.template, stack.parameters, stack.tags = change_set.template, change_set.parameters, change_set.tags
            change_set.execution_status = "EXECUTE_COMPLETE"
            self._stack_event(stack, "IMPORT_COMPLETE")
        steps.append((t, finish))
        stack.status = "IMPORT_IN_PROGRESS"
        stack.scheduled.extend(steps)

    def _named(self, resource_type: str, properties: dict, stack: FakeStack, parameters: dict) -> tuple[str, str] | None:
        """The registry key of a resource with a name of its own, else None."""
        prop = self.NAMED_TYPES.get(resource_type)
        if not prop or prop not in properties:
            return None
        return resource_type, self._resolve(stack, properties[prop], parameters, {})

    def _schedule_operation(self, change_set: FakeChangeSet) -> None:  # noqa: C901 the fake mirrors CloudFormation's branching; kept whole to stay readable against the API
        if change_set.type == "IMPORT":
            return self._schedule_import(change_set)
        stack = change_set.stack
        creating = change_set.type == "CREATE"
        prefix = "CREATE" if creating else "UPDATE"
        rollback_prefix = "ROLLBACK" if creating else "UPDATE_ROLLBACK"
        failure = self.world.failures.get(stack.name)
        new_physical = dict(stack.physical_ids)
        t = self._now()
        steps: list[tuple[float, Callable[[], None]]] = []

        def at(when: float, action: Callable[[], None]) -> None:
            steps.append((when, action))

        at(t, lambda: self._stack_event(stack, f"{prefix}_IN_PROGRESS", "User Initiated"))
        touched: list[tuple[str, str]] = []
        failed_reason = None
        failed_index = len(change_set.changes)
        for index, wrapper in enumerate(change_set.changes):
            change = wrapper["ResourceChange"]
            logical_id, resource_type, action = change["LogicalResourceId"], change["ResourceType"], change["Action"]
            if action == "Remove":
                continue
            verb = "CREATE" if action == "Add" or change.get("Replacement") == "True" else "UPDATE"
            start_reason = ("Requested update requires the creation of a new physical resource; hence creating one."
                            if action == "Modify" and change.get("Replacement") == "True" else "")
            if action == "Modify" and change.get("Replacement") == "True" and self._policy_denies(stack, logical_id, "Update:Replace"):
                failed_reason = (logical_id, resource_type, "UPDATE_FAILED",
                                 f"Action denied by stack policy: Statement [#1] on resource [LogicalResourceId/{logical_id}] denies [Update:Replace]")
                at(t, lambda f=failed_reason: self._event(stack, *f[:3], f[3]))
                failed_index = index
                break
            at(t, lambda lid=logical_id, r=resource_type, v=verb, s=start_reason: self._event(stack, lid, r, f"{v}_IN_PROGRESS", s))
            t += self.world.resource_latency(stack.name, logical_id)
            named = None
            if action == "Add" or change.get("Replacement") == "True":
                properties = change_set.template["Resources"][logical_id].get("Properties", {})
                physical = self._physical_id(stack, logical_id, properties, change_set.parameters)
                named = self._named(resource_type, properties, stack, change_set.parameters)
                if named in self.world.named:
                    failure = (logical_id, f"{physical} already exists")
            if failure and failure[0] == logical_id:
                failed_reason = (logical_id, resource_type, f"{verb}_FAILED", failure[1])
                at(t, lambda f=failed_reason: self._event(stack, *f[:3], f[3]))
                failed_index = index
                break
            if named:
                self.world.named[named] = stack.name
            if action == "Add" or change.get("Replacement") == "True":
                new_physical[logical_id] = physical
            at(t, lambda lid=logical_id, r=resource_type, v=verb: self._created(stack, lid, r, v))
            touched.append((logical_id, resource_type))
        if not failed_reason and not creating:
            conflict = self._export_conflict(stack, change_set.template, change_set.parameters, new_physical)
            if conflict:
                failed_reason = (stack.name, "AWS::CloudFormation::Stack", "UPDATE_FAILED", conflict)
        if failed_reason:
            if failed_reason[0] != stack.name:
                for wrapper in change_set.changes[failed_index + 1:]:
                    change = wrapper["ResourceChange"]
                    if change["Action"] == "Add":
                        at(t, lambda c=change: self._event(stack, c["LogicalResourceId"], c["ResourceType"],
                                                           "CREATE_FAILED", "Resource creation cancelled"))
                        break
            at(t, lambda: self._stack_event(stack, f"{rollback_prefix}_IN_PROGRESS",
                                            f"The following resource(s) failed to {'create' if creating else 'update'}: [{failed_reason[0]}]. Rollback requested by user."))
            stuck = []
            conditions = evaluate_conditions(change_set.template, change_set.parameters)
            for logical_id, resource_type in reversed(touched):
                t += self.world.resource_latency(stack.name, logical_id) / 2
                if creating:
                    body = change_set.template["Resources"][logical_id]
                    outcome = self._rollback_delete(stack, logical_id, body, change_set.parameters, conditions,
                                                    new_physical.get(logical_id, ""), change_set.retain_except_on_create)
                    if outcome[0] == "DELETE_FAILED":
                        stuck.append(logical_id)
                    at(t, lambda lid=logical_id, r=resource_type, o=outcome: self._event(stack, lid, r, *o))
                else:
                    at(t, lambda lid=logical_id, r=resource_type: self._event(stack, lid, r, "UPDATE_COMPLETE"))
            if stuck:
                at(t, lambda: self._stack_event(stack, "ROLLBACK_FAILED", f"The following resource(s) failed to delete: [{', '.join(stuck)}]. "))
            elif not creating and stack.name in self.world.rollback_fails:
                at(t, lambda: self._event(stack, failed_reason[0], failed_reason[1], "UPDATE_FAILED", "Resource could not be rolled back"))
                at(t, lambda: self._stack_event(stack, "UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update"))
            else:
                at(t, lambda: self._stack_event(stack, f"{rollback_prefix}_COMPLETE"))

            def finish_failed() -> None:
                change_set.execution_status = "EXECUTE_FAILED"
                if creating:
                    stack.template, stack.parameters, stack.tags = change_set.template, change_set.parameters, change_set.tags
            at(t, finish_failed)
        else:
            removed = [c["ResourceChange"] for c in change_set.changes if c["ResourceChange"]["Action"] == "Remove"]
            if removed:
                at(t, lambda: self._stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"))
                for change in removed:
                    at(t, lambda c=change: self._event(stack, c["LogicalResourceId"], c["ResourceType"], "DELETE_IN_PROGRESS"))
                    t += self.world.resource_latency(stack.name, change["LogicalResourceId"]) / 2
                    at(t, lambda c=change: self._event(stack, c["LogicalResourceId"], c["ResourceType"], "DELETE_COMPLETE"))

            def finish_ok() -> None:
                stack.template, stack.parameters, stack.tags = change_set.template, change_set.parameters, change_set.tags
                stack.physical_ids = {k: v for k, v in new_physical.items() if k in change_set.template.get("Resources", {})}
                stack.rollback_configuration = change_set.rollback_configuration
                stack.updated = None if creating else self._now()
                change_set.execution_status = "EXECUTE_COMPLETE"
                self._stack_event(stack, f"{prefix}_COMPLETE")
            at(t, finish_ok)
        stack.status = f"{prefix}_IN_PROGRESS"
        stack.physical_ids.update({k: v for k, v in new_physical.items() if k not in stack.physical_ids})
        stack.scheduled.extend(steps)
        stack.scheduled.sort(key=lambda step: step[0])

    def _rollback_delete(self, stack: FakeStack, logical_id: str, body: dict, parameters: dict,
                         conditions: dict, physical: str, retain_except_on_create: bool = False) -> tuple[str, str]:
        """How the rollback of a failed create treats one created resource: only Retain keeps it
        (RetainExceptOnCreate exists for exactly this), deletion protection makes it fail."""
        properties = effective(body.get("Properties", {}), parameters, conditions)
        named = self._named(body["Type"], body.get("Properties", {}), stack, parameters)
        if body.get("DeletionPolicy") == "Retain" and not retain_except_on_create:
            if named:
                self.world.named[named] = None
            return ("DELETE_SKIPPED", "")
        if deletion_protected(body["Type"], properties) and physical not in self.world.unprotected:
            return ("DELETE_FAILED", PROTECTED_REASON[body["Type"]])
        if named:
            self.world.named.pop(named, None)
        if self.world.on_resource_deleting:
            self.world.on_resource_deleting(self.region, body["Type"], physical)
        return ("DELETE_COMPLETE", "")

    NAME_PROPERTIES = ("BucketName", "TableName", "QueueName", "TopicName", "LogGroupName", "RoleName",
                       "RepositoryName", "DBClusterIdentifier")
    # Types whose name is unique in the account and region, by the property that names them.
    NAMED_TYPES = {
        "AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName",
        "AWS::Logs::LogGroup": "LogGroupName", "AWS::SecretsManager::Secret": "Name",
        "AWS::ECR::Repository": "RepositoryName", "AWS::RDS::DBCluster": "DBClusterIdentifier",
        "AWS::SNS::Topic": "TopicName", "AWS::IAM::Role": "RoleName",
    }

    def _physical_id(self, stack: FakeStack, logical_id: str, properties: dict, parameters: dict) -> str:
        for name_property in self.NAME_PROPERTIES:
            if name_property in properties:
                return self._resolve(stack, properties[name_property], parameters, {})
        return f"{stack.name}-{logical_id}-{self.world.next_id()}"

    def _created(self, stack: FakeStack, logical_id: str, resource_type: str, verb: str) -> None:
        self._event(stack, logical_id, resource_type, f"{verb}_COMPLETE")
        if verb == "CREATE" and self.world.on_resource_created:
            self.world.on_resource_created(self.region, resource_type, stack.physical_ids.get(logical_id, ""))

    def delete_stack(self, **kwargs: Any) -> dict:
        op = "DeleteStack"
        with self.world.lock:
            self._enter("delete_stack", kwargs)
            try:
                stack = self._find(op, kwargs["StackName"])
            except ClientError:
                return {}  # deleting a stack that does not exist succeeds silently
            if stack.deleted:
                return {}
            retain = set(kwargs.get("RetainResources", []))
            force = kwargs.get("DeletionMode") == "FORCE_DELETE_STACK"
            if (retain or force) and stack.status != "DELETE_FAILED":
                what = "RetainResources" if retain else "DeletionMode FORCE_DELETE_STACK"
                raise client_error(op, "ValidationError", f"Invalid operation on stack [{stack.stack_id}]: {what} can only be "
                                                          "specified when the stack is in the DELETE_FAILED state")
            if stack.termination_protection:
                raise client_error(op, "ValidationError", f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled")
            t = self._now()
            steps = [(t, lambda: self._stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated"))]
            for name, (owner, _) in self._exports().items():
                users = [u for u in self._importers(name) if u != stack.name] if owner is stack else []
                if users:
                    steps.append((t, lambda n=name, u=users: self._stack_event(
                        stack, "DELETE_FAILED", f"Export {n} cannot be deleted as it is in use by {u[0]}")))
                    stack.scheduled.extend(steps)
                    stack.status = "DELETE_IN_PROGRESS"
                    return {}
            failed: list[str] = []
            conditions = evaluate_conditions(stack.template, stack.parameters)
            # A stack whose create never completed (its rollback failed): the operation that
            # created its resources is the one being undone, so RetainExceptOnCreate deletes.
            never_created = stack.status == "ROLLBACK_FAILED"
            for logical_id, body in reversed(list(stack.template.get("Resources", {}).items())):
                if logical_id not in stack.physical_ids or stack.resource_status.get(logical_id) == "DELETE_COMPLETE":
                    continue
                t += self.world.resource_latency(stack.name, logical_id) / 2
                steps.append((t, lambda lid=logical_id, b=body: self._delete_resource(
                    stack, lid, b, conditions, lid in retain or force, failed, never_created)))

            def finish() -> None:
                if failed:
                    self._stack_event(stack, "DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(failed)}]. ")
                    return
                self._stack_event(stack, "DELETE_COMPLETE")
                stack.deleted = True
            steps.append((t, finish))
            stack.status = "DELETE_IN_PROGRESS"
            stack.scheduled.extend(steps)
            return {}

    def _delete_resource(self, stack: FakeStack, logical_id: str, body: dict, conditions: dict, keep: bool,
                         failed: list[str], never_created: bool = False) -> None:
        """One resource of a stack deletion, when its turn comes: kept by its policy (or by
        RetainResources / force), refused by deletion protection or by its service, or deleted."""
        resource_type, physical = body["Type"], stack.physical_ids[logical_id]
        named = self._named(resource_type, body.get("Properties", {}), stack, stack.parameters)
        properties = effective(body.get("Properties", {}), stack.parameters, conditions)
        retaining = ("Retain",) if never_created else ("Retain", "RetainExceptOnCreate")
        if keep or body.get("DeletionPolicy") in retaining:
            if named:
                self.world.named[named] = None
            self._event(stack, logical_id, resource_type, "DELETE_SKIPPED")
            return
        protected = deletion_protected(resource_type, properties) and physical not in self.world.unprotected
        reason = PROTECTED_REASON[resource_type] if protected else None
        if reason is None and self.world.on_resource_deleting:
            reason = self.world.on_resource_deleting(self.region, resource_type, physical)
        if reason:
            failed.append(logical_id)
            self._event(stack, logical_id, resource_type, "DELETE_FAILED", reason)
            return
        if named:
            self.world.named.pop(named, None)
        self._event(stack, logical_id, resource_type, "DELETE_COMPLETE")

    def continue_update_rollback(self, **kwargs: Any) -> dict:
        op = "ContinueUpdateRollback"
        with self.world.lock:
            self._enter("continue_update_rollback", kwargs)
            stack = self._find(op, kwargs["StackName"])
            if stack.status != "UPDATE_ROLLBACK_FAILED":
                raise client_error(op, "ValidationError", f"Stack {stack.stack_id} is in {stack.status} state and can not "
                                                          "continue update rollback")
            failing = {k for k, v in stack.resource_status.items() if v == "UPDATE_FAILED"}
            skipped = set(kwargs.get("ResourcesToSkip", []))
            t = self._now()
            steps = [(t, lambda: self._stack_event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated"))]
            if failing - skipped and stack.name in self.world.rollback_fails:
                steps.append((t, lambda: self._stack_event(stack, "UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update")))
            else:
                for logical_id in sorted(failing & skipped):
                    steps.append((t, lambda lid=logical_id: self._event(
                        stack, lid, stack.template["Resources"].get(lid, {}).get("Type", "AWS::CloudFormation::Stack"),
                        "UPDATE_COMPLETE", "Resource skipped during UpdateRollback")))
                steps.append((t, lambda: self._stack_event(stack, "UPDATE_ROLLBACK_COMPLETE")))
            stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
            stack.scheduled.extend(steps)
            return {}

    # ---- reads ----------------------------------------------------------------------------------
    def describe_stacks(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("describe_stacks", kwargs)
            stack = self._find("DescribeStacks", kwargs["StackName"])
            no_echo = {k for k, v in stack.template.get("Parameters", {}).items() if v.get("NoEcho")}
            description = {
                "StackId": stack.stack_id, "StackName": stack.name, "StackStatus": stack.status,
                "CreationTime": stack.created, "EnableTerminationProtection": stack.termination_protection,
                "Parameters": [{"ParameterKey": k, "ParameterValue": "****" if k in no_echo else v}
                               for k, v in sorted(stack.parameters.items())],
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(stack.tags.items())],
                "RollbackConfiguration": stack.rollback_configuration,
            }
            if stack.status_reason:
                description["StackStatusReason"] = stack.status_reason
            if stack.updated:
                description["LastUpdatedTime"] = stack.updated
            if stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_IN_PROGRESS",
                                "UPDATE_ROLLBACK_FAILED", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"):
                outputs = []
                for key, output in stack.template.get("Outputs", {}).items():
                    row = {"OutputKey": key, "OutputValue": self._resolve(stack, output["Value"], stack.parameters, stack.physical_ids)}
                    if "Export" in output:
                        row["ExportName"] = self._resolve(stack, output["Export"]["Name"], stack.parameters, stack.physical_ids)
                    outputs.append(row)
                description["Outputs"] = outputs
            return {"Stacks": [description]}

    def describe_stack_events(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("describe_stack_events", kwargs)
            stack = self._find("DescribeStackEvents", kwargs["StackName"])
            newest_first = list(reversed(stack.events))
            start = int(kwargs.get("NextToken", 0))
            response = {"StackEvents": copy.deepcopy(newest_first[start:start + self.world.page_size])}
            if start + self.world.page_size < len(newest_first):
                response["NextToken"] = str(start + self.world.page_size)
            return response

    def get_template(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("get_template", kwargs)
            stack = self._find("GetTemplate", kwargs["StackName"])
            if not stack.template:  # REVIEW_IN_PROGRESS after its only change set failed
                return {"StagesAvailable": ["Original", "Processed"]}
            return {"TemplateBody": copy.deepcopy(stack.template), "StagesAvailable": ["Original", "Processed"]}

    def list_exports(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("list_exports", kwargs)
            return {"Exports": [{"ExportingStackId": owner.stack_id, "Name": name, "Value": value}
                                for name, (owner, value) in sorted(self._exports().items())]}

    def list_imports(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("list_imports", kwargs)
            users = self._importers(kwargs["ExportName"])
            if not users:
                raise client_error("ListImports", "ValidationError", f"Export '{kwargs['ExportName']}' is not imported by any stack.")
            return {"Imports": users}

    def list_stack_resources(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("list_stack_resources", kwargs)
            stack = self._find("ListStackResources", kwargs["StackName"])
            summaries = [
                {"LogicalResourceId": k, "PhysicalResourceId": stack.physical_ids.get(k, ""), "ResourceType": body["Type"],
                 "ResourceStatus": stack.resource_status.get(k, "CREATE_COMPLETE"), "LastUpdatedTimestamp": stack.created}
                for k, body in stack.template.get("Resources", {}).items() if k in stack.physical_ids]
            start = int(kwargs.get("NextToken", 0))
            response = {"StackResourceSummaries": summaries[start:start + self.world.resource_page_size]}
            if start + self.world.resource_page_size < len(summaries):
                response["NextToken"] = str(start + self.world.resource_page_size)
            return response

    # ---- protection and drift ----------------------------------------------------------------------
    def set_stack_policy(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("set_stack_policy", kwargs)
            self._find("SetStackPolicy", kwargs["StackName"]).policy = kwargs["StackPolicyBody"]
            return {}

    def get_stack_policy(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("get_stack_policy", kwargs)
            policy = self._find("GetStackPolicy", kwargs["StackName"]).policy
            return {"StackPolicyBody": policy} if policy else {}

    def update_termination_protection(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("update_termination_protection", kwargs)
            stack = self._find("UpdateTerminationProtection", kwargs["StackName"])
            stack.termination_protection = kwargs["EnableTerminationProtection"]
            return {"StackId": stack.stack_id}

    def detect_stack_drift(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("detect_stack_drift", kwargs)
            stack = self._find("DetectStackDrift", kwargs["StackName"])
            return {"StackDriftDetectionId": f"drift-{stack.name}"}

    def describe_stack_drift_detection_status(self, **kwargs: Any) -> dict:
        with self.world.lock:
            self._enter("describe_stack_drift_detection_status", kwargs)
            return {"StackDriftDetectionId": kwargs["StackDriftDetectionId"], "DetectionStatus": "DETECTION_COMPLETE",
                    "StackDriftStatus": "IN_SYNC"}

    # ---- test helpers (not CloudFormation API) ----------------------------------------------
    def stack(self, name: str) -> FakeStack:
        return self._find("test", name)

    def settle(self) -> None:
        with self.world.lock:
            self._advance_all()


def s3_reader_from(s3_client: Any) -> Callable[[str], bytes]:
    """Reads a TemplateURL (virtual-hosted style) from an S3 client, e.g. moto's."""
    def read(url: str) -> bytes:
        parsed = urlparse(url)
        bucket = parsed.netloc.split(".s3.")[0]
        return s3_client.get_object(Bucket=bucket, Key=parsed.path.lstrip("/"))["Body"].read()
    return read


class FakeProtectionApi:
    """The service calls that turn deletion protection off (what `recover` uses), recording the
    resource in FakeAws.unprotected; every other call goes to `fallback` (a moto client)."""

    def __init__(self, world: FakeAws, fallback: Any):
        self.world = world
        self.fallback = fallback
        self.meta = getattr(fallback, "meta", None)

    def _lift(self, operation: str, physical_id: str) -> dict:
        with self.world.lock:
            self.world.calls.append((operation, "", {"PhysicalResourceId": physical_id}))
            self.world.unprotected.add(physical_id)
        return {}

    def modify_db_cluster(self, **kwargs: Any) -> dict:
        return self._lift("modify_db_cluster", kwargs["DBClusterIdentifier"])

    def modify_db_instance(self, **kwargs: Any) -> dict:
        return self._lift("modify_db_instance", kwargs["DBInstanceIdentifier"])

    def update_table(self, **kwargs: Any) -> dict:
        return self._lift("update_table", kwargs["TableName"])

    def modify_load_balancer_attributes(self, **kwargs: Any) -> dict:
        return self._lift("modify_load_balancer_attributes", kwargs["LoadBalancerArn"])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)
