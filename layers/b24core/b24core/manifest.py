"""The app's capability manifest (b24app.manifest.json at the repository root).

It says which scopes the app needs and which named features use which methods and events, and
whether a feature is required. The layer ships it (a link into the package) so every function reads
the same file; B24_MANIFEST overrides the path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Feature:
    name: str
    required: bool
    methods: tuple[str, ...]
    events: tuple[str, ...]
    scopes: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    scopes: tuple[str, ...]
    features: tuple[Feature, ...]

    def events(self) -> list[str]:
        return sorted({e for f in self.features for e in f.events})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        if not isinstance(raw, dict) or not isinstance(raw.get("features"), dict):
            raise ManifestError("manifest needs an object 'features'")
        scopes = raw.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ManifestError("'scopes' must be a list of strings")
        features = []
        for name, spec in raw["features"].items():
            if not isinstance(spec, dict):
                raise ManifestError(f"feature {name!r} must be an object")
            lists = {}
            for key in ("methods", "events", "scopes"):
                value = spec.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ManifestError(f"feature {name!r}: '{key}' must be a list of names")
                lists[key] = tuple(value)
            features.append(
                Feature(
                    name=name,
                    required=bool(spec.get("required", False)),
                    methods=lists["methods"],
                    events=tuple(e.upper() for e in lists["events"]),
                    scopes=lists["scopes"],
                    description=str(spec.get("description", "")),
                )
            )
        return cls(scopes=tuple(scopes), features=tuple(features))


def manifest_path() -> Path:
    override = os.environ.get("B24_MANIFEST")
    return Path(override) if override else Path(__file__).with_name("app_manifest.json")


@lru_cache(maxsize=1)
def load_manifest() -> Manifest:
    path = manifest_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    return Manifest.from_dict(raw)
