"""SSM: public parameters and AWS::SSM::Parameter tags."""
from __future__ import annotations

from .cloudformation.providers import MotoProvider, Request, State, register


def _public_parameters_patch() -> None:
    # moto gap: public SSM parameters (/aws/service/...) exist in moto only for a few AMI and
    # region trees; the Powertools layer parameter the compute template reads (a parameter of
    # type AWS::SSM::Parameter::Value<String>) does not. AWS serves public parameters to every
    # account: loaded here lazily into any account's parameter store, like moto's own trees.
    from moto.ssm.models import Parameter, ParameterDict

    from .. import provision

    original = ParameterDict._check_loading_status

    def _check_loading_status(self: ParameterDict, key: str) -> None:
        original(self, key)
        key = str(key or "")
        if not key.startswith("/aws/service/") or getattr(self, "_emulator_public_loaded", False):
            return
        self._emulator_public_loaded = True
        from moto.core.utils import utcnow

        # the parameter names the Powertools layer of this region: publish it there too
        provision.provision_layer(self.region_name)
        for name, value in provision.public_parameters(self.region_name).items():
            if not dict.__contains__(self, name):
                self.setdefault(name, []).append(Parameter(
                    account_id=self.account_id, name=name, value=value, parameter_type="String",
                    description=None, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
                    version=1, data_type="text",
                ))

    ParameterDict._check_loading_status = _check_loading_status


class ParameterProvider(MotoProvider):
    """moto gaps: moto's AWS::SSM::Parameter handler passes `Tags` (a map in CloudFormation) to
    put_parameter, which expects a list of Key/Value pairs, and crashes (converted here); without
    a Name it crashes too (CloudFormation generates CFN-<logical id>-<random>)."""

    def cloudformation_json(self, request: Request) -> dict:
        document = super().cloudformation_json(request)
        if not document["Properties"].get("Name"):
            document["Properties"]["Name"] = f"CFN-{request.logical_id}-{request.physical_name.rsplit('-', 1)[-1]}"
        tags = document["Properties"].get("Tags")
        if isinstance(tags, dict):
            document["Properties"]["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return document

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        # moto's update deletes and re-creates the parameter (losing its history); AWS writes a
        # new version. A new version is what the API then shows.
        from moto.ssm.models import ssm_backends

        backend = ssm_backends[request.account_id][request.region]
        properties = request.properties
        name = state.physical_id
        if properties.get("Name", name) != name:
            return super().update(request, state, old_properties)
        backend.put_parameter(
            name=name, description=properties.get("Description"), value=properties.get("Value"),
            parameter_type=properties.get("Type"), allowed_pattern=properties.get("AllowedPattern"),
            keyid=None, overwrite=True, tags=[], data_type=properties.get("DataType", "text"),
            tier=properties.get("Tier"), policies=properties.get("Policies"),
        )
        return self.state_from(backend.get_parameter(name), request)


def apply() -> None:
    _public_parameters_patch()
    register(ParameterProvider("AWS::SSM::Parameter"))

