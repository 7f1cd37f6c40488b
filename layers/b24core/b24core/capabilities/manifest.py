"""The app's capability manifest (b24app.manifest.json beside the app's module, apps/<app>/).

It says which scopes the app needs and which named features use which methods and events, and
whether a feature is required. The layer ships it (a link into the package) so every function reads
the same file; B24_MANIFEST overrides the path.

Shape checks run whenever the manifest is loaded. Whether every method, event and scope is a real
Bitrix24 name is checked at build and test time (``tools/b24_names.py check``, run by ``make
template`` and a unit test) against a list derived from the official REST docs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from b24core.capabilities.objects import ObjectSpec, ObjectSpecError, catalog, objects_of

#: Events the bundle binds itself for every portal: a feature must not claim them.
LIFECYCLE_EVENTS = ("ONAPPUNINSTALL", "ONAPPUPDATE")
NOT_BINDABLE = ("ONAPPINSTALL",)
_FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_FEATURE_KEYS = {
    "description",
    "required",
    "scopes",
    "methods",
    "events",
    "module",
    "placements",
    "objects",
}
_PLACEMENT_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Placement:
    """A place in Bitrix24's UI where the app shows a page (widgets/placements.md)."""

    code: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class Feature:
    name: str
    required: bool
    methods: tuple[str, ...]
    events: tuple[str, ...]
    scopes: tuple[str, ...]
    description: str = ""
    #: The Bitrix24 module that provides the feature (what a box admin installs or switches on).
    module: str = ""
    #: Placements (widget places in Bitrix24's UI, placement.bind) the feature shows its pages in.
    placements: tuple[Placement, ...] = ()
    #: Kinds of objects the feature works on, listable by modification time (the change audit and
    #: change polling list them; b24core.capabilities.objects).
    objects: tuple[ObjectSpec, ...] = ()


@dataclass(frozen=True)
class Manifest:
    scopes: tuple[str, ...]
    features: tuple[Feature, ...]
    #: Methods a box adds itself (settings/cloud-and-on-premise/on-premise/custom-methods.md): not in
    #: the docs, so the name check accepts them as declared.
    custom_methods: tuple[str, ...] = ()
    #: The app's name as its users know it (admin notifications).
    title: str = ""

    @cached_property
    def fingerprint(self) -> str:
        """What the app asks of a portal, as a short hash: a portal checked and bound with another
        fingerprint is re-checked and re-bound (docs/upgrading.md). The title and descriptions only
        word notices, but a re-check also refreshes those, so everything counts."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def events(self) -> list[str]:
        return sorted({e for f in self.features for e in f.events})

    def methods(self) -> list[str]:
        return sorted({m for f in self.features for m in f.methods})

    def required_scopes(self) -> tuple[str, ...]:
        """Scopes of the required features: a webhook without one of them is refused."""
        out: list[str] = []
        for feature in self.features:
            if feature.required:
                out.extend(s for s in feature.scopes if s not in out)
        return tuple(out)

    def placements(self) -> list[Placement]:
        return [p for f in self.features for p in f.placements]

    def feature_of_event(self, event: str) -> Feature | None:
        return next((f for f in self.features if event.upper() in f.events), None)

    def feature_of_placement(self, code: str) -> Feature | None:
        return next((f for f in self.features if any(p.code == code for p in f.placements)), None)

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    def objects(self) -> list[ObjectSpec]:
        """Every listable kind the app's features work on, each once, in the manifest's order."""
        seen: dict[str, ObjectSpec] = {}
        for feature in self.features:
            for spec in feature.objects:
                seen.setdefault(spec.kind, spec)
        return list(seen.values())

    def feature_of_object(self, kind: str) -> Feature | None:
        return next((f for f in self.features if any(o.kind == kind for o in f.objects)), None)

    def object_of_event(self, event: str) -> ObjectSpec | None:
        """The kind an event is a change of (its add, update or delete event)."""
        return next((o for o in self.objects() if event.upper() in o.events), None)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        if not isinstance(raw, dict) or not isinstance(raw.get("features"), dict):
            raise ManifestError("manifest needs an object 'features'")
        if not raw["features"]:
            raise ManifestError("manifest declares no feature")
        scopes = _names(raw.get("scopes", []), "'scopes'")
        custom = tuple(m.lower() for m in _names(raw.get("custom_methods", []), "'custom_methods'"))
        unknown_keys = sorted(set(raw) - {"title", "scopes", "features", "custom_methods", "comment"})
        if unknown_keys:
            raise ManifestError(f"unknown top-level key(s): {', '.join(unknown_keys)}")
        features = []
        for name, spec in raw["features"].items():
            if not isinstance(name, str) or not _FEATURE_NAME.match(name):
                raise ManifestError(f"feature name {name!r} must be lower-case letters, digits or _")
            if not isinstance(spec, dict):
                raise ManifestError(f"feature {name!r} must be an object")
            extra = sorted(set(spec) - _FEATURE_KEYS)
            if extra:
                raise ManifestError(f"feature {name!r}: unknown key(s) {', '.join(extra)}")
            required = spec.get("required", False)
            if not isinstance(required, bool):
                raise ManifestError(f"feature {name!r}: 'required' must be true or false")
            methods = tuple(
                m.lower() for m in _names(spec.get("methods", []), f"feature {name!r}: 'methods'")
            )
            events = tuple(e.upper() for e in _names(spec.get("events", []), f"feature {name!r}: 'events'"))
            feature_scopes = _names(spec.get("scopes", []), f"feature {name!r}: 'scopes'")
            placements = _placements(spec.get("placements", []), name)
            try:
                objects = objects_of(spec.get("objects", []), f"feature {name!r}")
            except ObjectSpecError as exc:
                raise ManifestError(str(exc)) from None
            unlisted = sorted({o.list_method for o in objects} - set(methods))
            if unlisted:
                raise ManifestError(
                    f"feature {name!r}: its objects are listed with {', '.join(unlisted)}: add it to the "
                    "feature's 'methods' (the capability check must know the portal has it)"
                )
            if not methods and not events and not placements:
                raise ManifestError(f"feature {name!r} names no method, event or placement")
            claimed = sorted(set(events) & {*LIFECYCLE_EVENTS, *NOT_BINDABLE})
            if claimed:
                raise ManifestError(
                    f"feature {name!r}: {', '.join(claimed)} cannot be a feature's event "
                    "(the bundle handles install, update and uninstall itself)"
                )
            undeclared = sorted(set(feature_scopes) - set(scopes))
            if undeclared:
                raise ManifestError(
                    f"feature {name!r} needs scope(s) {', '.join(undeclared)} missing from the top-level "
                    "'scopes' the app asks for"
                )
            features.append(
                Feature(
                    name=name,
                    required=required,
                    methods=methods,
                    events=events,
                    scopes=feature_scopes,
                    description=str(spec.get("description", "")),
                    module=str(spec.get("module", "")),
                    placements=placements,
                    objects=objects,
                )
            )
        title = raw.get("title", "")
        if not isinstance(title, str):
            raise ManifestError("'title' must be a string")
        return cls(scopes=scopes, features=tuple(features), custom_methods=custom, title=title.strip())


def _placements(value: Any, feature: str) -> tuple[Placement, ...]:
    what = f"feature {feature!r}: 'placements'"
    if not isinstance(value, list):
        raise ManifestError(f"{what} must be a list of objects with 'code' and 'title'")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"code", "title", "description"}:
            raise ManifestError(f"{what} must be a list of objects with 'code', 'title', 'description'")
        code, title = item.get("code"), item.get("title")
        if not isinstance(code, str) or not _PLACEMENT_CODE.match(code):
            raise ManifestError(f"{what}: code {code!r} must be an upper-case placement code")
        if code == "DEFAULT":
            raise ManifestError(f"{what}: DEFAULT is the app's own page, not bound (app.page('DEFAULT'))")
        if not isinstance(title, str) or not title.strip():
            raise ManifestError(f"{what}: {code} needs a 'title' (shown in Bitrix24's UI)")
        out.append(Placement(code, title.strip(), str(item.get("description", ""))))
    codes = [p.code for p in out]
    if len(set(codes)) != len(codes):
        raise ManifestError(f"{what} repeats a code")
    return tuple(out)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ManifestError(f"{what} must be a list of names")
    out = tuple(v.strip() for v in value)
    dupes = sorted({v for v in out if out.count(v) > 1})
    if dupes:
        raise ManifestError(f"{what} repeats {', '.join(dupes)}")
    return out


# ---------------------------------------------------------------- known names (build/test time)
@dataclass(frozen=True)
class KnownNames:
    """Real Bitrix24 names, derived from the REST docs by tools/b24_names.py."""

    methods: frozenset[str]
    events: frozenset[str]
    scopes: frozenset[str]
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> KnownNames:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read the list of known Bitrix24 names {path}: {exc}") from None
        return cls(
            methods=frozenset(str(m).lower() for m in raw.get("methods", [])),
            events=frozenset(str(e).upper() for e in raw.get("events", [])),
            scopes=frozenset(str(s) for s in raw.get("scopes", [])),
            source=f"{raw.get('source', '?')}@{str(raw.get('commit', '?'))[:12]}",
        )


def _suggest(name: str, pool: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(pool), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def check_known_names(manifest: Manifest, known: KnownNames) -> None:
    """Refuse a manifest naming a method, event or scope Bitrix24 does not have; say which and where."""
    problems: list[str] = []
    custom = set(manifest.custom_methods)
    for scope in manifest.scopes:
        if scope not in known.scopes:
            problems.append(f"scope {scope!r}{_suggest(scope, known.scopes)}")
    for feature in manifest.features:
        for method in feature.methods:
            if method not in known.methods and method not in custom:
                problems.append(
                    f"feature {feature.name!r}: method {method!r}{_suggest(method, known.methods)}"
                )
        for event in feature.events:
            base = re.sub(r"_\d+$", "", event)  # per-type events carry a type id suffix (…ADD_147)
            if event not in known.events and base not in known.events:
                problems.append(f"feature {feature.name!r}: event {event!r}{_suggest(event, known.events)}")
        problems += object_problems(feature.objects, known, f"feature {feature.name!r}")
    if problems:
        raise ManifestError(
            "unknown Bitrix24 name(s) in the manifest, not in the REST docs "
            f"({known.source}): " + "; ".join(problems)
        )


def object_problems(specs: Iterable[ObjectSpec], known: KnownNames, where: str) -> list[str]:
    """Names in object specs (the catalog's or a manifest's) that the REST docs do not have."""
    problems: list[str] = []
    for spec in specs:
        if spec.list_method not in known.methods:
            problems.append(f"{where}: object {spec.kind!r} list method {spec.list_method!r}")
        for event in spec.events:
            if event not in known.events:
                problems.append(f"{where}: object {spec.kind!r} event {event!r}")
    return problems


def check_catalog(known: KnownNames) -> list[str]:
    """The shipped object kinds (object_kinds.json) against the REST docs."""
    return object_problems(catalog().values(), known, "object_kinds.json")


# ---------------------------------------------------------------- the shipped manifest
MANIFEST_FILE = "b24app.manifest.json"


def manifest_path() -> Path:
    """The manifest of the app this deployment runs: the file beside the app's module (``B24_APP``),
    found without importing the app, so every room below it reads the same manifest."""
    override = os.environ.get("B24_MANIFEST")
    if override:
        return Path(override)
    from importlib.util import find_spec

    from b24core.aws.settings import get_settings

    module = get_settings().app.partition(":")[0]
    if not module:
        raise ManifestError("no app named: set B24_APP (template parameter AppModule) or B24_MANIFEST")
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise ManifestError(f"the app's module {module!r} (B24_APP) is not importable")
    return Path(spec.origin).parent / MANIFEST_FILE


@lru_cache(maxsize=1)
def load_manifest() -> Manifest:
    path = manifest_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    try:
        return Manifest.from_dict(raw)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
