"""Stack operations: change sets, create, update, delete, rollback, exports and imports.

moto gaps covered (moto 5.2.5, cloudformation/models.py):
- change sets: moto computes Add/Modify/Remove by comparing raw JSON only, with no Replacement
  or Details, and treats parameter changes only partly; here Changes carry Replacement (from
  the schemas' createOnlyProperties), Scope, Details (property, Evaluation Static/Dynamic,
  ChangeSource, CausingEntity) and PolicyAction;
- executing a CREATE change set registers no outputs and no exports in moto; here outputs and
  exports are computed after every successful create/update;
- Fn::ImportValue: a missing export fails the change set (FAILED, "No export named X found.");
- no per-resource events and no rollback in moto (a failed create raises out of
  ExecuteChangeSet); here every resource has CREATE/UPDATE/DELETE_IN_PROGRESS/COMPLETE/FAILED
  events, and a failure rolls back (ROLLBACK_COMPLETE / UPDATE_ROLLBACK_COMPLETE with the old
  template, parameters and outputs restored); ExecuteChangeSet itself never fails for that;
- DeletionPolicy: moto honours only Retain on stack deletion; here Retain, RetainExceptOnCreate
  (kept, except when the create that made them rolls back), Snapshot and Delete, and
  UpdateReplacePolicy for replaced resources;
- deletion order: moto deletes in dictionary order and retries, leaving route tables,
  endpoints, NAT gateways, EIPs behind (then the VPC "has dependencies"); here resources are
  deleted in reverse dependency order, through per-type deleters (compat.ec2 & co.);
- exports in use: deleting the exporting stack ends DELETE_FAILED ("Export X cannot be deleted
  as it is in use by Y"), an update removing/changing it rolls back; ListImports works;
- termination protection is enforced by DeleteStack; stack policies are enforced on updates;
- DescribeStacks returns parameters as given (SSM-typed ones with ResolvedValue);
- dynamic references {{resolve:ssm:...}} / {{resolve:secretsmanager:...}} are resolved.
Every operation runs synchronously inside the API call, under model.LOCK: when ExecuteChangeSet
or DeleteStack returns, the stack is in its final state and every event is there.
"""
from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from platform_contracts import IAM_CAPABILITY_TYPES, IAM_NAME_PROPERTIES, TEMPLATE_BODY_LIMIT_BYTES, TEMPLATE_URL_LIMIT_BYTES

from ..errors import (
    AlreadyExists,
    ChangeSetNotFound,
    InsufficientCapabilities,
    InvalidChangeSetStatus,
    ResourceFailure,
    ValidationError,
)
from . import schemas, transforms
from . import template as tpl
from .model import CLOCK, LOCK, UPDATABLE_STATUSES, ChangeSet, ResourceRecord, Stack, Store
from .providers import Provider, Request, generated_name, provider_for, run_safely

log = logging.getLogger("emulator")

NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."
_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]*")
_TOKEN = re.compile(r"<<(Ref|GetAtt):([^>]+)>>")


# ---- template sources ------------------------------------------------------------------------
def read_template_url(store: Store, url: str) -> str:
    """The template an S3 URL names, from moto's S3; AWS's refusals otherwise."""
    from moto.s3.models import s3_backends

    denied = ValidationError("TemplateURL must reference a valid S3 object to which you have access.")
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        raise denied
    path = parsed.path.lstrip("/")
    url_region = None
    if host.startswith("s3.") or host.startswith("s3-"):  # path style
        bucket, _, key = path.partition("/")
        match = re.match(r"s3[.-]([a-z0-9-]+)\.amazonaws", host)
        url_region = match.group(1) if match and match.group(1) != "amazonaws" else None
    else:
        bucket, _, rest = host.partition(".s3")
        key = path
        match = re.match(r"[.-]([a-z]{2}(?:-[a-z]+)+-\d)\.", rest)
        url_region = match.group(1) if match else None
    if url_region and url_region != store.region:
        # CloudFormation reads a TemplateURL from the stack's region (strict, as the project's fake)
        raise denied
    partition = tpl.partition_of(store.region)
    backend = s3_backends[store.account_id][partition]
    try:
        bucket_model = backend.get_bucket(bucket)
        if url_region and getattr(bucket_model, "region_name", url_region) != url_region:
            raise denied
        obj = backend.get_object(bucket, key)
    except ValidationError:
        raise
    except Exception:
        raise denied from None
    if obj is None:
        raise denied
    body = obj.value
    if len(body) > TEMPLATE_URL_LIMIT_BYTES:
        raise ValidationError(f"Template may not exceed {TEMPLATE_URL_LIMIT_BYTES} bytes in size.")
    return body.decode("utf-8")


def template_body_from(store: Store, body: str | None, url: str | None, previous: Stack | None, use_previous: bool) -> str:
    if use_previous:
        if body or url:
            raise ValidationError("You cannot specify both usePreviousTemplate and Template Body/Template URL.")
        if previous is None:
            raise ValidationError("UsePreviousTemplate is not allowed for a new stack")
        return previous.template_body
    if body and url:
        raise ValidationError("You cannot specify both Template Body and Template URL.")
    if body:
        if len(body.encode()) > TEMPLATE_BODY_LIMIT_BYTES:
            raise ValidationError(
                "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member "
                f"must have length less than or equal to {TEMPLATE_BODY_LIMIT_BYTES}")
        return body
    if url:
        return read_template_url(store, url)
    raise ValidationError("Either Template URL or Template Body must be specified.")


# ---- parameters ----------------------------------------------------------------------------
def _ssm_value(store: Store, name: str) -> str:
    from moto.ssm.models import ssm_backends

    try:
        parameter = ssm_backends[store.account_id][store.region].get_parameter(name)
    except Exception:
        parameter = None
    if parameter is None:
        raise ValidationError(f"Unable to fetch parameters [{name}] from parameter store for this account.")
    return parameter.value


def resolve_parameters(store: Store, template: dict, given: list[dict], previous: Stack | None
                       ) -> tuple[dict[str, str], dict[str, Any], dict[str, str], set[str]]:
    """(values as given with defaults, resolved values, SSM ResolvedValues, NoEcho names)."""
    declared: dict = template.get("Parameters") or {}
    values: dict[str, str] = {}
    unknown = []
    for item in given:
        key = item.get("ParameterKey")
        if key not in declared:
            unknown.append(key)
            continue
        if item.get("UsePreviousValue"):
            if previous is None or key not in previous.parameters:
                raise ValidationError(f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template")
            values[key] = previous.parameters[key]
        elif "ParameterValue" in item:
            values[key] = item["ParameterValue"] if item["ParameterValue"] is not None else ""
    if unknown:
        raise ValidationError(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    missing = []
    for key, spec in declared.items():
        if key not in values:
            if "Default" in spec:
                default = spec["Default"]
                values[key] = ",".join(str(v) for v in default) if isinstance(default, list) else tpl._stringify(default)
            else:
                missing.append(key)
    if missing:
        raise ValidationError(f"Parameters: [{', '.join(missing)}] must have values")
    resolved: dict[str, Any] = {}
    ssm: dict[str, str] = {}
    no_echo = set()
    for key, spec in declared.items():
        value = values[key]
        kind = str(spec.get("Type", "String"))
        if str(spec.get("NoEcho", "false")).lower() == "true":
            no_echo.add(key)
        _check_parameter(key, spec, kind, value)
        if kind.startswith("AWS::SSM::Parameter::Value<"):
            actual = _ssm_value(store, value)
            ssm[key] = actual
            inner = kind[len("AWS::SSM::Parameter::Value<"):-1]
            resolved[key] = [v.strip() for v in actual.split(",")] if inner.startswith("List<") or inner == "CommaDelimitedList" else actual
        elif kind == "CommaDelimitedList" or kind.startswith("List<"):
            resolved[key] = [v.strip() for v in value.split(",")] if value != "" else [""]
        else:
            resolved[key] = value
    return values, resolved, ssm, no_echo


def _check_parameter(key: str, spec: dict, kind: str, value: str) -> None:
    items = [v.strip() for v in value.split(",")] if (kind == "CommaDelimitedList" or kind.startswith("List<")) else [value]
    allowed = spec.get("AllowedValues")
    if allowed is not None:
        allowed_text = [tpl._stringify(a) for a in allowed]
        if any(item not in allowed_text for item in items):
            raise ValidationError(f"Parameter '{key}' must be one of AllowedValues")
    if kind in ("Number", "List<Number>"):
        for item in items:
            try:
                number = float(item)
            except ValueError:
                raise ValidationError(f"Parameter '{key}' must be a number.") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ValidationError(f"Parameter '{key}' must be a number not less than {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ValidationError(f"Parameter '{key}' must be a number not greater than {spec['MaxValue']}")
    if kind == "String":
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            raise ValidationError(f"Parameter '{key}' must match pattern {spec['AllowedPattern']}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            raise ValidationError(f"Parameter '{key}' must contain at least {spec['MinLength']} characters")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            raise ValidationError(f"Parameter '{key}' must contain at most {spec['MaxLength']} characters")


# ---- template checks -----------------------------------------------------------------------
def required_capabilities(template: dict, original: dict) -> set[str]:
    needed = transforms.required_capabilities(original)
    for body in (template.get("Resources") or {}).values():
        if body.get("Type") in IAM_CAPABILITY_TYPES:
            properties = body.get("Properties") or {}
            if any(name in properties for name in IAM_NAME_PROPERTIES):
                needed.add("CAPABILITY_NAMED_IAM")
            else:
                needed.add("CAPABILITY_IAM")
    return needed


def check_capabilities(template: dict, original: dict, granted: list[str]) -> None:
    have = set(granted)
    if "CAPABILITY_NAMED_IAM" in have:
        have.add("CAPABILITY_IAM")
    missing = sorted(required_capabilities(template, original) - have)
    if "CAPABILITY_NAMED_IAM" in missing and "CAPABILITY_IAM" in missing:
        missing.remove("CAPABILITY_IAM")
    if missing:
        raise InsufficientCapabilities(f"Requires capabilities : [{', '.join(missing)}]")


def check_template(store: Store, template: dict) -> None:  # noqa: C901 mirrors CloudFormation's own branching; split with the engine refactor
    """What CloudFormation refuses synchronously: structure, types, references, GetAtts, cycles."""
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise ValidationError("Template format error: At least one Resources member must be defined.")
    unknown = sorted({body.get("Type", "") for body in resources.values()
                      if not isinstance(body, dict) or not schemas.is_known_type(body.get("Type", ""), store.region)})
    if unknown:
        raise ValidationError(f"Template format error: Unrecognized resource types: [{', '.join(unknown)}]")
    names = set(resources) | set(template.get("Parameters") or {}) | tpl.PSEUDO_PARAMETERS
    unresolved: set[str] = set()
    for logical_id, body in resources.items():
        for key in body:
            if key not in ("Type", "Properties", "DependsOn", "DeletionPolicy", "UpdateReplacePolicy", "Metadata",
                           "Condition", "CreationPolicy", "UpdatePolicy", "Version"):
                raise ValidationError(f"Invalid template resource property '{key}'")
        refs = tpl.references(body.get("Properties", {}))
        depends = body.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        unresolved |= {name for name in refs if name not in names}
        unresolved |= {name for name in depends if name not in resources}
        condition = body.get("Condition")
        if condition and condition not in (template.get("Conditions") or {}):
            raise ValidationError(f"Template format error: Unresolved dependencies [{condition}]. Cannot reference resources in the Conditions block of the template")
        for policy_key in ("DeletionPolicy", "UpdateReplacePolicy"):
            policy = body.get(policy_key)
            if policy is not None and policy not in ("Delete", "Retain", "RetainExceptOnCreate", "Snapshot"):
                raise ValidationError(f"Template format error: Unrecognized {policy_key} {policy} for resource {logical_id}")
    outputs = template.get("Outputs") or {}
    for output in outputs.values():
        unresolved |= {name for name in tpl.references(output) if name not in names}
    if unresolved:
        raise ValidationError(f"Template format error: Unresolved resource dependencies [{', '.join(sorted(unresolved))}] in the Resources block of the template")
    for where in list(resources.values()) + list(outputs.values()):
        for logical_id, attribute in tpl.attribute_references(where):
            if logical_id in (template.get("Parameters") or {}):
                continue
            if logical_id not in resources:
                raise ValidationError(f"Template error: instance of Fn::GetAtt references undefined resource {logical_id}")
            allowed = schemas.getatt_names(resources[logical_id]["Type"], store.region)
            if allowed is not None and attribute not in allowed:
                raise ValidationError(f"Template error: resource {logical_id} does not support attribute type {attribute} in Fn::GetAtt")
    try:
        tpl.creation_order(resources, {name: True for name in (template.get("Conditions") or {})})
    except tpl.TemplateError as error:
        raise ValidationError(f"Template format error: {error}" if not str(error).startswith("Template") else str(error)) from None


# ---- evaluation ----------------------------------------------------------------------------
def availability_zones(account_id: str) -> Callable[[str], list[str]]:
    def zones(region: str) -> list[str]:
        from moto.ec2.models import ec2_backends

        try:
            return sorted(z.name for z in ec2_backends[account_id][region].describe_availability_zones())
        except Exception:
            return [f"{region}{suffix}" for suffix in "abc"]
    return zones


class Evaluation:
    """Intrinsic evaluation for one stack operation (one template, one set of parameters)."""

    def __init__(self, store: Store, stack: Stack, template: dict, resolved: dict[str, Any],
                 records: dict[str, ResourceRecord], tokens: bool = False):
        self.store = store
        self.stack = stack
        self.template = template
        self.resources = template.get("Resources") or {}
        self.records = records
        self.tokens = tokens
        self.context = tpl.Context(
            account_id=store.account_id, region=store.region, stack_name=stack.name, stack_id=stack.stack_id,
            parameters=resolved, conditions={}, mappings=template.get("Mappings") or {},
            resource_ref=self._ref, resource_att=self._att, import_value=self._import,
            availability_zones=availability_zones(store.account_id), notification_arns=stack.notification_arns,
        )
        self.conditions = tpl.evaluate_conditions(template, self.context)
        self.evaluator = tpl.Evaluator(self.context)

    def exists(self, logical_id: str) -> bool:
        condition = self.resources.get(logical_id, {}).get("Condition")
        return not condition or self.conditions.get(condition, False)

    def _ref(self, name: str) -> Any:
        if name not in self.resources:
            raise tpl.TemplateError(f"Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template")
        if self.tokens:
            return f"<<Ref:{name}>>"
        record = self.records.get(name)
        if record is None or not record.exists:
            raise tpl.TemplateError(f"Resource {name} does not exist (condition false or not created)")
        return provider_for(record.resource_type, self.store.region).ref(record.state)

    def _att(self, name: str, attribute: str) -> Any:
        if name not in self.resources:
            raise tpl.TemplateError(f"Template error: instance of Fn::GetAtt references undefined resource {name}")
        if self.tokens:
            return f"<<GetAtt:{name}.{attribute}>>"
        record = self.records.get(name)
        if record is None or not record.exists:
            raise tpl.TemplateError(f"Resource {name} does not exist (condition false or not created)")
        provider = provider_for(record.resource_type, self.store.region)
        try:
            return provider.attribute(record.state, attribute)
        except ResourceFailure as error:
            raise tpl.TemplateError(f"Fn::GetAtt {name}.{attribute}: {error}") from None
        except Exception as error:  # an emulator bug in an attribute: a failure, not a crash
            log.warning("emulator: GetAtt %s.%s failed", name, attribute, exc_info=True)
            raise tpl.TemplateError(f"Fn::GetAtt {name}.{attribute}: internal failure of the emulator ({error})") from error

    def _import(self, name: str) -> Any:
        found = self.store.exports().get(name)
        if found is None:
            raise tpl.TemplateError(f"No export named {name} found.")
        return found[1]

    def properties(self, logical_id: str) -> dict:
        body = self.resources[logical_id]
        resolved = self.evaluator.resolve(body.get("Properties") or {})
        return resolved if isinstance(resolved, dict) else {}

    def token_properties(self, logical_id: str) -> dict:
        """Properties with resources as tokens; a property that cannot be evaluated that way is
        kept as its raw expression (still comparable between two templates)."""
        body = self.resources[logical_id]
        result = {}
        for key, value in (body.get("Properties") or {}).items():
            try:
                item = self.evaluator.resolve(value)
            except (tpl.TemplateError, TypeError, ValueError, IndexError, KeyError, AttributeError):
                item = "<<Expr:" + json.dumps(value, sort_keys=True) + ">>"
            if item is not tpl.NO_VALUE:
                result[key] = item
        return result

    def imports(self) -> set[str]:
        names: set[str] = set()
        active = {k: v for k, v in self.resources.items() if self.exists(k)}
        node = tpl.active_node({"Resources": active, "Outputs": self.template.get("Outputs") or {}}, self.conditions)
        with contextlib.suppress(tpl.TemplateError):
            names = tpl.imported_names(node, self.evaluator.resolve)
        return names

    def missing_imports(self) -> list[str]:
        missing: list[str] = []
        exports = self.store.exports()

        def visit(key: str, value: Any) -> None:
            if key == "Fn::ImportValue":
                try:
                    name = tpl._stringify(self.evaluator.resolve(value))
                except tpl.TemplateError:
                    return
                if name not in exports and name not in missing:
                    missing.append(name)

        active = {k: v for k, v in self.resources.items() if self.exists(k)}
        tpl.walk(tpl.active_node({"Resources": active, "Outputs": self.template.get("Outputs") or {}}, self.conditions), visit)
        return missing

    def order(self) -> list[str]:
        active = {k: v for k, v in self.resources.items() if self.exists(k)}
        return tpl.creation_order(active, self.conditions)

    def outputs(self) -> list[dict]:
        rows = []
        for key, output in (self.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition and not self.conditions.get(condition, False):
                continue
            value = self.evaluator.resolve(output.get("Value"))
            row = {"OutputKey": key, "OutputValue": tpl.stringify_output(value)}
            if output.get("Description"):
                row["Description"] = output["Description"]
            if output.get("Export"):
                row["ExportName"] = tpl._stringify(self.evaluator.resolve(output["Export"].get("Name")))
            rows.append(row)
        return rows


def resolve_dynamic(store: Store, properties: dict) -> dict:
    """{{resolve:ssm:...}}, {{resolve:ssm-secure:...}}, {{resolve:secretsmanager:...}}."""
    def resolver(service: str, reference: str) -> str:
        if service in ("ssm", "ssm-secure"):
            name, _, version = reference.partition(":")
            from moto.ssm.models import ssm_backends

            backend = ssm_backends[store.account_id][store.region]
            try:
                parameter = backend.get_parameter(f"{name}:{version}" if version else name)
            except Exception:
                parameter = None
            if parameter is None:
                raise ResourceFailure(f"Parameters: [ssm:{name}] cannot be found.")
            if service == "ssm" and parameter.parameter_type == "SecureString":
                raise ResourceFailure(f"Parameters: [{name}] of type SecureString are only resolved with ssm-secure")
            return parameter.value
        if service == "secretsmanager":
            return _secret_reference(store, reference)
        raise ResourceFailure(f"Dynamic reference service {service} is not supported")

    return tpl.resolve_dynamic_references(properties, resolver)


def _secret_reference(store: Store, reference: str) -> str:
    from moto.secretsmanager.models import secretsmanager_backends

    if reference.startswith("arn:"):
        parts = reference.split(":")
        secret_id = ":".join(parts[:7])
        rest = parts[7:]
    else:
        secret_id, *rest = reference.split(":")
    rest += [""] * (4 - len(rest))
    value_type, json_key, version_stage, version_id = rest[:4]
    if value_type and value_type != "SecretString":
        raise ResourceFailure(f"Could not parse SecretString JSON for secret {secret_id}: unsupported type {value_type}")
    backend = secretsmanager_backends[store.account_id][store.region]
    try:
        value = backend.get_secret_value(secret_id, version_id or None, version_stage or None)
    except Exception as error:
        raise ResourceFailure(f"Secrets Manager can't find the specified secret. ({getattr(error, 'message', error)}) [{secret_id}]") from None
    text = value.get("SecretString") if isinstance(value, dict) else getattr(value, "secret_string", None)
    if text is None:
        raise ResourceFailure(f"Secret {secret_id} has no SecretString")
    if not json_key:
        return text
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ResourceFailure(f"Could not parse SecretString JSON for secret {secret_id}") from None
    if json_key not in document:
        raise ResourceFailure(f"Could not find SecretString JSON key {json_key} in secret {secret_id}")
    return tpl._stringify(document[json_key])


# ---- change sets -----------------------------------------------------------------------------
def _tokens_in(value: Any) -> set[tuple[str, str]]:
    text = json.dumps(value, default=str)
    return {(kind, ref) for kind, ref in _TOKEN.findall(text)}


# What DescribeChangeSet adds to a detail's Target with IncludePropertyValues (responses.py drops
# them without it): the property's path and its values as strings, objects and lists as JSON.
# Before is the value the resource was last deployed with; After the new template's, with a
# reference to another resource of the stack left as its <<Ref:X>> token (AWS's own rendering of
# a value known only after the update could not be checked offline).
PROPERTY_VALUE_KEYS = ("Path", "BeforeValue", "AfterValue", "AttributeChangeType")


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def property_values(path: str, before: Any, after: Any) -> dict[str, str]:
    values = {"Path": path,
              "AttributeChangeType": "Add" if before is None else "Remove" if after is None else "Modify"}
    if before is not None:
        values["BeforeValue"] = _value_text(before)
    if after is not None:
        values["AfterValue"] = _value_text(after)
    return values


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _policy_action(policy: str, replace: bool = False) -> str:
    policy = {"RetainExceptOnCreate": "Retain"}.get(policy, policy)
    return f"ReplaceAnd{policy}" if replace else policy


def _add_entry(logical_id: str, resource_type: str) -> dict:
    return {"Action": "Add", "LogicalResourceId": logical_id, "ResourceType": resource_type, "Scope": [], "Details": []}


def compute_changes(store: Store, stack: Stack, new: Evaluation, new_tags: dict[str, str], creating: bool,
                    new_parameters: dict[str, str]) -> list[dict]:
    """DescribeChangeSet's Changes: additions, static modifications (what the template changes),
    their dynamic consequences (what refers to a replaced resource), then removals."""
    new_resources = {k: v for k, v in new.resources.items() if new.exists(k)}
    if creating:
        return [{"Type": "Resource", "ResourceChange": _add_entry(logical_id, body["Type"])}
                for logical_id, body in new_resources.items()]
    old_records = {k: r for k, r in stack.resources.items() if r.exists}
    changed_parameters = {k for k, v in new_parameters.items() if stack.parameters.get(k) != v}
    changed_parameters |= {k for k in stack.parameters if k not in new_parameters}
    entries: dict[str, dict] = {}
    for logical_id, body in new_resources.items():
        if logical_id not in old_records:
            entries[logical_id] = _add_entry(logical_id, body["Type"])
            continue
        details = _static_details(store.region, stack, new, logical_id, old_records[logical_id], new_tags, changed_parameters)
        if details:
            entries[logical_id] = _modify_entry(logical_id, body["Type"], old_records[logical_id], details)
    _add_dynamic_consequences(store.region, new, new_resources, old_records, entries)
    changes = [{"Type": "Resource", "ResourceChange": entries[logical_id]} for logical_id in new_resources
               if logical_id in entries]
    return changes + _removals(old_records, new_resources)


def _static_details(region: str, stack: Stack, new: Evaluation, logical_id: str, record: ResourceRecord,
                    new_tags: dict[str, str], changed_parameters: set[str]) -> list[dict]:
    """What the template itself changes in one existing resource: properties, tags, metadata."""
    body = new.resources[logical_id]
    if record.resource_type != body["Type"]:
        raise ValidationError(
            f"Update of resource type is not permitted. The new template modifies resource type of the following resources: [{logical_id}]")
    old_tokens = record.token_properties
    new_tokens = new.token_properties(logical_id)
    details = []
    old_raw = (record.definition.get("Properties") or {})
    new_raw = (body.get("Properties") or {})
    for prop in sorted(set(old_tokens) | set(new_tokens)):
        if old_tokens.get(prop) == new_tokens.get(prop):
            continue
        recreation = schemas.replacement_for(body["Type"], region, prop, old_tokens, new_tokens)
        source, causing = "DirectModification", None
        if old_raw.get(prop) == new_raw.get(prop):
            params = sorted(tpl.references(new_raw.get(prop)) & changed_parameters)
            if params:
                source, causing = "ParameterReference", params[0]
        detail = {"Target": {"Attribute": "Properties", "Name": prop, "RequiresRecreation": recreation,
                             **property_values(f"/Properties/{prop}", record.properties.get(prop, old_tokens.get(prop)),
                                               new_tokens.get(prop))},
                  "Evaluation": "Static", "ChangeSource": source}
        if causing:
            detail["CausingEntity"] = causing
        details.append(detail)
    tag_property = schemas.tag_property(body["Type"], region)
    if tag_property and new_tags != stack.tags:
        details.append({"Target": {"Attribute": "Tags", "RequiresRecreation": "Never",
                                   **property_values(f"/Properties/{tag_property}", _tag_list(stack.tags),
                                                     _tag_list(new_tags))},
                        "Evaluation": "Static", "ChangeSource": "DirectModification"})
    if (record.definition.get("Metadata") or {}) != (body.get("Metadata") or {}):
        details.append({"Target": {"Attribute": "Metadata", "RequiresRecreation": "Never"},
                        "Evaluation": "Static", "ChangeSource": "DirectModification"})
    return details


def _add_dynamic_consequences(region: str, new: Evaluation, new_resources: dict[str, dict],
                              old_records: dict[str, ResourceRecord], entries: dict[str, dict]) -> None:
    """A replaced resource changes its Ref and attributes: whoever uses them is (maybe) modified
    too, transitively, until nothing changes any more."""
    modified = {logical_id for logical_id, entry in entries.items() if entry["Action"] == "Modify"}
    replaced = {logical_id for logical_id in modified if entries[logical_id]["Replacement"] == "True"}
    changed = True
    while changed:
        changed = False
        for logical_id in new_resources:
            if logical_id not in old_records:
                continue
            entry = entries.get(logical_id)
            additions = _reference_details(region, new, logical_id, new_resources[logical_id]["Type"], entry, replaced)
            if not additions:
                continue
            details = (entry or {}).get("Details", []) + additions
            entries[logical_id] = _modify_entry(logical_id, new_resources[logical_id]["Type"], old_records[logical_id], details)
            if logical_id not in modified or (entries[logical_id]["Replacement"] != "False" and logical_id not in replaced):
                changed = True
            modified.add(logical_id)
            if entries[logical_id]["Replacement"] in ("True", "Conditional"):
                replaced.add(logical_id)


def _reference_details(region: str, new: Evaluation, logical_id: str, resource_type: str, entry: dict | None,
                       replaced: set[str]) -> list[dict]:
    """Dynamic details of one resource: its properties that refer to a replaced resource and are
    not listed yet. A replacement changes the Ref and the attributes; an in-place update keeps the
    identifiers and ARNs the attributes are (the emulator's simplification)."""
    known = {(d.get("CausingEntity"), d["Target"].get("Name")) for d in (entry or {}).get("Details", [])}
    additions = []
    for prop, value in new.token_properties(logical_id).items():
        for kind, target in _tokens_in(value):
            if target.split(".", 1)[0] not in replaced or (target, prop) in known:
                continue
            recreation = "Always" if schemas.is_create_only(resource_type, region, prop) else "Never"
            additions.append({
                "Target": {"Attribute": "Properties", "Name": prop, "RequiresRecreation": recreation},
                "Evaluation": "Dynamic",
                "ChangeSource": "ResourceReference" if kind == "Ref" else "ResourceAttribute",
                "CausingEntity": target})
            known.add((target, prop))
    return additions


def _removals(old_records: dict[str, ResourceRecord], new_resources: dict[str, dict]) -> list[dict]:
    return [{"Type": "Resource", "ResourceChange": {
        "PolicyAction": _policy_action(record.deletion_policy()), "Action": "Remove",
        "LogicalResourceId": logical_id, "PhysicalResourceId": record.physical_id,
        "ResourceType": record.resource_type, "Scope": [], "Details": []}}
        for logical_id, record in old_records.items() if logical_id not in new_resources]


def _modify_entry(logical_id: str, resource_type: str, record: ResourceRecord, details: list[dict]) -> dict:
    static_always = any(d["Evaluation"] == "Static" and d["Target"].get("RequiresRecreation") == "Always" for d in details)
    maybe = any(d["Target"].get("RequiresRecreation") in ("Always", "Conditionally") for d in details)
    replacement = "True" if static_always else ("Conditional" if maybe else "False")
    entry = {"Action": "Modify", "LogicalResourceId": logical_id, "PhysicalResourceId": record.physical_id,
             "ResourceType": resource_type, "Replacement": replacement,
             "Scope": sorted({d["Target"]["Attribute"] for d in details}), "Details": details}
    if replacement != "False":
        entry["PolicyAction"] = _policy_action(record.update_replace_policy(), replace=True)
    return entry


def new_stack_id(store: Store, name: str) -> str:
    return f"arn:{tpl.partition_of(store.region)}:cloudformation:{store.region}:{store.account_id}:stack/{name}/{uuid.uuid4()}"


def create_change_set(store: Store, args: dict) -> ChangeSet:
    with LOCK:
        name, change_set_name = args["StackName"], args["ChangeSetName"]
        change_set_type = args.get("ChangeSetType") or "UPDATE"
        _check_rollback_trigger_types(args.get("RollbackConfiguration") or {})
        stack = _stack_for_change_set(store, name, change_set_name, change_set_type)
        previous = stack if stack is not None and stack.status != "REVIEW_IN_PROGRESS" else None
        body, original, processed, transform_error = _change_set_template(store, args, previous)
        values, resolved, ssm, no_echo = resolve_parameters(store, processed, args.get("Parameters") or [], previous)
        check_capabilities(processed, original, args.get("Capabilities") or [])
        tags = {t["Key"]: t["Value"] for t in (args.get("Tags") or [])}
        if previous is not None and not args.get("Tags"):
            tags = dict(previous.tags)  # UpdateStack/CreateChangeSet keep the stack's tags when none are given
        if stack is None:
            stack = _review_stack(store, name, tags)
        change_set_id = (f"arn:{tpl.partition_of(store.region)}:cloudformation:{store.region}:{store.account_id}:"
                         f"changeSet/{change_set_name}/{uuid.uuid4()}")
        change_set = ChangeSet(
            change_set_id=change_set_id, name=change_set_name, stack=stack, change_set_type=change_set_type,
            template_body=body, original_template=original, template=processed, parameters=values,
            resolved_parameters=resolved, ssm_resolved=ssm, tags=tags,
            capabilities=list(args.get("Capabilities") or []), notification_arns=list(args.get("NotificationARNs") or []),
            rollback_configuration=args.get("RollbackConfiguration") or {}, description=args.get("Description"),
            role_arn=args.get("RoleARN"), on_stack_failure=args.get("OnStackFailure"),
            resources_to_import=list(args.get("ResourcesToImport") or []), no_echo=no_echo,
            resource_types=args.get("ResourceTypes"),
        )
        store.change_sets[change_set_id] = change_set
        try:
            _evaluate_change_set(store, change_set, transform_error, previous)
        except ValidationError:  # refused synchronously (IMPORT checks): leave no trace behind
            _discard_refused(store, change_set)
            raise
        return change_set


def _stack_for_change_set(store: Store, name: str, change_set_name: str, change_set_type: str) -> Stack | None:
    """The stack a change set of this type may be created for (None: a new one), or CloudFormation's refusal."""
    if not _NAME.fullmatch(change_set_name) or len(change_set_name) > 128:
        raise ValidationError(f"1 validation error detected: Value '{change_set_name}' at 'changeSetName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*")
    stack = store.find_stack(name, include_deleted_by_id=False)
    if change_set_type in ("CREATE", "IMPORT") and stack is None and (not _NAME.fullmatch(name) or len(name) > 128):
        raise ValidationError(f"1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*")
    if change_set_type == "CREATE":
        if stack is not None and stack.status != "REVIEW_IN_PROGRESS":
            raise AlreadyExists(f"Stack [{name}] already exists and cannot be created again with the changeSet [{change_set_name}].")
    elif change_set_type == "UPDATE":
        if stack is None:
            raise ValidationError(f"Stack [{name}] does not exist")
        if stack.status not in UPDATABLE_STATUSES:
            raise ValidationError(f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    elif change_set_type == "IMPORT":
        if stack is not None and stack.status not in UPDATABLE_STATUSES | {"REVIEW_IN_PROGRESS"}:
            raise ValidationError(f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    else:
        raise ValidationError(f"1 validation error detected: Value '{change_set_type}' at 'changeSetType' failed to satisfy constraint")
    if stack is not None and any(existing.stack is stack and existing.name == change_set_name
                                 for existing in store.change_sets.values()):
        raise AlreadyExists(f"ChangeSet [{change_set_name}] already exists")
    return stack


def _change_set_template(store: Store, args: dict, previous: Stack | None) -> tuple[str, dict, dict, str | None]:
    """(body, parsed template, template after transforms, the transform's error if any). A
    transform error fails the change set later (asynchronously), as CloudFormation does."""
    body = template_body_from(store, args.get("TemplateBody"), args.get("TemplateURL"), previous,
                              bool(args.get("UsePreviousTemplate")))
    try:
        original = tpl.parse_template(body)
    except tpl.TemplateError as error:
        raise ValidationError(str(error)) from None
    transform_error = None
    try:
        processed, _ = transforms.process(original)
    except transforms.TransformError as error:
        processed, transform_error = copy.deepcopy(original), str(error)
        processed.pop("Transform", None)
    if transform_error is None:
        check_template(store, processed)
    return body, original, processed, transform_error


def _review_stack(store: Store, name: str, tags: dict[str, str]) -> Stack:
    """The REVIEW_IN_PROGRESS stack a change set of a new stack creates."""
    stack = Stack(stack_id=new_stack_id(store, name), name=name, account_id=store.account_id,
                  region=store.region, creation_time=CLOCK.now())
    stack.tags = tags
    stack.stack_event("REVIEW_IN_PROGRESS", "User Initiated")
    store.stacks.append(stack)
    return stack


def _discard_refused(store: Store, change_set: ChangeSet) -> None:
    """A change set refused synchronously leaves nothing behind, not even its review stack."""
    stack = change_set.stack
    del store.change_sets[change_set.change_set_id]
    if stack.status == "REVIEW_IN_PROGRESS" and not stack.template_body and stack in store.stacks \
            and not any(c.stack is stack for c in store.change_sets.values()):
        store.stacks.remove(stack)


def _fail_change_set(change_set: ChangeSet, reason: str) -> None:
    change_set.status = "FAILED"
    change_set.status_reason = reason
    change_set.execution_status = "UNAVAILABLE"


def resource_types_refused(template: dict, allowed: list[str] | None) -> str | None:
    """CreateChangeSet's ResourceTypes: every resource of the template must be of a listed type
    (exact, or a `Service::*` / `AWS::Service::*` / `Custom::*` wildcard). The reason mirrors the
    documented rule; AWS's exact wording was not observed."""
    if allowed is None:
        return None
    for logical_id, resource in sorted(template.get("Resources", {}).items()):
        resource_type = resource.get("Type", "")
        if not any(fnmatch.fnmatchcase(resource_type, pattern) for pattern in allowed):
            return (f"Resource {logical_id} of type {resource_type} is not one of the ResourceTypes this "
                    f"change set may work with: {', '.join(allowed)}")
    return None


def _evaluate_change_set(store: Store, change_set: ChangeSet, transform_error: str | None, previous: Stack | None) -> None:
    """What CloudFormation does asynchronously after CreateChangeSet returns."""
    if transform_error:
        _fail_change_set(change_set, transform_error)
        return
    refused = resource_types_refused(change_set.template, change_set.resource_types)
    if refused:
        _fail_change_set(change_set, refused)
        return
    stack = change_set.stack
    try:
        evaluation = Evaluation(store, stack, change_set.template, change_set.resolved_parameters, stack.resources, tokens=True)
        missing = evaluation.missing_imports()
        if missing:
            _fail_change_set(change_set, f"No export named {missing[0]} found.")
            return
        evaluation.order()
        if change_set.change_set_type == "IMPORT":
            from .imports import import_changes

            change_set.changes = import_changes(store, change_set, evaluation)
        else:
            creating = change_set.change_set_type == "CREATE"
            change_set.changes = compute_changes(store, stack, evaluation, change_set.tags, creating, change_set.parameters)
    except (tpl.TemplateError, ValidationError, ResourceFailure) as error:
        from .imports import ImportValidationError

        if isinstance(error, ImportValidationError):
            raise
        _fail_change_set(change_set, str(getattr(error, "message", error)))
        return
    if change_set.change_set_type == "UPDATE" and previous is not None:
        same_template = change_set.original_template == previous.original_template
        same_parameters = (change_set.parameters == previous.parameters
                           and change_set.ssm_resolved == previous.ssm_resolved)
        if same_template and same_parameters and change_set.tags == previous.tags and not change_set.changes:
            _fail_change_set(change_set, NO_CHANGES)
            return
    change_set.status = "CREATE_COMPLETE"
    change_set.execution_status = "AVAILABLE"


def find_change_set(store: Store, name: str, stack_name: str | None = None) -> ChangeSet:
    if name in store.change_sets:
        return store.change_sets[name]
    if name.startswith("arn:"):
        raise ChangeSetNotFound(f"ChangeSet [{name}] does not exist")
    if not stack_name:
        raise ValidationError("StackName must be specified if ChangeSetName is not specified as an ARN.")
    for change_set in store.change_sets.values():
        if change_set.name == name and stack_name in (change_set.stack.name, change_set.stack.stack_id) and not change_set.stack.deleted:
            return change_set
    raise ChangeSetNotFound(f"ChangeSet [{name}] does not exist")


def delete_change_set(store: Store, name: str, stack_name: str | None) -> None:
    with LOCK:
        change_set = find_change_set(store, name, stack_name)
        if change_set.execution_status == "EXECUTE_IN_PROGRESS":
            raise InvalidChangeSetStatus(f"Cannot delete ChangeSet in status {change_set.execution_status}")
        del store.change_sets[change_set.change_set_id]
        stack = change_set.stack
        if stack.status == "REVIEW_IN_PROGRESS" and not any(c.stack is stack for c in store.change_sets.values()):
            pass  # AWS keeps the REVIEW_IN_PROGRESS stack; DeleteStack removes it


# ---- execution -------------------------------------------------------------------------------
class Operation:
    """One stack operation (create, update, delete, rollback): resource steps and their events."""

    def __init__(self, store: Store, stack: Stack, token: str | None = None):
        self.store = store
        self.stack = stack
        self.token = token
        self.operation_id = str(uuid.uuid4())

    def request(self, record: ResourceRecord, properties: dict) -> Request:
        return Request(
            account_id=self.store.account_id, region=self.store.region, stack_name=self.stack.name,
            stack_id=self.stack.stack_id, logical_id=record.logical_id, resource_type=record.resource_type,
            properties=properties, physical_name=record.physical_name, stack_tags=dict(self.stack.tags),
        )

    def event(self, record: ResourceRecord, status: str, reason: str = "", properties: dict | None = None) -> None:
        record.status = status
        record.status_reason = reason
        record.last_updated = CLOCK.now()
        self.stack.add_event(record.logical_id, record.resource_type, status, reason, record.physical_id,
                             properties, self.token)

    def provider(self, record: ResourceRecord) -> Provider:
        provider = provider_for(record.resource_type, self.store.region)
        if provider is None:
            raise ResourceFailure(f"Unrecognized resource type {record.resource_type}")
        return provider

    def resolve(self, evaluation: Evaluation, record: ResourceRecord) -> tuple[dict, dict]:
        """(properties for the provider, properties as recorded) or ResourceFailure."""
        try:
            recorded = evaluation.properties(record.logical_id)
        except tpl.TemplateError as error:
            raise ResourceFailure(str(error)) from None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as error:
            raise ResourceFailure(f"Template error: could not evaluate the properties of {record.logical_id} ({error})") from error
        try:
            problem = schemas.validate_properties(record.resource_type, self.store.region, record.logical_id, recorded)
        except Exception:  # a schema the validator cannot read must not block the resource
            log.warning("emulator: could not validate %s against its schema", record.resource_type, exc_info=True)
            problem = None
        if problem:
            raise ResourceFailure(problem)
        return resolve_dynamic(self.store, recorded), recorded

    def create(self, evaluation: Evaluation, token_eval: Evaluation, logical_id: str, verb: str = "CREATE",
               replacing: ResourceRecord | None = None) -> ResourceRecord:
        """Creates one resource; returns the record (status *_FAILED on failure)."""
        body = evaluation.resources[logical_id]
        record = ResourceRecord(logical_id=logical_id, resource_type=body["Type"], definition=copy.deepcopy(body),
                                created_by_operation=self.operation_id)
        record.physical_name = generated_name(record.resource_type, self.stack.name, logical_id)
        self.stack.resources[logical_id] = record
        if replacing is not None:
            self.event(record, f"{verb}_IN_PROGRESS", "Requested update requires the creation of a new physical resource; hence creating one.")
        else:
            self.event(record, f"{verb}_IN_PROGRESS")
        try:
            provider = self.provider(record)
            properties, recorded = self.resolve(evaluation, record)
            request = self.request(record, properties)
            record.state = run_safely(lambda: provider.create(request), f"create {logical_id} ({record.resource_type})")
        except ResourceFailure as error:
            record.state = None
            self.event(record, f"{verb}_FAILED", str(error))
            return record
        record.properties = recorded
        record.token_properties = token_eval.token_properties(logical_id)
        self.event(record, f"{verb}_IN_PROGRESS", "Resource creation Initiated")
        self.event(record, f"{verb}_COMPLETE")
        return record

    def delete(self, record: ResourceRecord, policy: str, rollback_of_create: bool = False,
               retain_logical_ids: frozenset[str] = frozenset(), retain_created: bool = False) -> bool:
        """Deletes (or keeps, per policy) one resource; False when the deletion failed."""
        if not record.exists:
            if record.status not in ("DELETE_COMPLETE", "DELETE_SKIPPED"):
                self.event(record, "DELETE_COMPLETE" if record.status.endswith("FAILED") else "DELETE_SKIPPED")
            return True
        created_here = record.created_by_operation == self.operation_id or rollback_of_create
        keep = record.logical_id in retain_logical_ids or policy == "Retain" or (
            policy == "RetainExceptOnCreate" and not created_here)
        if policy == "Retain" and created_here and retain_created:
            keep = False  # ExecuteChangeSet RetainExceptOnCreate=true: this operation's new resources go
        if keep:
            self.event(record, "DELETE_SKIPPED")
            record.state = None
            return True
        self.event(record, "DELETE_IN_PROGRESS")
        provider = self.provider(record)
        request = self.request(record, resolve_dynamic_safe(self.store, record.properties))
        try:
            if policy == "Snapshot":
                run_safely(lambda: provider.snapshot(request, record.state), f"snapshot {record.logical_id}")
            else:
                run_safely(lambda: provider.delete(request, record.state), f"delete {record.logical_id}")
        except ResourceFailure as error:
            self.event(record, "DELETE_FAILED", str(error))
            return False
        record.state = None
        self.event(record, "DELETE_COMPLETE")
        return True


def resolve_dynamic_safe(store: Store, properties: dict) -> dict:
    try:
        return resolve_dynamic(store, properties)
    except ResourceFailure:
        return properties


def _policy_denies(stack: Stack, logical_id: str, resource_type: str, action: str) -> bool:
    if not stack.policy_body:
        return False
    try:
        statements = json.loads(stack.policy_body).get("Statement", [])
    except (json.JSONDecodeError, AttributeError):
        return False
    if isinstance(statements, dict):
        statements = [statements]

    def matches(patterns: Any, value: str) -> bool:
        patterns = [patterns] if isinstance(patterns, str) else (patterns or [])
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), value) for p in patterns)

    target = f"LogicalResourceId/{logical_id}"
    allowed = denied = False
    for statement in statements:
        action_ok = matches(statement["Action"], action) if "Action" in statement else not matches(statement.get("NotAction"), action)
        if "Resource" in statement:
            resource_ok = matches(statement["Resource"], target)
        else:
            resource_ok = not matches(statement.get("NotResource"), target)
        types = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("ResourceType")
        if types is not None and resource_type not in ([types] if isinstance(types, str) else types):
            resource_ok = False
        if action_ok and resource_ok:
            if statement.get("Effect") == "Deny":
                denied = True
            elif statement.get("Effect") == "Allow":
                allowed = True
    return denied or not allowed


def _policy_denial(logical_id: str, action: str) -> str:
    return f"Action denied by stack policy: Statement [#1] on resource [LogicalResourceId/{logical_id}] denies [{action}]"


def execute_change_set(store: Store, name: str, stack_name: str | None, disable_rollback: bool | None,
                       retain_except_on_create: bool | None, token: str | None = None) -> None:
    with LOCK:
        change_set = find_change_set(store, name, stack_name)
        if change_set.status != "CREATE_COMPLETE" or change_set.execution_status != "AVAILABLE":
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{change_set.status}]"
                if change_set.status != "CREATE_COMPLETE" else
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of [{change_set.execution_status}]")
        stack = change_set.stack
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        for other in store.change_sets.values():
            if other.stack is stack and other is not change_set:
                other.execution_status = "OBSOLETE"
        no_rollback = bool(disable_rollback) or change_set.on_stack_failure == "DO_NOTHING"
        stack.change_set_id = change_set.change_set_id
        try:
            if change_set.change_set_type == "CREATE":
                ok = _execute_create(store, stack, change_set, no_rollback, bool(retain_except_on_create), token)
            elif change_set.change_set_type == "IMPORT":
                from .imports import execute_import

                ok = execute_import(store, stack, change_set, token)
            else:
                ok = _execute_update(store, stack, change_set, no_rollback, bool(retain_except_on_create), token)
        except Exception as error:  # an emulator bug: the stack fails, the API call does not
            log.exception("emulator: executing %s failed", change_set.change_set_id)
            failed = {"CREATE": "CREATE_FAILED", "IMPORT": "IMPORT_ROLLBACK_FAILED"}.get(change_set.change_set_type, "UPDATE_ROLLBACK_FAILED")
            stack.stack_event(failed, f"Internal failure of the emulator ({type(error).__name__}: {error})", token)
            ok = False
        change_set.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"
        # "After you execute a change set, CloudFormation removes all change sets associated
        # with the stack" (the executed one included)
        for change_set_id in [cid for cid, cs in store.change_sets.items() if cs.stack is stack]:
            del store.change_sets[change_set_id]
        if not ok and change_set.change_set_type == "CREATE" and change_set.on_stack_failure == "DELETE":
            _delete(store, stack, frozenset(), token)


def _adopt_change_set(stack: Stack, change_set: ChangeSet) -> None:
    stack.template_body = change_set.template_body
    stack.template = change_set.template
    stack.original_template = change_set.original_template
    stack.parameters = dict(change_set.parameters)
    stack.resolved_parameters = copy.deepcopy(change_set.resolved_parameters)
    stack.ssm_resolved = dict(change_set.ssm_resolved)
    stack.tags = dict(change_set.tags)
    stack.capabilities = list(change_set.capabilities)
    stack.notification_arns = list(change_set.notification_arns)
    stack.rollback_configuration = copy.deepcopy(change_set.rollback_configuration)
    stack.role_arn = change_set.role_arn
    stack.description = change_set.template.get("Description")


def _execute_create(store: Store, stack: Stack, change_set: ChangeSet, no_rollback: bool,
                    retain_created: bool, token: str | None) -> bool:
    _adopt_change_set(stack, change_set)
    stack.disable_rollback = no_rollback
    op = Operation(store, stack, token)
    stack.stack_event("CREATE_IN_PROGRESS", "User Initiated", token)
    failed: str | None = None
    reason = ""
    try:
        evaluation = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources)
        tokens = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources, tokens=True)
        order = evaluation.order()
    except tpl.TemplateError as error:
        order, failed, reason = [], stack.name, str(error)
    for logical_id in order:
        record = op.create(evaluation, tokens, logical_id)
        if not record.exists:
            failed = logical_id
            break
    outputs: list[dict] = []
    if failed is None:
        outputs, problem = _evaluated_outputs(store, stack, evaluation)
        if problem:
            failed, reason = stack.name, problem
    if failed is None:
        stack.outputs = outputs
        stack.imports = evaluation.imports()
        stack.stack_event("CREATE_COMPLETE", token=token)
        return True
    why = reason if failed == stack.name else f"The following resource(s) failed to create: [{failed}]."
    if no_rollback:
        stack.stack_event("CREATE_FAILED", why, token)
        stack.imports = evaluation.imports() if order else set()
        return False
    stack.stack_event("ROLLBACK_IN_PROGRESS", f"{why} Rollback requested by user.", token)
    ok = _delete_resources(op, stack, evaluation_order(stack), rollback_of_create=True, retain_created=retain_created)
    stack.outputs = []
    stack.imports = set()
    stack.stack_event("ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED",
                      "" if ok else "The following resource(s) failed to delete during rollback.", token)
    return False


def evaluation_order(stack: Stack) -> list[str]:
    """The stack's existing resources in creation order (dependencies of the current template)."""
    resources = stack.template.get("Resources") or {}
    present = {k: v for k, v in resources.items() if k in stack.resources}
    try:
        order = tpl.creation_order(present, {name: True for name in (stack.template.get("Conditions") or {})})
    except tpl.TemplateError:
        order = list(present)
    extra = [k for k in stack.resources if k not in order]
    return extra + order


def _delete_resources(op: Operation, stack: Stack, order: list[str], rollback_of_create: bool = False,
                      retain: frozenset[str] = frozenset(), retain_created: bool = False) -> bool:
    ok = True
    for logical_id in reversed(order):
        record = stack.resources.get(logical_id)
        if record is None:
            continue
        policy = record.deletion_policy()
        if rollback_of_create and policy == "Snapshot":
            policy = "Delete"
        if not op.delete(record, policy, rollback_of_create, retain, retain_created):
            ok = False
    return ok


# RollbackTrigger.Type -> whether the alarm it names is a composite alarm (CloudFormation API
# reference, RollbackTrigger: "Specify either AWS::CloudWatch::Alarm or AWS::CloudWatch::CompositeAlarm").
ROLLBACK_TRIGGER_TYPES = {"AWS::CloudWatch::Alarm": False, "AWS::CloudWatch::CompositeAlarm": True}


def _check_rollback_trigger_types(configuration: dict) -> None:
    """Refused synchronously: a trigger whose Type is neither alarm type."""
    for trigger in configuration.get("RollbackTriggers") or []:
        if trigger.get("Type") not in ROLLBACK_TRIGGER_TYPES:
            raise ValidationError(f"Rollback trigger {trigger.get('Arn', '')} has type {trigger.get('Type')!r}: "
                                  f"specify either {' or '.join(ROLLBACK_TRIGGER_TYPES)}")


def _rollback_trigger_problem(store: Store, stack: Stack) -> str | None:
    """Rollback triggers: each must be an existing CloudWatch alarm of the trigger's Type (a metric
    alarm for AWS::CloudWatch::Alarm, a composite alarm for AWS::CloudWatch::CompositeAlarm); one
    in ALARM state rolls the operation back (checked once the resources are done: operations here
    take no time, so the monitoring period is that instant)."""
    from moto.cloudwatch.models import cloudwatch_backends

    for trigger in (stack.rollback_configuration or {}).get("RollbackTriggers", []):
        arn = trigger.get("Arn", "")
        parts = arn.split(":")
        if len(parts) < 7 or parts[2] != "cloudwatch" or not arn.split(":alarm:", 1)[-1]:
            return f"Rollback trigger {arn} is not a CloudWatch alarm ARN"
        alarm = cloudwatch_backends[parts[4]][parts[3]].alarms.get(arn.split(":alarm:", 1)[1])
        if alarm is None:
            return f"Rollback trigger {arn} does not exist"
        composite = alarm.rule is not None  # moto keeps composite alarms beside metric alarms, with their rule
        if ROLLBACK_TRIGGER_TYPES.get(trigger.get("Type", "")) is not composite:
            actual = next(kind for kind, is_composite in ROLLBACK_TRIGGER_TYPES.items() if is_composite is composite)
            return f"Rollback trigger {arn} is of type {actual}, not {trigger.get('Type')}"
        if alarm.state_value == "ALARM":
            return f"Rolling back because alarm {arn} is in ALARM state"
    return None


def _evaluated_outputs(store, stack, evaluation) -> tuple[list[dict], str | None]:
    """The stack's outputs once every resource exists, or why the operation fails on them
    (an export another stack owns, a rollback trigger that is not an alarm, a template error)."""
    try:
        outputs = evaluation.outputs()
    except (tpl.TemplateError, ResourceFailure) as error:
        return [], f"Template error in Outputs: {error}"
    return outputs, _export_conflicts(store, stack, outputs) or _rollback_trigger_problem(store, stack)


def _export_conflicts(store: Store, stack: Stack, outputs: list[dict]) -> str | None:
    """Duplicate export names (another stack exports it) and in-use exports removed or changed."""
    others = {name: (owner, value) for name, (owner, value) in store.exports().items() if owner is not stack}
    for output in outputs:
        name = output.get("ExportName")
        if name and name in others:
            return f"Export with name {name} is already exported by stack {others[name][0].name}"
    new = {o["ExportName"]: o["OutputValue"] for o in outputs if o.get("ExportName")}
    for name, value in stack.exports().items():
        users = [s.name for s in store.importers(name) if s is not stack]
        if not users:
            continue
        if name not in new:
            return f"Cannot delete export {name} as it is in use by {users[0]}."
        if new[name] != value:
            return f"Cannot update export {name} as it is in use by {users[0]}."
    return None


# What an update may change on the stack itself, restored as it was when the update rolls back.
ROLLBACK_FIELDS = ("template_body", "template", "original_template", "parameters", "resolved_parameters",
                   "ssm_resolved", "tags", "outputs", "imports", "capabilities", "notification_arns",
                   "rollback_configuration", "description", "role_arn")
# (logical id, kind, previous record) of each resource an update touched, for its rollback:
# kind is add, modify or replace
Touched = list[tuple[str, str, ResourceRecord | None]]


def _execute_update(store: Store, stack: Stack, change_set: ChangeSet, no_rollback: bool,
                    retain_created: bool, token: str | None) -> bool:
    saved = {name: getattr(stack, name) for name in ROLLBACK_FIELDS}
    old_records = dict(stack.resources)
    old_order = evaluation_order(stack)
    _adopt_change_set(stack, change_set)
    op = Operation(store, stack, token)
    stack.last_updated_time = CLOCK.now()
    stack.stack_event("UPDATE_IN_PROGRESS", "User Initiated", token)
    touched: Touched = []
    evaluation, failed, reason, removed = _update_resources(store, stack, op, change_set, old_records, touched)
    outputs: list[dict] = []
    if failed is None and evaluation is not None:
        outputs, problem = _evaluated_outputs(store, stack, evaluation)
        if problem:
            failed, reason = stack.name, problem
        else:
            _complete_update(stack, op, evaluation, outputs, touched, old_records, old_order, removed, token)
            return True
    if failed == stack.name or reason:
        why = reason
    else:
        verb = "create" if any(t[0] == failed and t[1] == "add" for t in touched) else "update"
        why = f"The following resource(s) failed to {verb}: [{failed}]."
    if no_rollback:
        stack.stack_event("UPDATE_FAILED", why, token)
        return False
    stack.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", why if failed == stack.name else f"{why} ", token)
    for key, value in saved.items():
        setattr(stack, key, value)
    _roll_back_update(store, stack, op, touched, retain_created, token)
    return False


def _update_resources(store: Store, stack: Stack, op: Operation, change_set: ChangeSet,
                      old_records: dict[str, ResourceRecord], touched: Touched,
                      ) -> tuple[Evaluation | None, str | None, str, list[str]]:
    """Creates and updates the resources in dependency order, stopping at the first failure:
    (the evaluation, what failed (a logical id, the stack's name, or None), why, what the update removes)."""
    try:
        evaluation = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources)
        tokens = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources, tokens=True)
        order = evaluation.order()
    except tpl.TemplateError as error:
        removed = [k for k, r in old_records.items() if r.exists]
        failed, reason = _deletion_denied(stack, op, old_records, removed) or (stack.name, str(error))
        return None, failed, reason, removed
    removed = [k for k, r in old_records.items() if r.exists and k not in order]
    denied = _deletion_denied(stack, op, old_records, removed)
    if denied:
        return evaluation, denied[0], denied[1], removed
    listed = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in change_set.changes}
    for logical_id in order:
        previous = old_records.get(logical_id)
        if previous is None or not previous.exists:
            record = op.create(evaluation, tokens, logical_id)
            touched.append((logical_id, "add", previous))
            if not record.exists:
                return evaluation, logical_id, "", removed
            continue
        outcome = _update_resource(op, evaluation, tokens, previous, listed.get(logical_id))
        if outcome is None:
            continue
        kind, ok = outcome
        touched.append((logical_id, kind, previous))
        if not ok:
            return evaluation, logical_id, "", removed
    return evaluation, None, "", removed


def _deletion_denied(stack: Stack, op: Operation, old_records: dict[str, ResourceRecord],
                     removed: list[str]) -> tuple[str, str] | None:
    """(logical id, reason) of the first removal the stack policy denies, with its event."""
    for logical_id in removed:
        record = old_records[logical_id]
        if _policy_denies(stack, logical_id, record.resource_type, "Update:Delete"):
            reason = _policy_denial(logical_id, "Update:Delete")
            op.event(record, "UPDATE_FAILED", reason)
            return logical_id, reason
    return None


def _complete_update(stack: Stack, op: Operation, evaluation: Evaluation, outputs: list[dict], touched: Touched,
                     old_records: dict[str, ResourceRecord], old_order: list[str], removed: list[str],
                     token: str | None) -> None:
    """The cleanup of a successful update: replaced resources' old copies, then removed resources."""
    stack.outputs = outputs
    stack.imports = evaluation.imports()
    stack.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", token=token)
    for _logical_id, kind, previous in reversed(touched):
        if kind == "replace" and previous is not None:
            op.delete(previous, previous.update_replace_policy())
    for logical_id in reversed(old_order):
        if logical_id in removed:
            record = old_records[logical_id]
            op.delete(record, record.deletion_policy())
            if not record.exists:
                stack.resources.pop(logical_id, None)
    stack.stack_event("UPDATE_COMPLETE", token=token)


def _roll_back_update(store: Store, stack: Stack, op: Operation, touched: Touched, retain_created: bool,
                      token: str | None) -> None:
    """Puts back what the update touched (the stack's own fields are restored already), then
    deletes what it created."""
    ok = True
    old_evaluation = Evaluation(store, stack, stack.template, stack.resolved_parameters, stack.resources)
    cleanup: list[ResourceRecord] = []
    for logical_id, kind, previous in reversed(touched):
        current = stack.resources.get(logical_id)
        if kind == "add":
            if current is not None:
                cleanup.append(current)
            if previous is not None:
                stack.resources[logical_id] = previous
            else:
                stack.resources.pop(logical_id, None)
        elif kind == "replace":
            if current is not None and current is not previous:
                cleanup.append(current)
            stack.resources[logical_id] = previous
            op.event(previous, "UPDATE_COMPLETE")
        elif kind == "modify":
            stack.resources[logical_id] = previous
            if not _revert_resource(op, old_evaluation, previous, current):
                ok = False
    if not ok:
        stack.stack_event("UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update during rollback.", token)
        return
    stack.stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", token=token)
    for record in cleanup:
        policy = record.deletion_policy()
        if not op.delete(record, policy if policy != "RetainExceptOnCreate" else "Delete", True, retain_created=retain_created):
            ok = False
    stack.stack_event("UPDATE_ROLLBACK_COMPLETE" if ok else "UPDATE_ROLLBACK_FAILED", token=token)


def _update_resource(op: Operation, evaluation: Evaluation, tokens: Evaluation, previous: ResourceRecord,
                     listed: dict | None) -> tuple[str, bool] | None:
    """Updates or replaces one existing resource if anything about it changed; None if nothing did."""
    stack = op.stack
    logical_id = previous.logical_id
    body = evaluation.resources[logical_id]
    try:
        properties, recorded = op.resolve(evaluation, previous)
    except ResourceFailure as error:
        current = _successor(previous, body)
        stack.resources[logical_id] = current
        op.event(current, "UPDATE_FAILED", str(error))
        return "modify", False
    new_tokens = tokens.token_properties(logical_id)
    if recorded == previous.properties and new_tokens == previous.token_properties and not listed \
            and (previous.definition.get("Metadata") or {}) == (body.get("Metadata") or {}):
        previous.definition = copy.deepcopy(body)
        return None
    replace = any(schemas.replacement_for(previous.resource_type, op.store.region, prop, previous.properties, recorded) == "Always"
                  for prop in set(previous.properties) | set(recorded))
    action = "Update:Replace" if replace else "Update:Modify"
    if _policy_denies(stack, logical_id, previous.resource_type, action):
        current = _successor(previous, body)
        stack.resources[logical_id] = current
        op.event(current, "UPDATE_FAILED", _policy_denial(logical_id, action))
        return "modify", False
    provider = op.provider(previous)
    if replace:
        name_property = _custom_name(previous.resource_type, previous.properties)
        if name_property and previous.properties.get(name_property) == recorded.get(name_property):
            current = _successor(previous, body)
            stack.resources[logical_id] = current
            op.event(current, "UPDATE_FAILED",
                     f"CloudFormation cannot update a stack when a custom-named resource requires replacing. "
                     f"Rename {previous.properties.get(name_property)} and update the stack again.")
            return "modify", False
        record = op.create(evaluation, tokens, logical_id, verb="UPDATE", replacing=previous)
        return "replace", record.exists
    current = _successor(previous, body)
    stack.resources[logical_id] = current
    op.event(current, "UPDATE_IN_PROGRESS")
    request = op.request(current, properties)
    try:
        current.state = run_safely(lambda: provider.update(request, previous.state, resolve_dynamic_safe(op.store, previous.properties)),
                                   f"update {logical_id}")
    except ResourceFailure as error:
        op.event(current, "UPDATE_FAILED", str(error))
        return "modify", False
    current.properties = recorded
    current.token_properties = new_tokens
    op.event(current, "UPDATE_COMPLETE")
    return "modify", True


def _successor(previous: ResourceRecord, body: dict) -> ResourceRecord:
    return ResourceRecord(
        logical_id=previous.logical_id, resource_type=previous.resource_type, status=previous.status,
        state=previous.state, properties=previous.properties, token_properties=previous.token_properties,
        definition=copy.deepcopy(body), physical_name=previous.physical_name,
        created_by_operation=previous.created_by_operation, last_updated=previous.last_updated,
    )


def _revert_resource(op: Operation, evaluation: Evaluation, previous: ResourceRecord, current: ResourceRecord | None) -> bool:
    op.event(previous, "UPDATE_IN_PROGRESS")
    if current is None or current.state is None or current.properties == previous.properties:
        if current is not None and current.state is not None:
            previous.state = current.state
        op.event(previous, "UPDATE_COMPLETE")
        return True
    provider = op.provider(previous)
    request = op.request(previous, resolve_dynamic_safe(op.store, previous.properties))
    try:
        previous.state = run_safely(lambda: provider.update(request, current.state, current.properties), f"revert {previous.logical_id}")
    except ResourceFailure as error:
        op.event(previous, "UPDATE_FAILED", str(error))
        return False
    op.event(previous, "UPDATE_COMPLETE")
    return True


def _custom_name(resource_type: str, properties: dict) -> str | None:
    """The property naming the resource, when the template sets it (replacement then fails)."""
    from .providers import moto_model

    model = moto_model(resource_type)
    candidates = []
    if model is not None and model.cloudformation_name_type():
        candidates.append(model.cloudformation_name_type())
    schema = schemas.schema_for(resource_type, "us-east-1") or {}
    for pointer in schema.get("primaryIdentifier", []) or []:
        candidates.append(pointer.rsplit("/", 1)[-1])
    short = resource_type.rsplit("::", 1)[-1]
    candidates += [f"{short}Name", "Name"]
    for name in candidates:
        if name in properties and name in (schema.get("properties") or {}) and schemas.is_create_only(resource_type, "us-east-1", name):
            return name
    return None


# ---- deletion --------------------------------------------------------------------------------
def delete_stack(store: Store, name: str, retain: list[str], token: str | None = None) -> None:
    with LOCK:
        stack = store.find_stack(name, include_deleted_by_id=True)
        if stack is None or stack.deleted:
            return  # deleting a stack that does not exist succeeds
        if stack.termination_protection:
            raise ValidationError(f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled")
        if retain and stack.status != "DELETE_FAILED":
            raise ValidationError(f"Invalid operation on stack [{stack.stack_id}]: RetainResources can only be specified when the stack is in the DELETE_FAILED state")
        _delete(store, stack, frozenset(retain), token)


def _delete(store: Store, stack: Stack, retain: frozenset[str], token: str | None) -> bool:
    stack.stack_event("DELETE_IN_PROGRESS", "User Initiated", token)
    for export_name in stack.exports():
        users = [s.name for s in store.importers(export_name) if s is not stack]
        if users:
            stack.stack_event("DELETE_FAILED", f"Export {export_name} cannot be deleted as it is in use by {users[0]}", token)
            return False
    op = Operation(store, stack, token)
    ok = _delete_resources(op, stack, evaluation_order(stack), retain=retain)
    if not ok:
        failed = [k for k, r in stack.resources.items() if r.status == "DELETE_FAILED"]
        stack.stack_event("DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(failed)}]. ", token)
        return False
    stack.outputs = []
    stack.imports = set()
    stack.stack_event("DELETE_COMPLETE", token=token)
    stack.deleted = True
    stack.deletion_time = CLOCK.now()
    for change_set_id in [cid for cid, cs in store.change_sets.items() if cs.stack is stack]:
        del store.change_sets[change_set_id]
    return True


# ---- continue update rollback -------------------------------------------------------------------
def continue_update_rollback(store: Store, name: str, skip: list[str], token: str | None = None) -> None:
    with LOCK:
        stack = store.find_stack(name)
        if stack is None or stack.deleted:
            raise ValidationError(f"Stack [{name}] does not exist")
        if stack.status != "UPDATE_ROLLBACK_FAILED":
            raise ValidationError(f"Stack {stack.stack_id} is in {stack.status} state and can not continue update rollback.")
        stack.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated", token)
        for logical_id, record in stack.resources.items():
            if record.status.endswith("FAILED"):
                stack.add_event(logical_id, record.resource_type, "UPDATE_COMPLETE",
                                "Resource skipped during UpdateRollback" if logical_id in skip else "",
                                record.physical_id, token=token)
                record.status = "UPDATE_COMPLETE"
        stack.stack_event("UPDATE_ROLLBACK_COMPLETE", token=token)
