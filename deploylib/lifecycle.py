"""The deploy-managed StackLifecycle parameter (platform_contracts; declared by templates_src.common).

A stack is `creating` on its first create and `established` once that create has succeeded.
What hangs on it is decided in the templates: deletion protection (off while a failed create
must still be able to roll back) and the ECS service's DesiredCount (set only on the first
create). deploy.py passes the value matching the stack's state, switches a newly created stack
to `established` right after its create succeeds, and back to `creating` before `destroy`
deletes an environment that keeps its data (deletion protection would stop the deletion).
"""
from __future__ import annotations

from platform_contracts import LIFECYCLE_CREATING, LIFECYCLE_ESTABLISHED

from .changesets import ChangeSet
from .manifest import StackSpec
from .shapes import Stack
from .stacks import UPDATABLE_STATUSES

CREATING = LIFECYCLE_CREATING
ESTABLISHED = LIFECYCLE_ESTABLISHED


def lifecycle_value(spec: StackSpec, deployed: Stack | None) -> str | None:
    """The value for a plan of `spec` given its deployed stack; None when it has no lifecycle."""
    if not spec.lifecycle_parameter:
        return None
    exists = deployed is not None and deployed["StackStatus"] in UPDATABLE_STATUSES
    return ESTABLISHED if exists else CREATING


def with_lifecycle(spec: StackSpec, value: str | None) -> dict[str, str]:
    """The manifest's parameters with the lifecycle parameter set to `value`."""
    if not spec.lifecycle_parameter or value is None:
        return dict(spec.parameters)
    return {**spec.parameters, spec.lifecycle_parameter: value}


def effective_parameters(spec: StackSpec, deployed: Stack | None) -> dict[str, str]:
    return with_lifecycle(spec, lifecycle_value(spec, deployed))


def deployed_lifecycle(spec: StackSpec, deployed: Stack | None) -> str | None:
    for parameter in (deployed or {}).get("Parameters", []):
        if parameter["ParameterKey"] == spec.lifecycle_parameter:
            return str(parameter.get("ParameterValue", ""))
    return None


def unexpected_changes(change_set: ChangeSet) -> list[str]:
    """A lifecycle switch may only modify resources in place: anything it would add, remove or
    replace means the template hangs more on the parameter than it should."""
    problems = []
    for wrapper in change_set.changes:
        change = wrapper.get("ResourceChange", {})
        action, replacement = change.get("Action"), change.get("Replacement", "False")
        if action != "Modify" or replacement in ("True", "Conditional"):
            what = "replace" if action == "Modify" else {"Add": "add", "Remove": "remove"}.get(action, str(action).lower())
            problems.append(f"{what} {change.get('LogicalResourceId')} ({change.get('ResourceType')})")
    return problems
