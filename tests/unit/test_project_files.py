"""Things that must agree across files: pins, the manifest, the template's wiring."""

import ast
import re
import sys
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


DEV_ONLY = {
    "pytest",
    "pytest-timeout",
    "mypy",
    "ruff",
    "playwright",
    "aws-sam-cli",
    "cfn-lint",
    "fast-bitrix24",
}
# What an import name is installed as (the standard library needs nothing).
DISTRIBUTION = {"yaml": "pyyaml", "botocore": "boto3", "aws_lambda_powertools": "aws-lambda-powertools"}


def _extra(name: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][name])


def _dist(requirement: str) -> str:
    return re.split(r"[\[=<>]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_make_run_installs_the_runtime_and_the_local_stacks_own_packages_and_nothing_for_development():
    run = {_dist(r) for r in _extra("run")}
    assert not run & DEV_ONLY, run & DEV_ONLY
    assert not any(d.startswith(("types-", "boto3-stubs", "cfn-lint")) for d in run)
    assert "b24-serverless-bundle[run]" in _extra("dev")  # the test toolchain holds everything run needs
    runtime = {
        _dist(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    ours = {"b24core", "b24sim", "b24stack", "b24run", "b24cli", "deal_mirror", "lead_rotation"}
    imported: set[str] = set()
    for folder in ("local/b24sim", "local/b24stack", "local/b24run", "cli/b24cli", "apps"):
        for path in (ROOT / folder).rglob("*.py"):
            if (
                path.name == "iam.py"
            ):  # the IAM evaluator of the tests (samtranslator): never run by `make run`
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
    needed = {DISTRIBUTION.get(m, m).lower() for m in imported - ours if m not in sys.stdlib_module_names}
    assert needed <= runtime | run, needed - (runtime | run)
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(VENV\)/\.installed-run ", make, re.M), (
        "make run must not need the dev toolchain"
    )
