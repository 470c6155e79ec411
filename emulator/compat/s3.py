"""S3: buckets and bucket policies."""
from __future__ import annotations

import json
from typing import Any

from .cloudformation.providers import MotoProvider, Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[request.account_id][request.partition]


class BucketProvider(MotoProvider):
    """AWS::S3::Bucket through moto's model, which applies only BucketName, BucketEncryption and
    Tags. moto gaps covered:
    - VersioningConfiguration, PublicAccessBlockConfiguration, OwnershipControls,
      LoggingConfiguration and NotificationConfiguration.EventBridgeConfiguration are applied
      to the bucket in moto's S3 backend (LifecycleConfiguration is not: recorded only);
    - ObjectLockEnabled / ObjectLockConfiguration lock the bucket (moto's handler ignores both, so
      an audit bucket came up unlocked and deletable); S3 allows turning Object Lock on for an
      existing versioned bucket but never off, so dropping it on update fails like S3 does;
    - deletion: moto's handler silently keeps a bucket that still holds objects; S3 refuses to
      delete a non-empty bucket, and so does CloudFormation (DELETE_FAILED). Same here.
    """

    def create(self, request: Request) -> State:
        state = super().create(request)
        self._configure(request, state.physical_id)
        return state

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        state = super().update(request, state, old_properties)
        self._configure(request, state.physical_id)
        return state

    def _configure(self, request: Request, name: str) -> None:
        s3 = backend(request)
        p = request.properties
        versioning = p.get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(name, versioning.get("Status", "Suspended"))
        block = p.get("PublicAccessBlockConfiguration")
        if block:
            s3.put_public_access_block(name, {k: str(v).lower() == "true" for k, v in block.items()})
        ownership = p.get("OwnershipControls")
        if ownership:
            s3.put_bucket_ownership_controls(name, ownership.get("Rules", [{}])[0].get("ObjectOwnership"))
        logging_config = p.get("LoggingConfiguration")
        if logging_config:
            config = {"TargetBucket": logging_config.get("DestinationBucketName", name)}
            if logging_config.get("LogFilePrefix"):
                config["TargetPrefix"] = logging_config["LogFilePrefix"]
            # not moto's put_bucket_logging: its permission check crashes on a policy statement whose
            # Principal is "*" (any TLS-only deny statement), and S3 does not check the target's
            # bucket policy at this point; it does require the target to exist in the same region
            target = s3.buckets.get(config["TargetBucket"])
            if target is None:
                raise ResourceFailure("Resource handler returned message: \"The target bucket for logging does not "
                                      "exist\" (Error Code: InvalidTargetBucketForLogging)")
            if target.region_name != s3.get_bucket(name).region_name:
                raise ResourceFailure("Resource handler returned message: \"Cross S3 location logging not allowed\" "
                                      "(Error Code: CrossLocationLoggingProhibitted)")
            s3.get_bucket(name).logging = config
        self._object_lock(s3.get_bucket(name), p)
        notification = p.get("NotificationConfiguration")
        if notification and (notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true"):
            s3.put_bucket_notification_configuration(name, {"EventBridgeConfiguration": {}})

    @staticmethod
    def _object_lock(bucket: Any, properties: dict) -> None:
        enabled = str(properties.get("ObjectLockEnabled", "")).lower() == "true"
        if bucket.object_lock_enabled and not enabled:
            raise ResourceFailure("Resource handler returned message: \"Object Lock cannot be disabled on a bucket "
                                  "once enabled\" (Error Code: InvalidBucketState)")
        if not enabled:
            return
        if not bucket.is_versioned:
            raise ResourceFailure("Resource handler returned message: \"Versioning must be 'Enabled' on the bucket "
                                  "to apply a Object Lock configuration\" (Error Code: InvalidBucketState)")
        bucket.object_lock_enabled = True
        retention = ((properties.get("ObjectLockConfiguration") or {}).get("Rule") or {}).get("DefaultRetention") or {}
        bucket.default_lock_mode = retention.get("Mode") or ""
        bucket.default_lock_days = int(retention["Days"]) if "Days" in retention else 0
        bucket.default_lock_years = int(retention["Years"]) if "Years" in retention else 0

    def delete(self, request: Request, state: State) -> None:
        s3 = backend(request)
        try:
            bucket = s3.get_bucket(state.physical_id)
        except Exception:
            return  # already gone
        if len(bucket.keys) > 0:  # objects, versions and delete markers alike
            raise ResourceFailure(
                "Resource handler returned message: \"The bucket you tried to delete is not empty. You must delete all "
                "versions in the bucket. (Service: S3, Status Code: 409)\" (Error Code: BucketNotEmpty)")
        s3.delete_bucket(state.physical_id)


class BucketPolicyProvider(Provider):
    """moto gap: AWS::S3::BucketPolicy has no model (the policy is never set). PutBucketPolicy
    here; deletion removes the policy. Ref: the bucket name."""

    resource_type = "AWS::S3::BucketPolicy"
    support = "created"

    def create(self, request: Request) -> State:
        name = request.properties["Bucket"]
        backend(request).put_bucket_policy(name, json.dumps(request.properties["PolicyDocument"]).encode())
        return State(physical_id=name, data={"bucket": name})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        return self.create(request)

    def delete(self, request: Request, state: State) -> None:
        try:
            backend(request).delete_bucket_policy(state.data["bucket"])
        except Exception:
            pass  # the bucket is gone with its policy


# The request context a bucket policy sees: the emulator stands for S3's HTTPS endpoint, so
# every request counts as TLS 1.3 (clients reach it over plain HTTP on 127.0.0.1 only).
REQUEST_CONTEXT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}


def _condition_holds(operator: str, values: dict) -> bool:
    """One condition block against REQUEST_CONTEXT; an absent key makes it false (AWS's rule),
    except with ...IfExists / Null."""
    base = operator.replace("IfExists", "")
    for key, expected in values.items():
        actual = REQUEST_CONTEXT.get(key.lower())
        expected_list = [str(v).lower() for v in (expected if isinstance(expected, list) else [expected])]
        if base == "Null":
            if (actual is None) != (expected_list[0] == "true"):
                return False
            continue
        if actual is None:
            if operator.endswith("IfExists"):
                continue
            return False
        if base == "Bool" or base in ("StringEquals", "StringEqualsIgnoreCase"):
            ok = actual.lower() in expected_list
        elif base in ("StringNotEquals", "StringNotEqualsIgnoreCase"):
            ok = actual.lower() not in expected_list
        elif base.startswith("Numeric"):
            number = float(actual)
            compare = {"NumericEquals": lambda a, b: a == b, "NumericNotEquals": lambda a, b: a != b,
                       "NumericLessThan": lambda a, b: a < b, "NumericLessThanEquals": lambda a, b: a <= b,
                       "NumericGreaterThan": lambda a, b: a > b, "NumericGreaterThanEquals": lambda a, b: a >= b}.get(base)
            ok = compare is not None and any(compare(number, float(v)) for v in expected_list)
        else:
            ok = False  # operators the emulator does not evaluate never apply
        if not ok:
            return False
    return True


def _policy_patch() -> None:
    # moto gap: moto evaluates bucket policies with IAMPolicyStatement, which answers DENIED for
    # any statement whose Condition it cannot satisfy, whatever the statement's Effect. The
    # platform's TLS-only statement (Deny s3:* when aws:SecureTransport is false) then denies
    # every request, even over TLS. Here a statement applies only when its conditions hold (AWS's
    # rule), evaluated against the request context above; explicit deny wins over allow.
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> PermissionResult:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = policy.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        result = PermissionResult.NEUTRAL
        for statement in statements:
            principal = statement.get("Principal")
            if not (principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")):
                continue  # like moto: only policies for everyone are enforced
            checker = IAMPolicyStatement(statement)
            if "NotAction" in statement:
                concerned = not checker._check_element_matches("NotAction", action)
            else:
                concerned = checker._check_element_matches("Action", action)
            if not concerned or ("Resource" in statement and not checker._check_element_matches("Resource", resource)):
                continue
            if not all(_condition_holds(op, values) for op, values in (statement.get("Condition") or {}).items()):
                continue
            if statement.get("Effect") == "Deny":
                return PermissionResult.DENIED
            result = PermissionResult.PERMITTED
        return result

    FakeBucket.get_permission = get_permission


def apply() -> None:
    _policy_patch()
    register(BucketProvider("AWS::S3::Bucket"))
    register(BucketPolicyProvider())
