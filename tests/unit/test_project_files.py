"""Things that must agree across files: pins, the manifest, the template's wiring."""

import re
import tomllib
from pathlib import Path

import yaml

from b24core.capabilities.manifest import Manifest, load_manifest

ROOT = Path(__file__).resolve().parents[2]


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_layer_requirements_match_project_pins():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line.strip()
        for line in (ROOT / "layers/b24core/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(layer) <= set(pins)
    assert all(re.match(r"^[A-Za-z0-9_.\-\[\]]+==", p) for p in pins + layer)


def test_the_deployed_apps_manifest_is_found_beside_its_module():
    manifest = load_manifest()
    assert any(f.required for f in manifest.features)
    from b24core.capabilities.manifest import manifest_path

    assert manifest_path() == ROOT / "apps/deal_mirror/b24app.manifest.json"


def test_manifest_rejects_bad_shapes():
    import pytest

    from b24core.capabilities.manifest import ManifestError

    with pytest.raises(ManifestError):
        Manifest.from_dict({"features": {"x": {"methods": "crm.deal.get"}}})


def test_every_function_has_a_handler_module_and_a_sample_event():
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    functions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert len(functions) >= 5
    for name, fn in functions.items():
        code = ROOT / fn["Properties"]["CodeUri"]
        module = fn["Properties"]["Handler"].split(".")[0]
        assert (code / f"{module}.py").exists(), name
        assert list((ROOT / "events").glob(f"{code.name}*.json")), f"no sample event for {name}"


def test_worker_visibility_timeout_is_at_least_six_times_its_timeout():
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    worker = template["Resources"]["EventWorkerFunction"]["Properties"]
    queue = template["Resources"]["EventsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
