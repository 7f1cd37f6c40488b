"""Gradual deployment in template.yaml: every function is published behind the "live" alias, shifted by
CodeDeploy and rolled back by its own error alarm; whatever calls a function calls the alias."""

from __future__ import annotations

from pathlib import Path

from b24stack.intrinsics import Resolver
from b24stack.template import FUNCTION_TYPE, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")


def functions() -> list[str]:
    return [logical_id for logical_id, _ in TEMPLATE.of_type(FUNCTION_TYPE)]


def test_every_function_is_published_behind_live_and_shifted_gradually():
    for fn in functions():
        props = TEMPLATE.function_properties(fn)
        assert props.get("AutoPublishAlias") == "live", fn
        preference = props.get("DeploymentPreference") or {}
        assert preference.get("Type") == {"Ref": "DeploymentType"}, fn
        assert TEMPLATE.parameters["DeploymentType"]["Default"].startswith(("Canary", "Linear"))


def test_each_function_is_rolled_back_by_its_own_error_alarm():
    for fn in functions():
        [alarm] = [a["Ref"] for a in TEMPLATE.function_properties(fn)["DeploymentPreference"]["Alarms"]]
        # A plain metric alarm or a metric-math rate (errors / invocations): it watches this
        # function's Errors either way.
        props = TEMPLATE.properties(alarm)
        watched = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        errors = [w for w in watched if w.get("MetricName") == "Errors"]
        assert errors, fn
        assert all({"Name": "FunctionName", "Value": {"Ref": fn}} in w["Dimensions"] for w in errors), fn


def _refs(value: object) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return [str(value["Ref"])]
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_functions_and_operators_invoke_the_alias_not_latest():
    names = set(functions())
    for fn in functions():
        env = (TEMPLATE.function_properties(fn).get("Environment") or {}).get("Variables") or {}
        called = [r for r in _refs(env) if r.partition(".")[0] in names]
        assert all(r.endswith(".Alias") for r in called), (fn, called)
    outputs = TEMPLATE.data.get("Outputs") or {}
    invoked = [r for key, out in outputs.items() if key.endswith("FunctionName") for r in _refs(out)]
    assert invoked and all(r.endswith(".Alias") for r in invoked), invoked


def test_the_local_stack_resolves_an_alias_to_an_arn_its_invoke_api_accepts():
    resolver = Resolver(TEMPLATE, region="us-east-1", environ={})
    arn = resolver.resolve({"Ref": "CapabilityCheckFunction.Alias"})
    name = resolver.resolve({"Ref": "CapabilityCheckFunction"})
    assert arn == f"arn:aws:lambda:us-east-1:{resolver.account_id}:function:{name}:live"
