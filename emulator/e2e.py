"""`make e2e`: the real `local` build through a fresh emulator, as a user would drive it.

    python -m emulator.e2e [--keep-workdir]

Starts its own emulator (a child process on 127.0.0.1), then, one line per phase with its time:
build `local`, preflight (FIX: the service-linked roles a never-used account lacks), bootstrap
(the artifacts stack), push the API image, deploy, check every stack *_COMPLETE and every export
present, write an audit record and see it locked, redeploy (nothing changes, no change set executed), change one parameter (the API image
release) and show that the plan holds exactly that change (its review headed by the summary,
review.md written beside review.json), execute it, destroy everything and
check nothing is left. Exit 0 when every phase passed, 1 at the first that did not (it says why).
The parameter files are copied to a work directory: parameters/local.yaml is never changed.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = "local"
FIRST_RELEASE, NEXT_RELEASE = "1.0.0", "1.0.1"
IMAGE_PARAMETER = "ImageTag"


class PhaseFailed(Exception):
    """A phase did not end as it must; the message says what was seen."""


@dataclass
class Run:
    code: int
    output: str


class EndToEnd:
    def __init__(self, emu, workdir: Path):
        self.emu = emu
        self.workdir = workdir
        self.parameters = workdir / "parameters"
        self.build_dir = workdir / "build"
        self.env_dir = self.build_dir / ENVIRONMENT

    # ---- driving the tools --------------------------------------------------------------
    def build(self) -> None:
        import build

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            code = build.main(["--env", ENVIRONMENT, "--no-lint", "--build-dir", str(self.build_dir),
                               "--parameters-dir", str(self.parameters)])
        if code != 0:
            raise PhaseFailed(f"build.py exited {code}:\n{printed.getvalue()}")

    def deploy_py(self, *args: str) -> Run:
        import deploy
        from deploylib.output import Printer

        stream = io.StringIO()
        code = deploy.main([args[0], "--env", ENVIRONMENT, "--build-dir", str(self.build_dir),
                            "--poll-seconds", "0.01", *args[1:]], printer=Printer(stream))
        return Run(code, stream.getvalue())

    def expect(self, run: Run, code: int = 0) -> Run:
        if run.code != code:
            raise PhaseFailed(f"exit {run.code} (expected {code}):\n{run.output[-4000:]}")
        return run

    def manifest(self) -> dict:
        return json.loads((self.env_dir / "manifest.json").read_text())

    # ---- phases ---------------------------------------------------------------------------
    def phase_build(self) -> str:
        shutil.copytree(ROOT / "parameters", self.parameters)
        self.build()
        return f"{len(self.manifest()['stacks'])} stacks"

    def phase_preflight(self) -> str:
        run = self.expect(self.deploy_py("preflight", "--fix"))
        fixed = run.output.count("FIXED")
        return f"passed; {fixed} service-linked role(s) created (FIX)"

    def phase_bootstrap(self) -> str:
        self.expect(self.deploy_py("bootstrap", "--yes"))
        return "artifacts stack: bucket and image repository"

    def push_image(self, tag: str) -> str:
        image = self.manifest()["preflight"]["container_image"]
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                               "digest": "sha256:" + tag.replace(".", "").ljust(64, "0")},
                    "layers": []}
        self.emu.client("ecr").put_image(repositoryName=image["repository"], imageManifest=json.dumps(manifest),
                                         imageTag=tag)
        return f"{image['repository']}:{tag}"

    def phase_push(self) -> str:
        return self.push_image(FIRST_RELEASE)

    def phase_deploy(self) -> str:
        self.expect(self.deploy_py("deploy", "--yes"))
        return "every stack deployed"

    def phase_check(self) -> str:
        manifest, cfn = self.manifest(), self.emu.client("cloudformation")
        statuses = {s["name"]: cfn.describe_stacks(StackName=s["name"])["Stacks"][0]["StackStatus"]
                    for s in manifest["stacks"]}
        bad = {name: status for name, status in statuses.items() if not status.endswith("_COMPLETE") or "ROLLBACK" in status}
        if bad:
            raise PhaseFailed(f"stacks not complete: {bad}")
        exports = _exports(cfn)
        missing = sorted({name for s in manifest["stacks"] for name in s["exports"]} - set(exports))
        if missing:
            raise PhaseFailed(f"exports missing: {missing}")
        return f"{len(statuses)} stacks *_COMPLETE, {len(exports)} exports present"

    def phase_batch_workflow(self) -> str:
        return batch_workflow_deployed(self.emu, self.parameters)

    def phase_guarded(self) -> str:
        return compute_guarded_by_composite_alarms(self.emu, self.manifest())

    def phase_audit_lock(self) -> str:
        """An audit record lands locked (PCI DSS 10.3.3): deleting its version without the
        governance bypass is refused, so destroy has to bypass it (dev/local only)."""
        from botocore.exceptions import ClientError

        bucket = _export_value(self.emu.client("cloudformation"), f"payments-{ENVIRONMENT}-storage-AuditBucketName")
        s3 = self.emu.client("s3")
        version = s3.put_object(Bucket=bucket, Key="e2e/audit-record.json", Body=b'{"event": "e2e"}',
                                ChecksumAlgorithm="SHA256")["VersionId"]
        mode = s3.head_object(Bucket=bucket, Key="e2e/audit-record.json").get("ObjectLockMode")
        if mode != "GOVERNANCE":
            raise PhaseFailed(f"the audit record is not locked (ObjectLockMode {mode!r})")
        try:
            s3.delete_object(Bucket=bucket, Key="e2e/audit-record.json", VersionId=version)
        except ClientError:
            return f"audit record written to {bucket}, locked ({mode}), delete refused"
        raise PhaseFailed("a locked audit record version was deleted without the governance bypass")

    def phase_redeploy(self) -> str:
        run = self.expect(self.deploy_py("deploy", "--yes"))
        if "executing" in run.output:
            raise PhaseFailed("a change set was executed although nothing changed:\n" + run.output[-3000:])
        return "nothing changed, no change set executed"

    def phase_change(self) -> str:
        path = self.parameters / f"{ENVIRONMENT}.yaml"
        text = path.read_text()
        path.write_text(text.replace(f'image: "{FIRST_RELEASE}"', f'image: "{NEXT_RELEASE}"', 1))
        self.push_image(NEXT_RELEASE)
        self.build()
        run = self.expect(self.deploy_py("plan"))
        self._review_header_and_markdown(run.output)
        return self._exactly_the_release_change(json.loads((self.env_dir / "review.json").read_text()))

    def _review_header_and_markdown(self, output: str) -> None:
        """The review starts with where, what and how much, and review.md is written beside review.json."""
        manifest_sha = hashlib.sha256((self.env_dir / "manifest.json").read_bytes()).hexdigest()
        review = json.loads((self.env_dir / "review.json").read_text())
        header = output[output.find("=== Review"):].splitlines()[:5]
        expected = [f"=== Review: {ENVIRONMENT} (account {self.emu.account_id}, region {self.emu.region}) ===",
                    f"commit {review['provenance']['commit'][:12]}, manifest sha256 {manifest_sha[:12]}, reviewed ",
                    "stacks: 0 create, 1 update, ", "resources: ", "no stateful resource touched; "]
        if len(header) < 5 or not all(line.startswith(start) for line, start in zip(header, expected, strict=True)):
            raise PhaseFailed("the review does not start with its summary header:\n" + "\n".join(header))
        markdown = self.env_dir / "review.md"
        if not markdown.is_file() or not markdown.read_text().startswith(f"### Review: {ENVIRONMENT} (account"):
            raise PhaseFailed(f"{markdown} is missing or does not start with the review's header")

    def _exactly_the_release_change(self, review: dict) -> str:
        changed = [entry for entry in review["stacks"] if entry["action"] != "unchanged"]
        if len(changed) != 1 or changed[0]["stack"] != f"payments-{ENVIRONMENT}-compute":
            raise PhaseFailed(f"expected only the compute stack to change, got {[(e['stack'], e['action']) for e in changed]}")
        entry = changed[0]
        expected = [{"name": IMAGE_PARAMETER, "old": FIRST_RELEASE, "new": NEXT_RELEASE, "no_echo": False}]
        if entry["parameter_changes"] != expected or entry.get("added") or entry.get("removed"):
            raise PhaseFailed(f"the plan holds more than the release change: {json.dumps(entry, indent=1)[:3000]}")
        modified = ", ".join(item["logical_id"] for item in entry.get("modified", []))
        return f"plan: {IMAGE_PARAMETER} {FIRST_RELEASE} -> {NEXT_RELEASE} in compute only (modifies {modified})"

    def phase_execute(self) -> str:
        self.expect(self.deploy_py("execute"))
        status = self.emu.client("cloudformation").describe_stacks(
            StackName=f"payments-{ENVIRONMENT}-compute")["Stacks"][0]["StackStatus"]
        if status != "UPDATE_COMPLETE":
            raise PhaseFailed(f"compute is {status} after executing the reviewed plan")
        return "the reviewed change set executed"

    def phase_destroy(self) -> str:
        run = self.expect(self.deploy_py("destroy", "--yes"))
        emptied = run.output.count("empty (")
        return f"every stack deleted, {emptied} bucket(s) emptied first"

    def phase_nothing_left(self) -> str:
        left = leftovers(self.emu)
        if left:
            raise PhaseFailed(f"left behind: {left}")
        return "no stack, bucket, table, queue, function, load balancer, VPC or log group left"

    PHASES: tuple[tuple[str, str], ...] = (
        ("build", "phase_build"), ("preflight", "phase_preflight"), ("bootstrap", "phase_bootstrap"),
        ("push image", "phase_push"), ("deploy", "phase_deploy"), ("check", "phase_check"),
        ("batch workflow", "phase_batch_workflow"), ("audit record locked", "phase_audit_lock"),
        ("redeploy", "phase_redeploy"), ("change one parameter", "phase_change"), ("execute", "phase_execute"),
        ("rollback triggers", "phase_guarded"),
        ("destroy", "phase_destroy"), ("nothing left", "phase_nothing_left"),
    )

    def run(self, report: Callable[[str, float, str], None]) -> None:
        for name, method in self.PHASES:
            started = time.perf_counter()
            detail = getattr(self, method)()
            report(name, time.perf_counter() - started, detail)


def batch_workflow_deployed(emu, parameters: Path) -> str:
    """The batch state machine deployed with its Distributed Map invoking the map function's
    alias (with its own reservation) and its other steps batch_ingestion's."""
    from templates_src.config import load_environment

    cfn, states, lam = (emu.client(name) for name in ("cloudformation", "stepfunctions", "lambda"))
    exports = _exports(cfn)
    definition = json.loads(states.describe_state_machine(
        stateMachineArn=exports[f"payments-{ENVIRONMENT}-workflow-BatchStateMachineArn"])["definition"])
    aliases = {name: exports[f"payments-{ENVIRONMENT}-compute-{name}AliasArn"] for name in ("BatchIngestion", "BatchMapIngestion")}
    child = definition["States"]["IngestInBatches"]["ItemProcessor"]["States"]["IngestBatch"]["Parameters"]["FunctionName"]
    steps = {definition["States"][name]["Parameters"]["FunctionName"] for name in ("IngestInOneFunction", "Report")}
    if child != aliases["BatchMapIngestion"] or steps != {aliases["BatchIngestion"]}:
        raise PhaseFailed(f"the batch machine invokes {child} per batch and {sorted(steps)} otherwise; expected {aliases}")
    wanted = load_environment(ENVIRONMENT, parameters).batch.reserved_concurrency
    function = exports[f"payments-{ENVIRONMENT}-compute-BatchMapIngestionFunctionName"]
    reserved = lam.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")
    if reserved != wanted:
        raise PhaseFailed(f"{function} reserves {reserved}, not batch.reserved_concurrency {wanted}")
    return f"map batches -> {function} (reserved {reserved}), other steps -> batch_ingestion"


def compute_guarded_by_composite_alarms(emu, manifest: dict) -> str:
    """The executed compute change ran under monitoring's alarms, the composite Lambda alarms
    (more than 10 functions) among them, each passed with its own trigger Type."""
    cfn = emu.client("cloudformation")
    compute = next(s["name"] for s in manifest["stacks"] if s["name"].endswith("-compute"))
    triggers = cfn.describe_stacks(StackName=compute)["Stacks"][0].get("RollbackConfiguration", {}).get("RollbackTriggers", [])
    composite = [t for t in triggers if t["Type"] == "AWS::CloudWatch::CompositeAlarm"]
    if not composite:
        raise PhaseFailed(f"{compute} is not guarded by a composite alarm: {triggers}")
    return f"{compute}: {len(triggers)} rollback triggers, {len(composite)} of them composite alarms"


def _exports(cfn) -> dict[str, str]:
    """Every export of the region: name -> value."""
    exports, token = {}, None
    while True:
        page = cfn.list_exports(**({"NextToken": token} if token else {}))
        exports.update({e["Name"]: e["Value"] for e in page["Exports"]})
        token = page.get("NextToken")
        if not token:
            return exports


def _export_value(cfn, name: str) -> str:
    try:
        return _exports(cfn)[name]
    except KeyError:
        raise PhaseFailed(f"export {name} not found") from None


def leftovers(emu) -> dict[str, list[str]]:
    """Everything a destroyed environment could leave behind in the emulator."""
    found = {
        "stacks": [s["StackName"] for s in emu.client("cloudformation").describe_stacks()["Stacks"]],
        "buckets": [b["Name"] for b in emu.client("s3").list_buckets()["Buckets"]],
        "tables": emu.client("dynamodb").list_tables()["TableNames"],
        "queues": emu.client("sqs").list_queues().get("QueueUrls", []),
        "functions": [f["FunctionName"] for f in emu.client("lambda").list_functions()["Functions"]],
        "load balancers": [lb["LoadBalancerName"] for lb in emu.client("elbv2").describe_load_balancers()["LoadBalancers"]],
        "vpcs": [v["VpcId"] for v in emu.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]],
        "log groups": [g["logGroupName"] for g in emu.client("logs").describe_log_groups()["logGroups"]
                       if g["logGroupName"].startswith(("/payments", "/aws/lambda/payments", "/ecs/payments"))],
    }
    return {kind: names for kind, names in found.items() if names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-workdir", action="store_true", help="keep the build and parameters copy")
    args = parser.parse_args(argv)
    import emulator

    workdir = Path(tempfile.mkdtemp(prefix="payments-e2e-"))
    started = time.perf_counter()
    emu = emulator.spawn(region="eu-west-1")
    os.environ.update(emu.environment())
    try:
        EndToEnd(emu, workdir).run(lambda name, seconds, detail: print(f"e2e {name:<21} {seconds:6.1f} s  {detail}",
                                                                       flush=True))
    except PhaseFailed as failure:
        print(f"e2e FAILED: {failure}", flush=True)
        return 1
    finally:
        emu.stop()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"e2e passed in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
