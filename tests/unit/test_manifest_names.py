"""The manifest: shape, and every name a real Bitrix24 name (checked at build and test time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from b24core.capabilities.manifest import (
    KnownNames,
    Manifest,
    ManifestError,
    check_known_names,
    load_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES = ROOT / "tools" / "b24_names.json"


def manifest(**features) -> Manifest:
    return Manifest.from_dict({"scopes": ["crm"], "features": features})


def test_the_shipped_manifest_names_only_real_bitrix24_methods_events_and_scopes():
    known = KnownNames.load(NAMES)
    assert len(known.methods) > 1000 and "crm.deal.get" in known.methods and "ONCRMDEALADD" in known.events
    check_known_names(load_manifest(), known)


def test_an_unknown_method_is_rejected_with_a_clear_message():
    bad = manifest(crm={"scopes": ["crm"], "methods": ["crm.deal.lst"], "events": ["ONCRMDEALCHANGE"]})
    with pytest.raises(ManifestError) as err:
        check_known_names(bad, KnownNames.load(NAMES))
    message = str(err.value)
    assert "feature 'crm': method 'crm.deal.lst' (did you mean crm.deal.list?)" in message
    assert "feature 'crm': event 'ONCRMDEALCHANGE'" in message
    assert "bitrix24/b24restdocs@" in message


def test_the_build_step_refuses_such_a_manifest(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text(
        json.dumps({"scopes": ["crm"], "features": {"crm": {"scopes": ["crm"], "methods": ["crm.deal.lst"]}}})
    )
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "b24_names.py"), "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "crm.deal.lst" in run.stderr
    good = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "b24_names.py"), "check"], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stderr


def test_declared_custom_methods_of_a_box_pass_the_name_check():
    custom = Manifest.from_dict(
        {
            "scopes": [],
            "custom_methods": ["acme.sync.run"],
            "features": {"sync": {"methods": ["acme.sync.run"]}},
        }
    )
    check_known_names(custom, KnownNames.load(NAMES))


def test_per_type_events_are_accepted():
    dyn = manifest(items={"events": ["ONCRMDYNAMICITEMADD_147"]})
    check_known_names(dyn, KnownNames.load(NAMES))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"x": {"methods": "crm.deal.get"}}, "must be a list of names"),
        ({"x": {"methods": ["crm.deal.get"], "required": "yes"}}, "'required' must be true or false"),
        (
            {"x": {"scopes": ["telephony"], "methods": ["telephony.externalcall.register"]}},
            "missing from the top-level",
        ),
        ({"x": {"events": ["ONAPPUNINSTALL"]}}, "the bundle handles install, update and uninstall itself"),
        ({"x": {}}, "names no method, event or placement"),
        ({"X-Y": {"methods": ["crm.deal.get"]}}, "lower-case"),
        ({"x": {"methods": ["crm.deal.get"], "events": ["ONCRMDEALADD", "ONCRMDEALADD"]}}, "repeats"),
        ({"x": {"methods": ["crm.deal.get"], "modul": "crm"}}, "unknown key"),
    ],
)
def test_bad_shapes_are_rejected_with_a_clear_message(spec, message):
    with pytest.raises(ManifestError, match=message):
        manifest(**spec)


def test_the_shipped_object_kinds_name_only_real_list_methods_and_events():
    from b24core.capabilities.manifest import check_catalog
    from b24core.capabilities.objects import catalog

    assert set(catalog()) == {"crm.deal", "crm.lead", "crm.contact", "crm.company", "tasks.task"}
    assert check_catalog(KnownNames.load(NAMES)) == []
    assert (
        catalog()["tasks.task"].row_modified == "changedDate"
        and catalog()["tasks.task"].result_key == "tasks"
    )


def test_a_features_objects_come_from_the_catalog_or_in_full_and_are_checked():
    from b24core.capabilities.manifest import object_problems

    m = manifest(
        crm={
            "scopes": ["crm"],
            "methods": ["crm.deal.list", "crm.item.list"],
            "events": ["ONCRMDEALADD"],
            "objects": [
                "crm.deal",
                {
                    "kind": "crm.invoice",
                    "list": "crm.item.list",
                    "add": "onCrmDynamicItemAdd",
                    "update": "ONCRMDYNAMICITEMUPDATE",
                    "delete": "ONCRMDYNAMICITEMDELETE",
                    "modified": "updatedTime",
                },
            ],
        }
    )
    assert [o.kind for o in m.objects()] == ["crm.deal", "crm.invoice"]
    assert m.object_of_event("ONCRMDEALUPDATE").kind == "crm.deal"
    assert m.objects()[1].add == "ONCRMDYNAMICITEMADD" and m.objects()[1].modified == "updatedTime"
    assert object_problems(m.objects(), KnownNames.load(NAMES), "x") == []
    with pytest.raises(ManifestError, match=r"crm\.deal\.list: add it to the feature's 'methods'"):
        manifest(crm={"scopes": ["crm"], "methods": ["crm.deal.get"], "objects": ["crm.deal"]})
    with pytest.raises(ManifestError, match=r"unknown object kind 'crm\.dael'"):
        manifest(crm={"scopes": ["crm"], "methods": ["crm.deal.list"], "objects": ["crm.dael"]})
    with pytest.raises(ManifestError, match="needs add"):
        manifest(crm={"scopes": ["crm"], "methods": ["x.list"], "objects": [{"kind": "x", "list": "x.list"}]})
    bad = manifest(
        crm={
            "scopes": ["crm"],
            "methods": ["crm.deal.lst"],
            "objects": [{"kind": "d", "list": "crm.deal.lst", "add": "A", "update": "B", "delete": "C"}],
        }
    )
    assert "object 'd' list method 'crm.deal.lst'" in " ".join(
        object_problems(bad.objects(), KnownNames.load(NAMES), "x")
    )
