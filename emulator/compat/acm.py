"""ACM: AWS::CertificateManager::Certificate.

moto gap covered: no CloudFormation model for AWS::CertificateManager::Certificate; and moto's
ACM "issues" any requested certificate after 60 seconds of wall clock (ACM_VALIDATION_WAIT),
with no validation at all.

Here a certificate is requested in moto's ACM and issued only the way CloudFormation can get it
issued without a human: DNS validation with a DomainValidationOptions entry (HostedZoneId) for
every domain, naming a hosted zone of the emulator's Route 53 that contains the domain. The
validation CNAME records are written into those zones and the certificate becomes ISSUED. In
any other case (EMAIL validation, DNS without a hosted zone for a domain) CloudFormation would
wait for someone to validate until the stack times out; the emulator fails the resource at once
with that reason instead of waiting. A private CA's certificate (CertificateAuthorityArn) is
issued at once, as in AWS.
"""
from __future__ import annotations

import hashlib
from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.acm.models import acm_backends

    return acm_backends[request.account_id][request.region]


def _zone_for(request: Request, zone_id: str, domain: str) -> Any:
    from moto.route53.models import route53_backends

    try:
        zone = route53_backends[request.account_id][request.partition].get_hosted_zone(zone_id)
    except Exception:
        raise ResourceFailure(f"Resource handler returned message: \"Hosted zone {zone_id} not found\" "
                              f"(Error Code: NoSuchHostedZone) [{domain}]") from None
    zone_name = zone.name.rstrip(".")
    bare = domain.lstrip("*.")
    if not (bare == zone_name or bare.endswith("." + zone_name)):
        raise ResourceFailure(f"Hosted zone {zone_id} ({zone_name}) cannot validate {domain}: the domain is not in the zone")
    return zone


class CertificateProvider(Provider):
    resource_type = "AWS::CertificateManager::Certificate"
    support = "created"

    def create(self, request: Request) -> State:
        from moto.route53.models import route53_backends

        acm = backend(request)
        p = request.properties
        domain = p["DomainName"]
        sans = list(p.get("SubjectAlternativeNames") or [])
        authority = p.get("CertificateAuthorityArn")
        tags = p.get("Tags") or []
        arn = acm.request_certificate(domain, None, sans or None, tags, cert_authority_arn=authority)
        certificate = acm.get_certificate(arn)
        if not authority:
            method = p.get("ValidationMethod", "EMAIL")
            options = {o["DomainName"]: o for o in p.get("DomainValidationOptions") or []}
            names = [domain] + [s for s in sans if s != domain]
            problem = None
            if method != "DNS":
                problem = ("EMAIL validation needs someone to click the link in the validation e-mails; CloudFormation "
                           "would wait in CREATE_IN_PROGRESS until the stack times out")
            else:
                zones = {}
                for name in names:
                    option = options.get(name) or options.get(name.lstrip("*."))
                    if not option or not option.get("HostedZoneId"):
                        problem = (f"DNS validation of {name} needs a DomainValidationOptions entry with a HostedZoneId; "
                                   f"without it CloudFormation waits for the CNAME to be created by hand until the stack "
                                   f"times out")
                        break
                    zones[name] = _zone_for(request, option["HostedZoneId"], name)
                if problem is None:
                    route53 = route53_backends[request.account_id][request.partition]
                    for name, zone in zones.items():
                        token = hashlib.sha256(f"{arn}/{name}".encode()).hexdigest()
                        record = f"_{token[:32]}.{name.lstrip('*.')}"
                        route53.change_resource_record_sets(zone.id, [{"Action": "UPSERT", "ResourceRecordSet": {
                            "Name": record, "Type": "CNAME", "TTL": 300,
                            "ResourceRecords": [{"Value": f"_{token[32:]}.acm-validations.aws."}]}}])
            if problem:
                acm.delete_certificate(arn)
                raise ResourceFailure(f"Certificate {arn} for {domain} stays PENDING_VALIDATION: {problem}")
            certificate.status = "ISSUED"
        return State(physical_id=arn)

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        if request.properties.get("Tags"):
            backend(request).add_tags_to_certificate(state.physical_id, request.properties["Tags"])
        return state

    def delete(self, request: Request, state: State) -> None:
        acm = backend(request)
        certificate = acm._certificates.get(state.physical_id)
        if certificate is None:
            return
        if certificate.in_use_by:
            raise ResourceFailure(f"Resource handler returned message: \"Certificate {state.physical_id} in account "
                                  f"{request.account_id} is in use.\" (Error Code: ResourceInUseException)")
        acm.delete_certificate(state.physical_id)


def _in_use_patch() -> None:
    # moto gap: deleting a load balancer listener (or the load balancer) never releases its
    # certificate in moto's ACM (in_use_by only grows), so a certificate can never be deleted
    # after it was used once. The listener's ARN is removed from in_use_by on deletion.
    from moto.acm.models import acm_backends
    from moto.elbv2.models import ELBv2Backend

    original = ELBv2Backend.delete_listener

    def delete_listener(self: Any, listener_arn: str) -> Any:
        listener = original(self, listener_arn)
        certificate = getattr(listener, "certificate", None)
        if certificate:
            parts = certificate.split(":")
            try:
                bundle = acm_backends[parts[4]][parts[3]]._certificates.get(certificate)
                if bundle is not None and listener_arn in bundle.in_use_by:
                    bundle.in_use_by.remove(listener_arn)
            except Exception:
                pass
        return listener

    ELBv2Backend.delete_listener = delete_listener


def apply() -> None:
    _in_use_patch()
    register(CertificateProvider())
