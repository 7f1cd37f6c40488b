"""template.yaml's deploy-time promises (docs/deploy.md): no made-up client_id, and a custom domain
that, once set, is the address of every URL the stack hands out or binds into portals."""

from __future__ import annotations

import re
from pathlib import Path

from b24stack.template import parse_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = parse_template((ROOT / "template.yaml").read_text(encoding="utf-8"))


def test_the_client_id_has_no_default_and_an_empty_one_is_refused():
    spec = TEMPLATE["Parameters"]["B24ClientId"]
    assert "Default" not in spec
    assert spec["MinLength"] == 1 and not re.fullmatch(spec["AllowedPattern"], "")


def test_a_custom_domain_needs_a_certificate_and_maps_the_api():
    assert TEMPLATE["Parameters"]["CustomDomainName"]["Default"] == ""
    assert re.fullmatch(TEMPLATE["Parameters"]["CustomDomainName"]["AllowedPattern"], "b24.example.com")
    assert not re.fullmatch(
        TEMPLATE["Parameters"]["CustomDomainName"]["AllowedPattern"], "https://b24.example.com"
    )
    rule = TEMPLATE["Rules"]["CustomDomainNeedsCertificate"]
    assert "CertificateArn" in str(rule["Assertions"])
    resources = TEMPLATE["Resources"]
    assert (
        resources["ApiDomain"]["Condition"] == resources["ApiDomainMapping"]["Condition"] == "HasCustomDomain"
    )
    assert resources["ApiDomainMapping"]["Properties"]["ApiId"] == {"Ref": "BitrixApi"}


def test_every_url_handed_out_or_bound_uses_the_custom_domain_when_set():
    outputs = TEMPLATE["Outputs"]
    for name, path in (
        ("ApiUrl", ""),
        ("InstallUrl", "/install"),
        ("EventsUrl", "/events"),
        ("AppUrl", "/app"),
    ):
        condition, with_domain, _without = outputs[name]["Value"]["Fn::If"]
        assert condition == "HasCustomDomain" and with_domain == {
            "Fn::Sub": f"https://${{CustomDomainName}}{path}"
        }
    # B24_PUBLIC_URL is what the functions bind into every portal's event handlers.
    public = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["B24_PUBLIC_URL"]
    assert "CustomDomainName" in str(public) and "B24PublicUrl" in str(public)
