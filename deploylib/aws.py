"""AWS clients, throttling backoff and the clock: the seams the tests replace.

Two layers of throttling protection, on purpose:
- botocore's own retries (adaptive mode: client-side rate limiting plus jittered backoff) for
  every real client;
- our own retry with exponential backoff and full jitter around every CloudFormation call,
  because deploys poll many stacks at once for a long time, and a poll loop that gives up on
  the fifth "Rate exceeded" is the most reported failure of other deploy tools.
"""
from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from .errors import INTERRUPTED_EXIT, DeployError
from .shapes import Response

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
     "SlowDown", "RequestThrottled"}
)
BOTOCORE_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
# Every AWS service deploy and tools/merchants.py call, as boto3 names them (a new one is added here).

ServiceName = Literal[
    "acm", "apigateway", "cloudformation", "dynamodb", "ec2", "ecr", "elbv2", "iam", "lambda", "logs", "rds",
    "route53", "s3", "secretsmanager", "service-quotas", "sqs", "sts",
]


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


# Hosts of real AWS endpoints (regional, FIPS, China, dual-stack, VPC endpoints' public names).
AWS_ENDPOINT_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".api.amazonwebservices.com.cn")
# Answers an emulator gives for an API it does not implement (moto server: an HTML 500 page).
EMULATOR_GAP_STATUS_CODES = frozenset({500, 501})


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    """True for real AWS, and when the endpoint is unknown (the in-memory fake stands for AWS)."""
    if not endpoint_url:
        return True
    host = urlparse(endpoint_url).hostname or ""
    return host.endswith(AWS_ENDPOINT_SUFFIXES)


def emulator_gap(endpoint_url: str | None, error: BaseException) -> str | None:
    """Why this error means "the endpoint does not implement the operation", else None.

    Only two situations qualify, so nothing that real CloudFormation answers is ever waved
    through: NotImplementedError (raised by moto in-process; botocore never raises it), and a
    non-AWS answer (unparseable body, HTTP 500/501) from a custom endpoint (AWS_ENDPOINT_URL
    pointing at an emulator). A 500 from a real AWS endpoint stays an error.
    """
    if isinstance(error, NotImplementedError):
        return f"not implemented by the emulator ({error})"
    if is_aws_endpoint(endpoint_url):
        return None
    if isinstance(error, ResponseParserError):
        return f"not implemented by the emulator at {endpoint_url} (it answered with a non-AWS error page)"
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in EMULATOR_GAP_STATUS_CODES:
            return f"not implemented by the emulator at {endpoint_url} (HTTP {status})"
    return None


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Clock:
    """Monotonic time, sleep and the wall clock (when a plan was reviewed); tests inject their own."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime.datetime] = utc_now


class Interrupted(DeployError):
    """The user asked the run to stop (Ctrl-C): stop waiting. Whatever CloudFormation is doing
    goes on without us; the message says so."""

    exit_code = INTERRUPTED_EXIT


@dataclass
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog), bounded attempts."""

    base_seconds: float = 0.5
    cap_seconds: float = 20.0
    max_attempts: int = 12
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


class RetryingClient:
    """Wraps a boto3-shaped client: call(name, **kwargs) retries throttling errors.

    Counts the retries it made so tests and the summary can show throttling was absorbed.
    """

    def __init__(self, client: Any, backoff: Backoff, clock: Clock):
        self.client = client
        self.backoff = backoff
        self.clock = clock
        self.throttle_retries = 0
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str | None:
        meta = getattr(self.client, "meta", None)
        return getattr(meta, "endpoint_url", None)

    def emulator_gap(self, error: BaseException) -> str | None:
        return emulator_gap(self.endpoint_url, error)

    def call(self, operation: str, **kwargs: Any) -> Response:
        method = getattr(self.client, operation)
        attempt = 0
        while True:
            try:
                response: Response = method(**kwargs)
                return response
            except ClientError as error:
                if error_code(error) not in THROTTLING_CODES or attempt + 1 >= self.backoff.max_attempts:
                    raise
                with self._lock:
                    self.throttle_retries += 1
                self.clock.sleep(self.backoff.delay(attempt))
                attempt += 1


class ClientFactory:
    """One client per (service, region); boto3 reads AWS_ENDPOINT_URL / profile itself."""

    def __init__(self, session: boto3.session.Session | None = None):
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: ServiceName, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                session = self._session or boto3.session.Session()
                self._clients[(service, region)] = session.client(
                    service, region_name=region, config=BOTOCORE_CONFIG
                )
            return self._clients[(service, region)]


@dataclass
class Context:
    """Everything a command needs from the outside world."""

    client_factory: Callable[[ServiceName, str], Any]
    clock: Clock = field(default_factory=Clock)
    backoff: Backoff = field(default_factory=Backoff)
    poll_seconds: float = 5.0
    # Set on Ctrl-C: every wait loop stops at its next pause and no new stack starts.
    stop: threading.Event = field(default_factory=threading.Event)
    _clients: dict[tuple[str, str], RetryingClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: ServiceName, region: str) -> RetryingClient:

        """The one way to reach an AWS API: the factory's client (so AWS_ENDPOINT_URL and tests'
        fakes apply) wrapped in the throttling retry. One per (service, region)."""
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = RetryingClient(
                    self.client_factory(service, region), self.backoff, self.clock
                )
            return self._clients[(service, region)]

    def cfn(self, region: str) -> RetryingClient:
        return self.client("cloudformation", region)

    def s3(self, region: str) -> RetryingClient:
        return self.client("s3", region)

    def pause(self, seconds: float) -> None:
        """A poll loop's wait: raises Interrupted once a stop is requested (at once with the
        real clock, at the next tick with a test clock)."""
        if self.stop.is_set():
            raise Interrupted()
        if self.clock.sleep is time.sleep:
            self.stop.wait(seconds)
        else:
            self.clock.sleep(seconds)
        if self.stop.is_set():
            raise Interrupted()

    def throttle_retries(self) -> int:
        return sum(client.throttle_retries for client in self._clients.values())
