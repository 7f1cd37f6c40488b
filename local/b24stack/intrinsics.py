"""Evaluate the CloudFormation intrinsics a local stack needs, with local values.

Function environments and event properties reference tables, queues, parameters and pseudo
parameters. Locally those become DynamoDB Local table names, moto queue URLs and so on. The
resolver never raises on something it does not understand: it returns a visible placeholder
string instead, because one exotic property must not stop the whole stack from starting.

Parameter values: a Parameter that some function's environment variable is assigned to
(``B24_CLIENT_ID: !Ref ClientId``) takes its local value from that variable in the runner's
environment (or the stack's ``env_overrides``) when set, else the Parameter's Default. So a
developer configures a local stack exactly like the deployed one, without a second list.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from .template import FUNCTION_TYPE, HTTP_API_TYPE, LAYER_TYPE, QUEUE_TYPE, TABLE_TYPE, Template

__all__ = ["DEFAULT_ACCOUNT_ID", "NO_VALUE", "Resolver", "api_id", "placeholder"]

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match the ones moto makes


class _NoValue:
    """``AWS::NoValue``: the property is removed from its parent."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def placeholder(kind: str, detail: Any) -> str:
    """The string an unresolvable intrinsic becomes: obvious in logs, harmless in env vars."""
    return f"UNRESOLVED({kind}:{detail})"


class Resolver:
    """Resolves intrinsics of one template against local physical resources.

    ``refs`` / ``attrs`` hold values learned while the stack starts (a queue URL is known only
    after moto created the queue); everything else is computed from the template.
    """

    def __init__(
        self,
        template: Template,
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        stack_name: str = "local",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.environ: Mapping[str, str] = environ if environ is not None else {}
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self.sqs_endpoint: str | None = None
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self._bindings = self._parameter_bindings()

    # -- parameters ---------------------------------------------------------------------------

    def _parameter_bindings(self) -> dict[str, list[str]]:
        """Parameter name -> env var names assigned exactly ``!Ref Parameter``."""
        params = self.template.parameters
        found: dict[str, list[str]] = {}
        sources = [self.template.function_globals]
        sources += [res.get("Properties") or {} for _, res in self.template.of_type(FUNCTION_TYPE)]
        for props in sources:
            variables = ((props.get("Environment") or {}).get("Variables")) or {}
            if not isinstance(variables, dict):
                continue
            for var, value in variables.items():
                if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in params:
                    names = found.setdefault(value["Ref"], [])
                    if var not in names:
                        names.append(var)
        return found

    def parameter_value(self, name: str) -> Any:
        spec = self.template.parameters.get(name) or {}
        value: Any = None
        for var in self._bindings.get(name, []):
            if var in self.environ:
                value = self.environ[var]
                break
        if value is None:
            value = spec.get("Default")
        if value is None:
            return ""
        ptype = str(spec.get("Type", "String"))
        if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
            if isinstance(value, list):
                return [str(v) for v in value]
            return [v.strip() for v in str(value).split(",")] if str(value) else []
        return _to_str(value)

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        expr = self.template.conditions.get(name)
        if expr is None or name in self._evaluating:
            return False
        self._evaluating.add(name)
        try:
            result = self._truth(expr)
        finally:
            self._evaluating.discard(name)
        self._conditions[name] = result
        return result

    def _truth(self, expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            key, arg = next(iter(expr.items()))
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
                left, right = (self.resolve(a) for a in arg)
                return _to_str(left) == _to_str(right)
            if key == "Fn::Not" and isinstance(arg, list) and arg:
                return not self._truth(arg[0])
            if key == "Fn::And" and isinstance(arg, list):
                return all(self._truth(a) for a in arg)
            if key == "Fn::Or" and isinstance(arg, list):
                return any(self._truth(a) for a in arg)
        value = self.resolve(expr)
        return _to_str(value).lower() == "true"

    def resource_enabled(self, logical_id: str) -> bool:
        """False when the resource carries a ``Condition`` that is false locally."""
        cond = self.template.resources.get(logical_id, {}).get("Condition")
        return True if cond is None else self.condition(str(cond))

    # -- names and ARNs -----------------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        """The name a table/queue/function gets: its explicit name property, else the logical id."""
        rtype = self.template.resource_type(logical_id)
        props = self.template.properties(logical_id)
        key = {TABLE_TYPE: "TableName", QUEUE_TYPE: "QueueName", FUNCTION_TYPE: "FunctionName"}.get(
            rtype or "", ""
        )
        name = _to_str(self.resolve(props[key])) if key and props.get(key) is not None else logical_id
        if (
            rtype == QUEUE_TYPE
            and _truthy(self.resolve(props.get("FifoQueue")))
            and not name.endswith(".fifo")
        ):
            name += ".fifo"
        return name

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    # -- Ref / GetAtt -------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.arn("cloudformation", f"stack/{self.stack_name}/local"),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.template.parameters:
            return self.parameter_value(name)
        if name in self.refs:
            return self.refs[name]
        base, _, suffix = name.partition(".")
        if suffix == "Alias" and self.template.resource_type(base) == FUNCTION_TYPE:
            # SAM's reference to a function's AutoPublishAlias: the alias ARN (one local version).
            alias = self.template.function_properties(base).get("AutoPublishAlias") or "live"
            return self.arn("lambda", f"function:{self.physical_name(base)}:{self.resolve_str(alias)}")
        rtype = self.template.resource_type(name)
        if rtype in (TABLE_TYPE, FUNCTION_TYPE):
            return self.physical_name(name)
        if rtype == QUEUE_TYPE:
            if self.sqs_endpoint:
                return f"{self.sqs_endpoint}/{self.account_id}/{self.physical_name(name)}"
            return placeholder("QueueUrl", name)
        if rtype == LAYER_TYPE:
            return self.arn("lambda", f"layer:{name}:1")
        if rtype == HTTP_API_TYPE:
            return api_id(name)
        return placeholder("Ref", name)

    def get_att(self, logical_id: str, attr: str) -> Any:
        if (logical_id, attr) in self.attrs:
            return self.attrs[(logical_id, attr)]
        rtype = self.template.resource_type(logical_id)
        if rtype == QUEUE_TYPE:
            name = self.physical_name(logical_id)
            by_attr = {"Arn": self.arn("sqs", name), "QueueName": name, "QueueUrl": self.ref(logical_id)}
            if attr in by_attr:
                return by_attr[attr]
        elif rtype == TABLE_TYPE:
            table_arn = self.arn("dynamodb", f"table/{self.physical_name(logical_id)}")
            if attr == "Arn":
                return table_arn
            if attr == "StreamArn":
                return f"{table_arn}/stream/local"
        elif rtype == FUNCTION_TYPE and attr == "Arn":
            return self.arn("lambda", f"function:{self.physical_name(logical_id)}")
        return placeholder("GetAtt", f"{logical_id}.{attr}")

    # -- generic resolution -------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside ``value``; dropped ``AWS::NoValue`` entries vanish."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref" or key.startswith("Fn::"):
                try:
                    return self._intrinsic(key, arg)
                except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                    return placeholder(key, _short(arg))
        out: dict[str, Any] = {}
        for key, item in value.items():
            resolved = self.resolve(item)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def resolve_str(self, value: Any) -> str:
        """Resolve to a string, as env var values and names must be."""
        return _to_str(self.resolve(value))

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(str(self.resolve(arg)))
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else [self.resolve(a) for a in arg]
            return self.get_att(str(parts[0]), ".".join(str(p) for p in parts[1:]))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Join":
            delim, items = arg
            items = self.resolve(items)
            if not isinstance(items, list):
                return placeholder(key, _short(arg))
            return str(delim).join(_to_str(i) for i in items)
        if key == "Fn::If":
            cond, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(cond)) else when_false)
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._truth({key: arg})
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delim, text = self.resolve(arg)
            return str(text).split(str(delim))
        if key == "Fn::GetAZs":
            return [f"{self.region}{suffix}" for suffix in "abc"]
        if key == "Fn::FindInMap":
            return self._find_in_map(arg)
        if key == "Fn::Base64":
            return base64.b64encode(self.resolve_str(arg).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            resolved = self.resolve(arg)
            return len(resolved) if isinstance(resolved, list) else placeholder(key, _short(arg))
        return placeholder(key, _short(arg))

    def _find_in_map(self, arg: Any) -> Any:
        map_name, top, second = (self.resolve(a) for a in arg[:3])
        try:
            return self.resolve(self.template.mappings[str(map_name)][str(top)][str(second)])
        except (KeyError, TypeError):
            if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self.resolve(arg[3]["DefaultValue"])
            raise

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), (arg[1] if len(arg) > 1 else {}) or {}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return _to_str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attr = name.partition(".")
                return _to_str(self.get_att(logical_id, attr))
            return _to_str(self.ref(name))

        return _SUB_VAR.sub(replace, text)


def api_id(logical_id: str) -> str:
    """A stable 10-character id shaped like an API Gateway API id."""
    digest = 0
    for char in logical_id:
        digest = (digest * 131 + ord(char)) % (36**10)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(10):
        digest, rem = divmod(digest, 36)
        out += alphabet[rem]
    return out


def _truthy(value: Any) -> bool:
    return value is True or _to_str(value).lower() == "true"


def _to_str(value: Any) -> str:
    if value is NO_VALUE or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_to_str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
