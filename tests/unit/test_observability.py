"""The template's alarms, dashboard and saved queries agree with each other and with docs/runbook.md."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from b24stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ALARM = "AWS::CloudWatch::Alarm"
COMPOSITE = "AWS::CloudWatch::CompositeAlarm"
TOPIC = [{"Ref": "AlarmTopic"}]


@lru_cache(maxsize=1)
def _resources() -> dict:
    return load_template(ROOT / "template.yaml").data["Resources"]


def _of(kind: str) -> dict:
    return {k: v["Properties"] for k, v in _resources().items() if v["Type"] == kind}


def _runbook_sections() -> dict[str, str]:
    text = (ROOT / "docs/runbook.md").read_text()
    parts = re.split(r"^## (\w+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _composite_children() -> dict[str, set[str]]:
    """Composite alarm -> the alarms its rule names (``ALARM(${X.Arn})``)."""
    out = {}
    for name, props in _of(COMPOSITE).items():
        rule = props["AlarmRule"]["Fn::Sub"]
        out[name] = set(re.findall(r"ALARM\(\$\{(\w+)\.Arn\}\)", rule))
    return out


def test_every_alarm_has_a_runbook_section_saying_what_it_means_where_to_look_and_what_to_do():
    alarms = set(_of(ALARM)) | set(_of(COMPOSITE))
    sections = _runbook_sections()
    assert len(alarms) >= 20
    assert alarms - set(sections) == set(), "alarms without a runbook section"
    assert {s for s in sections if s.endswith("Alarm")} - alarms == set(), "runbook sections of no alarm"
    for name in alarms:
        body = sections[name]
        for part in ("**Means**", "**Look at**", "**Do**"):
            assert part in body, f"{name}: no {part}"
        description = (_of(ALARM) | _of(COMPOSITE))[name]["AlarmDescription"]
        assert f"docs/runbook.md#{name.lower()}" in description, name


def test_every_alarm_reaches_the_alarm_topic_itself_or_through_a_composite_that_does():
    composites = _of(COMPOSITE)
    children = _composite_children()
    for name, props in composites.items():
        assert props["AlarmActions"] == TOPIC, name
        assert children[name] and children[name] <= set(_of(ALARM)), name
    quiet = set().union(*children.values())
    for name, props in _of(ALARM).items():
        if name in quiet:  # one page per outage: the composite notifies
            assert "AlarmActions" not in props, name
        else:
            assert props.get("AlarmActions") == TOPIC, name


def test_no_alarm_fires_on_a_single_datapoint_above_zero_and_each_says_how_missing_data_counts():
    for name, props in _of(ALARM).items():
        evaluations = props["EvaluationPeriods"]
        datapoints = props.get("DatapointsToAlarm", evaluations)
        assert 1 <= datapoints <= evaluations, name
        assert props["Threshold"] > 0 or datapoints > 1, f"{name} is '> 0 once': noise at fleet scale"
        assert props["TreatMissingData"] in ("notBreaching", "breaching", "ignore", "missing"), name
        if "Metrics" in props:  # metric math: one expression returned, over metrics of one period
            returned = [m for m in props["Metrics"] if m.get("ReturnData", True)]
            assert len(returned) == 1 and "Expression" in returned[0], name
            periods = {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m}
            assert len(periods) == 1, name
            period = periods.pop()
        else:
            period = props["Period"]
        assert period * evaluations <= 24 * 3600, name


def test_every_function_has_an_error_rate_alarm_and_a_throttle_alarm():
    functions = {k for k, v in _resources().items() if v["Type"] == "AWS::Serverless::Function"}
    watched: dict[str, set[str]] = {}
    for props in _of(ALARM).values():
        for m in props.get("Metrics", []):
            stat = m.get("MetricStat")
            if stat and stat["Metric"]["Namespace"] == "AWS/Lambda":
                for dim in stat["Metric"].get("Dimensions", []):
                    watched.setdefault(stat["Metric"]["MetricName"], set()).add(dim["Value"]["Ref"])
    assert functions <= watched["Errors"]
    assert functions <= watched["Throttles"]
    for fn in functions:  # the per-function error alarms keep their names (deployments may watch them)
        assert f"{fn.removesuffix('Function')}ErrorsAlarm" in _of(ALARM), fn


def test_the_dashboard_is_json_naming_only_resources_of_the_template_and_shows_every_alarm():
    resources = _resources()
    body, variables = resources["FleetDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([\w:]+)(?:\.\w+)?\}", body))
    assert {n for n in names if "::" not in n} <= set(resources) | set(variables)
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    shown = [a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]]
    alarms = set(_of(ALARM)) | set(_of(COMPOSITE))
    assert len(shown) == len(alarms)
    assert set(re.findall(r"\$\{(\w+)\.Arn\}", body)) == alarms
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24


def test_saved_queries_read_the_templates_log_groups():
    queries = _of("AWS::Logs::QueryDefinition")
    log_groups = {k for k, v in _resources().items() if v["Type"] == "AWS::Logs::LogGroup"}
    assert len(queries) >= 5
    for name, props in queries.items():
        assert {g["Ref"] for g in props["LogGroupNames"]} <= log_groups, name
        assert props["QueryString"].strip(), name


def test_the_worker_knows_when_an_event_fails_its_last_receive():
    from b24core.worker.outcomes import MAX_RECEIVES

    queue = _resources()["EventsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
