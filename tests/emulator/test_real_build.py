"""The real dev build, deployed through deploy.py against the emulator: deploy, redeploy, destroy."""
from __future__ import annotations

import json

from real_build import build, empty_bucket, push_image, run_deploy


def live_stacks(cfn) -> dict[str, str]:
    return {s["StackName"]: s["StackStatus"] for s in cfn.describe_stacks()["Stacks"]}


def test_dev_deploy_redeploy_destroy(emu, tmp_path):
    config, build_dir = build(tmp_path, emu.certificate_arn)
    manifest = json.loads((build_dir / "dev" / "manifest.json").read_text())
    push_image(emu, config.compute.ecs.container_image)
    cfn = emu.client("cloudformation")

    first = run_deploy("deploy", build_dir)
    assert first.code == 0, first.output
    statuses = live_stacks(cfn)
    assert set(statuses) == {s["name"] for s in manifest["stacks"]}
    assert all(status.endswith("_COMPLETE") and "ROLLBACK" not in status for status in statuses.values()), statuses
    exports = set()
    token = None
    while True:
        page = cfn.list_exports(**({"NextToken": token} if token else {}))
        exports |= {e["Name"] for e in page["Exports"]}
        token = page.get("NextToken")
        if not token:
            break
    expected = {name for stack in manifest["stacks"] for name in stack["exports"]}
    assert expected <= exports, sorted(expected - exports)
    deployed = json.loads((build_dir / "dev" / "deployed.json").read_text())
    assert deployed["complete"] is True
    assert all(entry["template_matches_build"] for entry in deployed["stacks"])
    # what the platform needs really exists behind the stacks
    assert emu.client("ecs").describe_services(cluster="payments-dev-cluster", services=["payments-dev-payment-api"])["services"]
    assert len(emu.client("lambda").list_functions()["Functions"]) >= 9
    assert emu.client("rds").describe_db_clusters()["DBClusters"][0]["Engine"] == "aurora-postgresql"

    second = run_deploy("deploy", build_dir)
    assert second.code == 0, second.output
    assert "unchanged: " + ", ".join(sorted(statuses)) in second.output
    assert "executing" not in second.output
    assert all(not cfn.list_change_sets(StackName=name)["Summaries"] for name in statuses)

    destroy = run_deploy("destroy", build_dir)
    # as in AWS, CloudFormation cannot delete buckets that still hold objects: the artifact bucket
    # (function zips, templates, deployed.json) and its access-log bucket stop the destroy
    assert destroy.code == 1
    assert "The bucket you tried to delete is not empty" in destroy.output
    assert set(live_stacks(cfn)) == {manifest["artifact_bucket"]["stack"]}
    s3 = emu.client("s3")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # every request to a bucket with access logging writes a log object into its log bucket:
    # empty the logging buckets first and their log buckets last
    log_targets = {s3.get_bucket_logging(Bucket=n).get("LoggingEnabled", {}).get("TargetBucket") for n in names}
    for name in sorted(names, key=lambda n: n in log_targets):
        empty_bucket(s3, name)
    again = run_deploy("destroy", build_dir)
    assert again.code == 0, again.output

    assert live_stacks(cfn) == {}
    assert s3.list_buckets()["Buckets"] == []
    assert emu.client("dynamodb").list_tables()["TableNames"] == []
    assert emu.client("sqs").list_queues().get("QueueUrls", []) == []
    assert [v for v in emu.client("ec2").describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert emu.client("rds").describe_db_clusters()["DBClusters"] == []
    assert emu.client("lambda").list_functions()["Functions"] == []
    assert emu.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert emu.client("ec2").describe_addresses()["Addresses"] == []
    print(f"\ndev through the emulator: deploy {first.seconds:.1f} s, redeploy {second.seconds:.1f} s, "
          f"destroy {destroy.seconds + again.seconds:.1f} s")
