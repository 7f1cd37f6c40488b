"""template.yaml's ExistingTableName (docs/restore.md): empty, the stack owns AppTable; a name, every
function, policy and output uses that table and nothing still points at AppTable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from b24stack.intrinsics import Resolver
from b24stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "AWS::Serverless::Function"


class _WithTable(Resolver):
    """The resolver as a deploy with ``--parameter-overrides ExistingTableName=...`` would see it."""

    table = ""

    def parameter_value(self, name: str) -> Any:
        return self.table if name == "ExistingTableName" else super().parameter_value(name)


def _wiring(table: str) -> tuple[Resolver, str]:
    template = load_template(ROOT / "template.yaml")
    resolver = _WithTable(template, region="eu-west-1", environ={})
    resolver.table = table
    wired = {
        "globals": template.function_globals,
        "functions": {lid: template.properties(lid) for lid, _ in template.of_type(FUNCTION)},
        "outputs": template.data.get("Outputs", {}),
    }
    return resolver, json.dumps(resolver.resolve(wired), default=str)


def test_by_default_the_stack_creates_and_uses_its_own_table():
    resolver, text = _wiring("")
    assert resolver.resource_enabled("AppTable")
    assert set(re.findall(r"table/([A-Za-z0-9_.-]+)", text)) == {"AppTable"}
    assert '"TABLE_NAME": "AppTable"' in text


def test_a_named_table_replaces_app_table_in_every_function_policy_and_output():
    resolver, text = _wiring("app-restored-1")
    assert not resolver.resource_enabled("AppTable")
    assert set(re.findall(r"table/([A-Za-z0-9_.-]+)", text)) == {"app-restored-1"}
    assert "table/app-restored-1/index/*" in text  # the functions that query gsi1 may query its index
    assert '"TABLE_NAME": "app-restored-1"' in text
    assert "AppTable" not in text
