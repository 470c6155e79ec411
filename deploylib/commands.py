"""The commands: preflight, plan, deploy, bootstrap, execute, destroy, recover, adopt (status and
outputs, which only read, are in status.py).

Each returns a process exit code. 0: done; 1: failed or blocked (a guard, a stack state, a
refused plan); 2: refused before doing anything (preflight, prod destroy without --force, no
confirmation); 130: interrupted (Ctrl-C), after the summary of what ran.
"""
from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .adopt import create_import_change_set, existing_named_resources
from .artifacts import check_template_delivery
from .aws import Context, error_message
from .cli import Options, confirm, print_summary
from .deployed import write_and_publish
from .destroy import Destroyer
from .errors import INTERRUPTED_EXIT, UsageError
from .executor import Executor
from .lifecycle import effective_parameters
from .manifest import Manifest, StackSpec
from .output import Printer
from .planfile import load_saved_plan, plan_from_saved, provenance_problems, saved_plan_problem
from .planner import PlanInterrupted, Planner, RunOptions, plan_environment, where
from .plans import NOTHING_TO_RUN, Action, Label, StackPlan
from .preflight import Scope, preflight_of, run_preflight
from .preflight import render as render_preflight
from .provenance import gather
from .recovery import Recovery
from .scheduler import RunResult, reverse_graph, run_graph
from .stacks import describe_stack, format_event, wait_for_stack
from .status import cmd_outputs, cmd_status


def _planner(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> Planner:
    return Planner(ctx, manifest, printer, RunOptions(options.allow_replace, options.rollback_triggers))


def preflight_passes(ctx: Context, manifest: Manifest, printer: Printer, options: Options, scope: Scope) -> bool:
    """Runs the read-only account checks of `scope` and prints their table."""
    report = run_preflight(ctx, preflight_of(manifest), scope,
                           fix=options.fix, configured_region=options.configured_region)
    printer.line(render_preflight(report))
    return report.ok


def check_build(manifest: Manifest) -> None:
    """Local checks before any AWS call: every template matches the manifest's hash, and every
    template that must go by TemplateBody fits in it (ManifestError otherwise)."""
    for spec in manifest.stacks:
        spec.template_bytes()
    check_template_delivery(manifest)


# ---- plan / deploy / execute -------------------------------------------------------------
def _report_blocked(printer: Printer, plans: list[StackPlan]) -> bool:
    blocked = [p for p in plans if p.blocked]
    for plan in blocked:
        label = Label.FAILED if plan.action == Action.FAILED else Label.BLOCKED
        printer.line(f"{label.upper()} {plan.spec.name}: {plan.note or '; '.join(f.message for f in plan.findings)}")
    return bool(blocked)


def _planned(ctx: Context, manifest: Manifest, printer: Printer, options: Options, scope: Scope,
             stacks: list[StackSpec] | None = None) -> tuple[Planner, list[StackPlan]] | int:
    """Preflight, then the plan: (planner, plans), or the exit code that ends the command."""
    check_build(manifest)
    if not preflight_passes(ctx, manifest, printer, options, scope):
        printer.line("refused by preflight: nothing planned, nothing executed")
        return 2
    planner = _planner(ctx, manifest, printer, options)
    if not options.rollback_triggers:
        printer.line("rollback triggers OFF for this run (--no-rollback-triggers): a firing alarm will not roll it back")
    try:
        return planner, plan_environment(planner, options.max_parallel, stacks)
    except PlanInterrupted as interrupted:
        printer.line(f"\nplan interrupted: nothing executed; change sets already created ({len(interrupted.args[0])} "
                     "stack(s)) are replaced by the next plan")
        return INTERRUPTED_EXIT


def cmd_plan(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    planned = _planned(ctx, manifest, printer, options, Scope.PLAN)
    if isinstance(planned, int):
        return planned
    _, plans = planned
    if _report_blocked(printer, plans):
        return 1
    printer.line(f"nothing executed; review the change sets, then `make execute ENV={manifest.environment}`")
    return 0


def _deploy(ctx: Context, manifest: Manifest, printer: Printer, options: Options,
            stacks: list[StackSpec] | None = None) -> int:
    planned = _planned(ctx, manifest, printer, options, Scope.DEPLOY, stacks)
    if isinstance(planned, int):
        return planned
    planner, plans = planned
    if _report_blocked(printer, plans):
        printer.line("deploy stopped before execution: nothing executed")
        return 1
    if not all(p.action in NOTHING_TO_RUN for p in plans) and not confirm(printer, options, f"Deploy {where(manifest)}?"):
        return 2
    return _run(ctx, manifest, printer, Executor(planner), {p.spec.name: p for p in plans}, options)


def cmd_deploy(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    return _deploy(ctx, manifest, printer, options)


def cmd_bootstrap(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    """Only the bootstrap (artifacts) stack: the bucket and the image repository exist after it,
    so the image can be pushed before the first full deploy."""
    return _deploy(ctx, manifest, printer, options, stacks=[manifest.bootstrap_stack])


def _run(ctx: Context, manifest: Manifest, printer: Printer, executor: Executor, plans: dict[str, StackPlan],
         options: Options, reviewed_templates: Mapping[str, str] | None = None) -> int:
    result = executor.run(plans, options.max_parallel, reviewed_templates)
    print_summary(printer, result)
    if any(o.label == Label.NEEDS_PLAN for o in result.outcomes.values()):
        printer.line(f"stacks whose template is not the reviewed one need a new review: run `make plan ENV={manifest.environment}`")
    published = publish_resource_manifest(ctx, manifest, printer, result)
    if result.interrupted:
        return INTERRUPTED_EXIT
    return 0 if result.ok and published else 1


def publish_resource_manifest(ctx: Context, manifest: Manifest, printer: Printer, result: RunResult) -> bool:
    """deployed.json after a run; False (the command fails) when it could not be read back or published."""
    try:
        write_and_publish(ctx, manifest, printer, result)
        return True
    except ClientError as error:
        printer.line(f"error: resource manifest not complete or not published: {error_message(error) or error}")
    except (BotoCoreError, ResponseParserError, OSError) as error:
        printer.line(f"error: resource manifest not complete or not published: {str(error).splitlines()[0]}")
    return False


def cmd_execute(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    saved = load_saved_plan(manifest)
    # the review's commit, build, account and region first, then each stack's state
    refusals = [f"REFUSED: {difference}" for difference in provenance_problems(manifest, gather(ctx, manifest))]
    refused = {spec.name: problem for spec in manifest.stacks
               if (problem := saved_plan_problem(ctx, manifest, spec, saved.get(spec.name)))}
    refusals += [f"REFUSED {name}: {problem}" for name, problem in sorted(refused.items())]
    if refusals:
        for line in refusals:
            printer.line(line)
        printer.line(f"nothing executed: run `make plan ENV={manifest.environment}` and review again")
        return 1
    if not preflight_passes(ctx, manifest, printer, options, Scope.DEPLOY):
        printer.line("refused by preflight: nothing executed")
        return 2
    planner = _planner(ctx, manifest, printer, options)
    plans = {spec.name: plan_from_saved(ctx, spec, saved[spec.name]) for spec in manifest.stacks}
    for plan in plans.values():
        plan.findings = planner.guard(plan)  # imports may have appeared since the plan
    if _report_blocked(printer, list(plans.values())):
        printer.line("nothing executed")
        return 1
    reviewed_templates = {name: str(entry["sha256"]) for name, entry in saved.items()}
    return _run(ctx, manifest, printer, Executor(planner), plans, options, reviewed_templates)


# ---- destroy / recover / adopt -------------------------------------------------------------------
def cmd_destroy(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    if manifest.environment == "prod" and not options.force:
        printer.line("refusing to destroy prod without --force (FORCE=1)")
        return 2
    if not preflight_passes(ctx, manifest, printer, options, Scope.DESTROY):
        printer.line("refused by preflight: nothing deleted")
        return 2
    if not confirm(printer, options, f"Delete every stack of {where(manifest)}?"):
        return 2
    destroyer = Destroyer(ctx, manifest, printer)
    result = run_graph(reverse_graph(manifest.dependencies()), lambda name: destroyer.delete(manifest.by_name[name]),
                       options.max_parallel, ctx.stop)
    print_summary(printer, result)
    if destroyer.retained:
        printer.line("\nretained resources that remain (delete them by hand if they must go):")
        for line in sorted(destroyer.retained):
            printer.line(f"  {line}")
    if result.interrupted:
        return INTERRUPTED_EXIT
    return 0 if result.ok else 1


def _one_stack(manifest: Manifest, options: Options) -> StackSpec:
    if not options.stack:
        raise UsageError("--stack is required")
    return manifest.find(options.stack)


def cmd_recover(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    spec = _one_stack(manifest, options)
    if not preflight_passes(ctx, manifest, printer, options, Scope.RECOVER):
        return 2
    recovery = Recovery(ctx, manifest, printer, lambda question: confirm(printer, options, question), options.force_delete)
    return recovery.run(spec)


def cmd_adopt(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    """Creates a stack that does not exist yet from the named resources an earlier deployment
    kept (IMPORT change set); `make deploy` then brings it to its full template."""
    spec = _one_stack(manifest, options)
    if not preflight_passes(ctx, manifest, printer, options, Scope.RECOVER):
        return 2
    deployed = describe_stack(ctx, spec.region, spec.name)
    if deployed and deployed["StackStatus"] != "REVIEW_IN_PROGRESS":
        printer.line(f"{spec.name} exists ({deployed['StackStatus']}): adopt only creates a stack from kept resources")
        return 1
    existing = existing_named_resources(ctx, spec)
    if not existing:
        printer.line(f"no kept resource holds a name {spec.name} creates: nothing to adopt, `make deploy` creates it")
        return 0
    unusable = [item for item in existing if item.problem]
    for item in unusable:
        printer.line(f"cannot adopt {item.describe()}")
    if unusable:
        return 1
    printer.line(f"{spec.name} will be created from {len(existing)} kept resource(s):")
    for item in existing:
        printer.line(f"  {item.describe()}")
    if not confirm(printer, options, f"Import them into {spec.name}?"):
        return 2
    described = create_import_change_set(ctx, manifest, spec, existing, effective_parameters(spec, None))
    ctx.cfn(spec.region).call("execute_change_set", ChangeSetName=described["ChangeSetId"])
    status, _ = wait_for_stack(ctx, spec.region, described["StackId"], spec.timeout_minutes,
                               on_event=lambda event: printer.stack(spec.name, format_event(event)))
    if status != "IMPORT_COMPLETE":
        printer.line(f"{spec.name} ended {status}")
        return 1
    printer.line(f"{spec.name} holds its kept resources again: `make deploy ENV={manifest.environment}` completes it")
    return 0


# ---- preflight / status / outputs ---------------------------------------------------------------
def cmd_preflight(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    return 0 if preflight_passes(ctx, manifest, printer, options, Scope.PREFLIGHT) else 2


COMMANDS = {
    "preflight": cmd_preflight, "plan": cmd_plan, "deploy": cmd_deploy, "bootstrap": cmd_bootstrap,
    "execute": cmd_execute, "destroy": cmd_destroy, "recover": cmd_recover, "adopt": cmd_adopt,
    "status": cmd_status, "outputs": cmd_outputs,
}
