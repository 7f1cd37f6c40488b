"""Read a SAM/CloudFormation template into plain Python data.

CloudFormation YAML uses short-form tags (``!Ref``, ``!GetAtt``, ``!Sub`` ...) that a plain YAML
loader rejects. We turn each tag into its long JSON form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``)
so the rest of the runner only ever deals with one representation, the same one CloudFormation
itself evaluates. Nothing here resolves values: that is :mod:`b24stack.intrinsics`' job.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "FUNCTION_TYPE",
    "HTTP_API_TYPE",
    "LAYER_TYPE",
    "QUEUE_TYPE",
    "TABLE_TYPE",
    "Template",
    "find_template",
    "load_template",
    "parse_template",
]

FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
HTTP_API_TYPE = "AWS::Serverless::HttpApi"
TABLE_TYPE = "AWS::DynamoDB::Table"
QUEUE_TYPE = "AWS::SQS::Queue"
KMS_KEY_TYPE = "AWS::KMS::Key"

# Short tags whose long form is simply {"Fn::<Name>": value}.
_FN_TAGS = (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Equals",
    "Not",
    "And",
    "Or",
    "ToJsonString",
    "Length",
    "Transform",
)


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation tags and keeps dates as strings.

    ``AWSTemplateFormatVersion: 2010-09-09`` must stay a string, so the implicit timestamp
    resolver is removed (on a copy of the class-level table, not on SafeLoader itself).
    """


_CfnLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)


def _make_fn(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {f"Fn::{name}": _node_value(loader, node)}

    return construct


def _construct_ref(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _node_value(loader, node)}


def _construct_condition(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _node_value(loader, node)}


def _construct_getatt(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if isinstance(value, str):
        # CloudFormation splits "Res.Attr.Sub" on the first dot only.
        logical_id, _, attr = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attr]}
    return {"Fn::GetAtt": value}


_CfnLoader.add_constructor("!Ref", _construct_ref)
_CfnLoader.add_constructor("!Condition", _construct_condition)
_CfnLoader.add_constructor("!GetAtt", _construct_getatt)
for _name in _FN_TAGS:
    _CfnLoader.add_constructor(f"!{_name}", _make_fn(_name))


def parse_template(text: str) -> dict[str, Any]:
    """Parse template text (YAML or JSON) into long-form dicts."""
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError("template is not a mapping")
    return data


def find_template(project_dir: Path) -> Path:
    """The template a project runs: template.yaml, else template.yml, else template.json."""
    for name in ("template.yaml", "template.yml", "template.json"):
        candidate = project_dir / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no template.yaml in {project_dir}")


@dataclass
class Template:
    """A parsed template plus the directory its relative CodeUri/ContentUri paths start from."""

    data: dict[str, Any]
    base_dir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        res = self.data.get("Resources") or {}
        return {k: v for k, v in res.items() if isinstance(v, dict)}

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("Parameters") or {})

    @property
    def conditions(self) -> dict[str, Any]:
        return dict(self.data.get("Conditions") or {})

    @property
    def mappings(self) -> dict[str, Any]:
        return dict(self.data.get("Mappings") or {})

    @property
    def function_globals(self) -> dict[str, Any]:
        return dict((self.data.get("Globals") or {}).get("Function") or {})

    def resource_type(self, logical_id: str) -> str | None:
        res = self.resources.get(logical_id)
        return None if res is None else str(res.get("Type", ""))

    def of_type(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(logical id, resource) for every resource of one of ``types``, in template order."""
        for logical_id, res in self.resources.items():
            if res.get("Type") in types:
                yield logical_id, res

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources.get(logical_id, {}).get("Properties") or {})

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's Properties with Globals.Function merged in, as SAM does it.

        SAM's rule: the function's own scalar wins, maps merge key by key (recursively), and
        lists are additive with the global entries first.
        """
        merged: dict[str, Any] = _merge_globals(self.function_globals, self.properties(logical_id))
        return merged


def _merge_globals(glob: Any, own: Any) -> Any:
    if (
        isinstance(glob, dict)
        and isinstance(own, dict)
        and not _is_intrinsic(glob)
        and not _is_intrinsic(own)
    ):
        merged = copy.deepcopy(glob)
        for key, value in own.items():
            merged[key] = _merge_globals(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(glob, list) and isinstance(own, list):
        return copy.deepcopy(glob) + copy.deepcopy(own)
    return copy.deepcopy(own)


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in {"Ref", "Condition"} | {
        k for k in value if k.startswith("Fn::")
    }


def load_template(path: Path | str) -> Template:
    """Load a template file; relative paths inside it are taken from the file's directory."""
    p = Path(path).resolve()
    return Template(data=parse_template(p.read_text(encoding="utf-8")), base_dir=p.parent)


def default_app(project_dir: Path) -> str:
    """The app a stack of this project runs unless told otherwise: the AppModule parameter's default
    (template.yaml is the one place that names it)."""
    text = find_template(project_dir).read_text(encoding="utf-8")
    parameter = (parse_template(text).get("Parameters") or {}).get("AppModule") or {}
    return str(parameter.get("Default") or "")
