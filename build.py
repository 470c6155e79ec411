#!/usr/bin/env python3
"""Build the CloudFormation templates, function packages and manifest of each environment.

    python build.py                 # dev, staging and prod
    python build.py --env staging   # one environment
    python build.py --env dev --only network --no-lint   # while working on one layer

For each environment it writes, under build/<env>/:
  <layer>.json         one template per stack (sorted keys, so the same inputs give the same bytes)
  artifacts/*.zip      one reproducible zip per function, named by its content hash
  manifest.json        what deploy.py reads: stacks, order, exports, imports, artifacts (docs/manifest.md)

Then it checks, and fails with every problem listed: each Fn::ImportValue names an export of
another stack of the environment, the stack graph has no cycle, no export name repeats, every
template is within CloudFormation's limits (and says which limit it nears), and cfn-lint
(informational rules on) has no finding. A template whose bytes did not change since cfn-lint
last passed it is not linted again (build/<env>/.lint-cache.json), which keeps a no-change
rebuild fast (cfn-lint is not even imported); the cache key includes the cfn-lint version.
One process pool lints for the whole build: every environment is rendered first, each template
queued for cfn-lint as soon as it is rendered, then the environments are written and checked in
order while the workers lint, and the first one with a problem stops the build.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from platform_contracts import (
    IAM_CAPABILITY_TYPES,
    IAM_NAME_PROPERTIES,
    LIFECYCLE_PARAMETER,
    STATEFUL_TYPES,
    DependencyCycle,
    dependency_order,
)
from platform_contracts import TEMPLATE_BODY_LIMIT_BYTES as BODY_LIMIT_BYTES
from platform_contracts import TEMPLATE_URL_LIMIT_BYTES as URL_LIMIT_BYTES
from templates_src.common import stack_name, standard_tags
from templates_src.config import DEFAULT_BUILD, ENVIRONMENTS, PARAMETERS_DIR, ConfigError, EnvironmentConfig, load_environments
from templates_src.delivery import LAYER as DELIVERY_LAYER
from templates_src.delivery import bound_every_role, service_role_arn_literal, unknown_resource_types
from templates_src.function_catalog import DeclarationError, load_functions
from templates_src.layers import LAYERS, Layer, layers_for
from templates_src.messaging import QueueError
from templates_src.packaging import artifact_key, package
from templates_src.requirements import account_requirements, named_resources

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
MANIFEST_FORMAT = 1

# CloudFormation quotas (per template; the size ones in platform_contracts) and the share of one at which the build says so.
RESOURCE_LIMIT = 500
OUTPUT_LIMIT = 200
PARAMETER_LIMIT = 200
NEAR_LIMIT_SHARE = 0.8



class BuildError(Exception):
    """The build cannot produce a trustworthy environment; str() lists every problem."""


@dataclass
class StackBuild:
    layer: Layer
    name: str
    region: str
    body: bytes
    template: dict
    exports: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


# ---------------------------------------------------------------------------------------------
# Template analysis
# ---------------------------------------------------------------------------------------------


def find_imports(node) -> set[str]:
    """Every export name read with Fn::ImportValue. An ImportValue whose argument is not a
    literal name cannot be checked, so it is refused."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue":
                if not isinstance(value, str):
                    raise BuildError(f"Fn::ImportValue must name an export literally, got {json.dumps(value)}")
                found.add(value)
            else:
                found |= find_imports(value)
    elif isinstance(node, list):
        for item in node:
            found |= find_imports(item)
    return found


def find_exports(template: dict) -> list[str]:
    names = []
    for key, output in sorted(template.get("Outputs", {}).items()):
        name = output.get("Export", {}).get("Name")
        if name is None:
            continue
        if not isinstance(name, str):
            raise BuildError(f"output {key}: export names must be literal strings")
        names.append(name)
    return names


def capabilities(template: dict) -> list[str]:
    needed = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") in IAM_CAPABILITY_TYPES:
            needed.add("CAPABILITY_IAM")
            if any(prop in resource.get("Properties", {}) for prop in IAM_NAME_PROPERTIES):
                needed.add("CAPABILITY_NAMED_IAM")
    if template.get("Transform"):
        needed.add("CAPABILITY_AUTO_EXPAND")
    return sorted(needed)


def stateful_resources(template: dict, config: EnvironmentConfig) -> list[dict]:
    """Stateful resources with their fixed physical name, where they have one (deploy checks that
    no retained resource of an earlier deployment holds it, and adopts one with an IMPORT)."""
    names = named_resources(template, config)
    return [
        {"logical_id": logical_id, "type": resource["Type"], "physical_name": names.get(logical_id)}
        for logical_id, resource in sorted(template.get("Resources", {}).items())
        if resource.get("Type") in STATEFUL_TYPES
    ]


def limit_findings(stack: StackBuild) -> tuple[list[str], list[str]]:
    """(errors, notices) for CloudFormation's per-template quotas."""
    errors, notices = [], []
    counts = {
        "bytes (TemplateURL limit)": (len(stack.body), URL_LIMIT_BYTES),
        "resources": (len(stack.template.get("Resources", {})), RESOURCE_LIMIT),
        "outputs": (len(stack.template.get("Outputs", {})), OUTPUT_LIMIT),
        "parameters": (len(stack.template.get("Parameters", {})), PARAMETER_LIMIT),
    }
    for what, (count, limit) in counts.items():
        if count > limit:
            errors.append(f"{stack.name}: {count} {what} exceeds the limit of {limit}")
        elif count >= NEAR_LIMIT_SHARE * limit:
            notices.append(f"{stack.name}: {count} {what} is near the limit of {limit}")
    if len(stack.body) > BODY_LIMIT_BYTES:
        notices.append(
            f"{stack.name}: {len(stack.body)} bytes is over the {BODY_LIMIT_BYTES}-byte TemplateBody limit; "
            "deploy passes it by TemplateURL"
        )
    elif len(stack.body) >= NEAR_LIMIT_SHARE * BODY_LIMIT_BYTES:
        notices.append(f"{stack.name}: {len(stack.body)} bytes is near the {BODY_LIMIT_BYTES}-byte TemplateBody limit")
    if stack.layer.bootstrap and len(stack.body) > BODY_LIMIT_BYTES:
        errors.append(f"{stack.name}: the bootstrap stack is deployed by TemplateBody and must stay under {BODY_LIMIT_BYTES} bytes")
    return errors, notices


def link_stacks(stacks: list[StackBuild]) -> list[StackBuild]:
    """Resolve imports to the stacks that export them, check the graph, return it in
    dependency order (ties broken by name). Raises BuildError listing every problem."""
    problems = []
    publisher: dict[str, str] = {}
    by_name = {stack.name: stack for stack in stacks}
    for stack in stacks:
        for name in stack.exports:
            if name in publisher:
                problems.append(f"export {name} is published by both {publisher[name]} and {stack.name}")
            publisher[name] = stack.name
    for stack in stacks:
        depends = set()
        for name in stack.imports:
            source = publisher.get(name)
            if source is None:
                problems.append(f"{stack.name}: imports {name}, which no stack of this environment exports")
            elif source == stack.name:
                problems.append(f"{stack.name}: imports its own export {name}")
            else:
                depends.add(source)
        for reference in stack.template.get("Metadata", {}).get("CrossRegionReferences", []):
            if reference["Stack"] not in by_name:
                problems.append(f"{stack.name}: refers to stack {reference['Stack']}, which this environment does not build")
            else:
                depends.add(reference["Stack"])
        stack.depends_on = sorted(depends)
    if problems:
        raise BuildError("\n".join(problems))
    try:
        ordered = dependency_order({stack.name: stack.depends_on for stack in stacks})
    except DependencyCycle as cycle:
        raise BuildError(f"the stacks form a cycle: {cycle}") from None
    return [by_name[name] for name in ordered]


# ---------------------------------------------------------------------------------------------
# cfn-lint
# ---------------------------------------------------------------------------------------------


LINT_CHECKS = ["I"]  # informational rules on, as `make lint` runs the CLI (-c I)

_lint_rules = None  # this process's cfn-lint rule set: see _cfn_lint_rules


def _cfn_lint_rules():
    """cfn-lint's rules, loaded once per process. cfnlint.api.lint loads them again for every
    template (about 40% of the time it takes on one of ours); its CLI loads them once for all
    the files it is given, and so do we. Which rules run (checks, regions) is decided per
    template at run time, so one set serves every region."""
    global _lint_rules
    if _lint_rules is None:
        from cfnlint.config import ConfigMixIn, ManualArgs
        from cfnlint.runner import Runner

        _lint_rules = Runner(ConfigMixIn(**ManualArgs(include_checks=LINT_CHECKS))).rules
    return _lint_rules


def lint_template(body: str, region: str) -> list[str]:
    """cfn-lint findings for one template, informational rules included: cfnlint.api.lint's
    steps (decode, then run the rules with the template's config), minus reloading the rules."""
    from cfnlint.config import ConfigMixIn, ManualArgs
    from cfnlint.decode.decode import decode_str
    from cfnlint.runner import run_template_by_data

    template, matches = decode_str(body)
    if not matches and template is not None:
        config = ConfigMixIn(**ManualArgs(include_checks=LINT_CHECKS, regions=[region]))
        matches = list(run_template_by_data(template, config, _cfn_lint_rules()))
    return [f"{match.rule.id} line {match.linenumber}: {match.message}" for match in matches or []]


def _lint_job(job: tuple[str, str, str]) -> tuple[str, list[str]]:
    path, body, region = job
    return path, lint_template(body, region)


def _warm_up_worker() -> None:
    """Runs as each lint worker starts: cfn-lint's import and rules load while the main process
    is still rendering, instead of delaying the worker's first template."""
    _cfn_lint_rules()


def cfn_lint_version() -> str:
    """The installed cfn-lint's version (part of the lint cache key), read from cfnlint/version.py
    without importing the package: `import cfnlint` takes half a second, more than a third of a
    no-change rebuild (importlib.metadata would add 20 ms of imports)."""
    spec = importlib.util.find_spec("cfnlint")
    found = None
    if spec is not None and spec.origin is not None:
        found = re.search(r'^__version__ = "([^"]+)"$', Path(spec.origin).with_name("version.py").read_text(), re.M)
    if found is None:  # not found, or a layout this does not know: ask the package itself
        import cfnlint.version

        return cfnlint.version.__version__
    return found.group(1)


class LintPool:
    """The one process pool that lints the templates of every environment of a build.

    It starts at the first template the lint cache does not vouch for, so a no-change rebuild
    never imports cfn-lint; its workers load cfn-lint's rules once each and lint templates as
    they are rendered, while the main process goes on rendering the rest."""

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, path: str, body: str, region: str) -> Future[tuple[str, list[str]]]:
        """Future of (path, findings) for one template."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.max_workers, initializer=_warm_up_worker)
        return self._executor.submit(_lint_job, (path, body, region))

    def __enter__(self) -> LintPool:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._executor is not None:
            # A build that failed does not wait for templates of environments it will not finish.
            self._executor.shutdown(wait=True, cancel_futures=True)


def lint_cache_key(version: str, stack: StackBuild) -> str:
    return f"{version}:{stack.region}:{stack.sha256}"


def read_lint_cache(env_dir: Path) -> dict[str, str]:
    """{layer: key of the template cfn-lint last passed} (build/<env>/.lint-cache.json)."""
    try:
        return json.loads((env_dir / ".lint-cache.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def lint_findings(env_dir: Path, stacks: list[StackBuild], rendered: RenderedEnvironment,
                  jobs: dict[str, Future[tuple[str, list[str]]]]) -> list[str]:
    """Waits for the environment's lint jobs; returns their findings, in stack order, and records
    in the lint cache the templates that passed (and forgets those that did not)."""
    cache, findings = dict(rendered.lint_cache), []
    for stack in stacks:
        job = jobs.get(stack.layer.name)
        if job is None:
            continue
        _, lines = job.result()
        if lines:
            findings += [f"{env_dir.name}/{stack.layer.name}.json: {line}" for line in lines]
            cache.pop(stack.layer.name, None)
        else:
            cache[stack.layer.name] = lint_cache_key(rendered.lint_version, stack)
    write_if_changed(env_dir / ".lint-cache.json", (json.dumps(cache, indent=2, sort_keys=True) + "\n").encode())
    return findings


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_if_changed(path: Path, data: bytes) -> None:
    """Leave unchanged files untouched, so timestamps tell what a build changed."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def render_stack(layer: Layer, config: EnvironmentConfig) -> StackBuild:
    template = layer.module.build(config)
    if not layer.administered:
        bound_every_role(template, config)
    body = (template.to_json(indent=2, sort_keys=True) + "\n").encode()
    parsed = json.loads(body)
    return StackBuild(
        layer=layer,
        name=stack_name(config, layer.name),
        region=layer.region(config),
        body=body,
        template=parsed,
        exports=find_exports(parsed),
        imports=sorted(find_imports(parsed)),
    )


def package_functions(env_dir: Path) -> list[dict]:
    artifacts = []
    wanted = set()
    for declaration in load_functions():
        data, digest = package(declaration)
        file_name = f"artifacts/{declaration.name}-{digest[:16]}.zip"
        wanted.add(file_name)
        write_if_changed(env_dir / file_name, data)
        artifacts.append(
            {
                "name": declaration.name,
                "file": file_name,
                "key": artifact_key(declaration),
                "sha256": digest,
                "size_bytes": len(data),
            }
        )
    for stale in (env_dir / "artifacts").glob("*.zip"):
        if f"artifacts/{stale.name}" not in wanted:
            stale.unlink()
    return artifacts


def rollback_alarms(stacks: list[StackBuild]) -> dict[str, list[dict]]:
    triggers: dict[str, list[dict]] = {}
    for stack in stacks:
        for layer, outputs in stack.template.get("Metadata", {}).get("RollbackTriggers", {}).items():
            triggers[layer] = [{"stack": stack.name, "output": key, "type": _output_resource_type(stack.template, key)}
                               for key in outputs]
    return triggers


def _output_resource_type(template: dict, output: str) -> str:
    """The type of the resource an output's Fn::GetAtt names (an alarm or a composite alarm)."""
    value = template["Outputs"][output]["Value"]
    logical_id = value.get("Fn::GetAtt", [None])[0] if isinstance(value, dict) else None
    return template["Resources"].get(logical_id, {}).get("Type", "AWS::CloudWatch::Alarm")


def manifest_entry(stack: StackBuild, alarms: dict[str, list[dict]], config: EnvironmentConfig) -> dict:
    parameters = stack.template.get("Parameters", {})
    return {
        "name": stack.name,
        "layer": stack.layer.name,
        "region": stack.region,
        "template": f"{stack.layer.name}.json",
        "template_key": f"templates/{stack.layer.name}/{stack.sha256}.json",
        "sha256": stack.sha256,
        "size_bytes": len(stack.body),
        "bootstrap": stack.layer.bootstrap,
        "administered": stack.layer.administered,
        "resource_types": sorted({resource["Type"] for resource in stack.template.get("Resources", {}).values()}),
        "parameters": {
            name: str(spec["Default"]) for name, spec in sorted(parameters.items()) if "Default" in spec
        },
        "no_echo_parameters": sorted(name for name, spec in parameters.items() if spec.get("NoEcho")),
        "exports": stack.exports,
        "imports": stack.imports,
        "depends_on": stack.depends_on,
        "capabilities": capabilities(stack.template),
        "stateful_resources": stateful_resources(stack.template, config),
        "lifecycle_parameter": LIFECYCLE_PARAMETER if LIFECYCLE_PARAMETER in parameters else None,
        "serves_traffic": stack.layer.serves_traffic,
        "rollback_alarms": alarms.get(stack.layer.name, [])[:5] if stack.layer.serves_traffic else [],
        "timeout_minutes": stack.layer.timeout_minutes,
    }


@dataclass
class RenderedEnvironment:
    """An environment rendered in memory, its templates already queued for cfn-lint, nothing
    written yet: the next environment can be rendered while this one's templates are linted,
    and a failure still stops the build before anything of a later environment is written."""

    config: EnvironmentConfig
    layers: list[Layer]
    stacks: list[StackBuild] = field(default_factory=list)
    error: Exception | None = None  # raised by finish_environment, where building it used to raise
    lint_version: str = ""
    lint_cache: dict[str, str] = field(default_factory=dict)
    lint_jobs: dict[str, Future[tuple[str, list[str]]]] | None = None  # None: not linted (--no-lint)


def render_environment(
    config: EnvironmentConfig, build_dir: Path, only: str | None, linter: LintPool | None
) -> RenderedEnvironment:
    """Render every stack of the environment and queue each template the lint cache does not
    vouch for as soon as it is rendered. Writes nothing; a rendering error is kept, not raised."""
    rendered = RenderedEnvironment(config, [layer for layer in layers_for(config) if only in (None, layer.name)])
    jobs: dict[str, Future[tuple[str, list[str]]]] = {}
    if linter is not None:
        rendered.lint_version = cfn_lint_version()
        rendered.lint_cache = read_lint_cache(build_dir / config.name)
        rendered.lint_jobs = jobs
    try:
        for layer in rendered.layers:
            stack = render_stack(layer, config)
            rendered.stacks.append(stack)
            if linter is None or rendered.lint_cache.get(layer.name) == lint_cache_key(rendered.lint_version, stack):
                continue
            path = f"{config.name}/{layer.name}.json"
            jobs[layer.name] = linter.submit(path, stack.body.decode(), stack.region)
    except Exception as error:  # noqa: BLE001 (re-raised unchanged by finish_environment)
        rendered.error = error
    return rendered


def finish_environment(rendered: RenderedEnvironment, build_dir: Path, only: str | None) -> dict:
    """Write and check a rendered environment, in the order a build always has; returns the
    manifest ({} with --only). Raises BuildError listing every problem, cfn-lint's included."""
    config = rendered.config
    env_dir = build_dir / config.name
    env_dir.mkdir(parents=True, exist_ok=True)
    if only and not rendered.layers:
        raise BuildError(f"{config.name} has no layer {only!r}")
    artifacts = package_functions(env_dir)
    if rendered.error is not None:
        raise rendered.error
    stacks = rendered.stacks
    for stack in stacks:
        write_if_changed(env_dir / f"{stack.layer.name}.json", stack.body)
    problems = []
    if only is None:
        stacks = link_stacks(stacks)
    for stack in stacks:
        errors, notices = limit_findings(stack)
        problems += errors
        if not stack.layer.administered:
            problems += unknown_resource_types(stack.name, stack.template)
        for notice in notices:
            print(f"note: {notice}")
    if rendered.lint_jobs is not None:
        problems += lint_findings(env_dir, stacks, rendered, rendered.lint_jobs)
    if problems:
        raise BuildError("\n".join(problems))
    if only is not None:
        return {}
    return write_manifest(config, env_dir, stacks, artifacts)


def write_manifest(config: EnvironmentConfig, env_dir: Path, stacks: list[StackBuild], artifacts: list[dict]) -> dict:
    alarms = rollback_alarms(stacks)
    entries = [manifest_entry(stack, alarms, config) for stack in stacks]
    manifest = {
        "format": MANIFEST_FORMAT,
        "application": "payments",
        "environment": config.name,
        "account_id": config.account_id,
        "region": config.region,
        "tags": standard_tags(config),
        "termination_protection": config.termination_protection,
        "stack_policy": config.retains_data,
        "artifact_bucket": {"stack": stack_name(config, "artifacts"), "output": "ArtifactBucketName"},
        "service_role": {"stack": stack_name(config, DELIVERY_LAYER), "arn": service_role_arn_literal(config)},
        "artifacts": artifacts,
        "stacks": entries,
        "preflight": account_requirements(config, {stack.layer.name: stack.template for stack in stacks}, entries),
    }
    write_if_changed(env_dir / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    write_if_changed(env_dir / "stacks.mmd", render_mermaid(manifest).encode())
    _remove_stale_templates(env_dir, {stack.layer.name for stack in stacks})
    return manifest


def build_environments(
    configs: list[EnvironmentConfig],
    build_dir: Path = BUILD_DIR,
    only: str | None = None,
    linter: LintPool | None = None,
) -> Iterator[tuple[str, dict]]:
    """(name, manifest) of each environment, in order. Every environment is rendered (and its
    templates queued for the linter) before the first is finished, so cfn-lint works on all of
    them while the main process writes; the first one that fails stops the build, as it did when
    environments were built one after the other."""
    rendered = []
    for config in configs:
        rendered.append(render_environment(config, build_dir, only, linter))
        if rendered[-1].error is not None:
            break  # this environment fails when finished; rendering the next ones would be wasted
    for environment in rendered:
        yield environment.config.name, finish_environment(environment, build_dir, only)


def build_environment(
    config: EnvironmentConfig, build_dir: Path = BUILD_DIR, only: str | None = None, run_lint: bool = True
) -> dict:
    """Build one environment; returns the manifest. Raises BuildError on any problem."""
    with LintPool() as linter:
        rendered = render_environment(config, build_dir, only, linter if run_lint else None)
        return finish_environment(rendered, build_dir, only)


def render_mermaid(manifest: dict) -> str:
    """The stack graph as a Mermaid flowchart: an edge per dependency, labelled with the exports
    (or cross-region names) that create it. The README embeds the prod one."""
    lines = ["flowchart LR"]
    exporters = {name: stack["layer"] for stack in manifest["stacks"] for name in stack["exports"]}
    prefix = f"payments-{manifest['environment']}-"
    for stack in manifest["stacks"]:
        lines.append(f'    {stack["layer"]}["{stack["layer"]}<br/>{len(stack["exports"])} exports"]')
    for stack in manifest["stacks"]:
        by_source: dict[str, list[str]] = {}
        for name in stack["imports"]:
            source = exporters[name]
            by_source.setdefault(source, []).append(name.removeprefix(f"{prefix}{source}-"))
        for dependency in stack["depends_on"]:
            source = dependency.removeprefix(prefix)
            keys = sorted(by_source.get(source, ["cross-region names"]))
            label = ", ".join(keys[:3]) + (f" +{len(keys) - 3}" if len(keys) > 3 else "")
            lines.append(f'    {source} -->|"{label}"| {stack["layer"]}')
    return "\n".join(lines) + "\n"


def _remove_stale_templates(env_dir: Path, layers: set[str]) -> None:
    """Templates of layers this build no longer has (prod's dr when DR is switched off). Only
    files the build itself writes are candidates: plan.json, review.json, deployed.json and
    outputs.json belong to deploy.py and survive every build."""
    for layer in {layer.name for layer in LAYERS} - layers:
        (env_dir / f"{layer}.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", choices=ENVIRONMENTS,
                        help=f"environment (repeatable; default: {', '.join(DEFAULT_BUILD)})")
    parser.add_argument("--only", help="render and check a single layer (no manifest)")
    parser.add_argument("--no-lint", action="store_true", help="skip cfn-lint (not for CI)")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--parameters-dir", type=Path, default=PARAMETERS_DIR, help="where <env>.yaml files live")
    args = parser.parse_args(argv)
    names = tuple(dict.fromkeys(args.env or DEFAULT_BUILD))
    try:
        configs = list(load_environments(names, args.parameters_dir).values())
        # One pool for the whole build; --only lints one template per environment at most.
        with LintPool(min(os.cpu_count() or 1, len(configs)) if args.only else None) as pool:
            linter = None if args.no_lint else pool
            for name, manifest in build_environments(configs, args.build_dir, args.only, linter):
                if manifest:
                    print(f"{name}: {len(manifest['stacks'])} stacks, {len(manifest['artifacts'])} function packages "
                          f"-> {args.build_dir / name / 'manifest.json'}")
    except (ConfigError, DeclarationError, QueueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildError as error:
        print(f"build failed:\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
