"""What AWS owns and the templates read, provisioned in moto at startup (never in templates).

- the public SSM parameter of the Powertools layer the compute layer names
  (/aws/service/powertools/python/<architecture>/<runtime>/<version>), readable from every account (public
  parameters belong to AWS, not to the caller's account), whose value is the layer's ARN in
  the region;
- that layer version itself, published in the Powertools account (017000801446), so a Lambda
  function naming it can be created (compat.awslambda resolves layer ARNs by their account);
- one ISSUED ACM certificate for api.local.payments.test (+ *.local.payments.test) in the
  emulator's account and region, with an ARN that is the same at every start (its id is a
  uuid5 of the domain), so a parameters file can name it.
"""
from __future__ import annotations

import base64
import io
import uuid
import zipfile
from dataclasses import dataclass

from templates_src import compute_functions

ACCOUNT_ID = "123456789012"
POWERTOOLS_ACCOUNT = "017000801446"
# The compute layer's constants, so the emulator serves exactly the parameter the templates read.
POWERTOOLS_VERSION = compute_functions.POWERTOOLS_VERSION
POWERTOOLS_LAYER_NAME = (f"AWSLambdaPowertoolsPythonV3-{compute_functions.RUNTIME.replace('.', '')}-"
                         f"{compute_functions.ARCHITECTURE}")
# The layer version number is the emulator's choice (AWS's numbering is not published offline);
# what matters is that the SSM parameter and the published layer agree.
POWERTOOLS_LAYER_VERSION = 26
POWERTOOLS_PARAMETER = compute_functions.POWERTOOLS_LAYER_SSM_PATH
CERTIFICATE_DOMAIN = "api.local.payments.test"
CERTIFICATE_SANS = ("api.local.payments.test", "*.local.payments.test")
_CERTIFICATE_NAMESPACE = uuid.UUID("6f1d2c4e-6b0a-4d57-9a39-0c3d6f7b9a10")


def powertools_layer_arn(region: str) -> str:
    return f"arn:aws:lambda:{region}:{POWERTOOLS_ACCOUNT}:layer:{POWERTOOLS_LAYER_NAME}:{POWERTOOLS_LAYER_VERSION}"


def certificate_arn(region: str, account_id: str = ACCOUNT_ID) -> str:
    certificate_id = uuid.uuid5(_CERTIFICATE_NAMESPACE, f"{CERTIFICATE_DOMAIN}/{account_id}/{region}")
    return f"arn:aws:acm:{region}:{account_id}:certificate/{certificate_id}"


def public_parameters(region: str) -> dict[str, str]:
    """Public (AWS-owned) SSM parameters the emulator serves in `region`, to every account."""
    return {POWERTOOLS_PARAMETER: powertools_layer_arn(region)}


@dataclass
class Provisioned:
    region: str
    certificate_arn: str
    powertools_layer_arn: str
    powertools_parameter: str


def _layer_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/aws_lambda_powertools/__init__.py", f'__version__ = "{POWERTOOLS_VERSION}"\n')
    return buffer.getvalue()


def provision_layer(region: str) -> str:
    from moto.awslambda.utils import get_backend

    from .compat.awslambda import share_layer_publicly

    backend = get_backend(POWERTOOLS_ACCOUNT, region)
    arn = powertools_layer_arn(region)
    if backend.layers_versions_by_arn(arn) is not None:
        return arn
    content = base64.b64encode(_layer_zip()).decode()
    published = None
    while published is None or published.version < POWERTOOLS_LAYER_VERSION:
        published = backend.publish_layer_version({
            "LayerName": POWERTOOLS_LAYER_NAME,
            "Description": f"Powertools for AWS Lambda (Python) V3 {POWERTOOLS_VERSION} (emulator copy)",
            "Content": {"ZipFile": content},
            "CompatibleRuntimes": ["python3.12"],
            "CompatibleArchitectures": ["x86_64"],
            "LicenseInfo": "MIT-0",
        })
    share_layer_publicly(POWERTOOLS_ACCOUNT, region, POWERTOOLS_LAYER_NAME, POWERTOOLS_LAYER_VERSION)
    return arn


def provision_certificate(region: str, account_id: str = ACCOUNT_ID) -> str:
    from moto.acm.models import CertBundle, acm_backends

    backend = acm_backends[account_id][region]
    arn = certificate_arn(region, account_id)
    if arn in backend._certificates:
        return arn
    bundle = CertBundle.generate_cert(CERTIFICATE_DOMAIN, account_id=account_id, region=region,
                                      sans=list(CERTIFICATE_SANS))
    bundle.arn = arn
    bundle.status = "ISSUED"  # validated: AWS would have issued it after DNS validation
    backend._certificates[arn] = bundle
    return arn


def provision(region: str, account_id: str = ACCOUNT_ID) -> Provisioned:
    layer = provision_layer(region)
    certificate = provision_certificate(region, account_id)
    return Provisioned(region=region, certificate_arn=certificate, powertools_layer_arn=layer,
                       powertools_parameter=POWERTOOLS_PARAMETER)
