"""Known Bitrix24 REST names (methods, events, scopes), derived from the official REST docs.

The capability manifest (b24app.manifest.json) is checked against this list at build and test time, so a
typo such as ``crm.deal.lst`` or ``ONCRMDEALCHANGE`` is refused with a clear message before it reaches
a portal, where it would only ever look "missing".

    python tools/b24_names.py derive --docs PATH_TO_b24restdocs_GIT [--out tools/b24_names.json]
    python tools/b24_names.py check [b24app.manifest.json]

``derive`` reads the docs repository through ``git`` (a bare clone is enough) and writes the sorted
names with the commit they came from. Where a name appears in the docs:

* methods: the URL of the request examples (``.../rest/crm.deal.get``), ``BX24.callMethod('...')``,
  the PHP SDK's ``->call('...')``, and the method named in the page title of api-reference pages;
* events: the upper-cased ``ON...`` code in the title of every page about events (a folder or file
  named ``events``, ``events-tasks``...), and every back-quoted ``ON...``/``On...`` code in those pages;
* scopes: the scope table of api-reference/scopes/permissions.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "b24_names.json"

_METHOD = r"([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)*)"
_METHOD_PATTERNS = [
    re.compile(
        r"put_your_bitrix24_address\*\*/rest/(?:\*\*put_your_user_id_here\*\*/\*\*put_your_webhook_here\*\*/)?"
        + _METHOD
    ),
    re.compile(r"callMethod\(\s*['\"]" + _METHOD + r"['\"]"),
    re.compile(r"->call\(\s*['\"]" + _METHOD + r"['\"]"),
]
_TITLE_METHOD = re.compile(r"^#\s.*?\s`?([a-z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)`?\s*$")
_EVENT = re.compile(r"`([Oo][Nn][A-Z][A-Za-z0-9_]{2,})`")
_TITLE_EVENT = re.compile(r"\s`?([Oo][Nn][A-Z][A-Za-z0-9_]{2,})`?\s*$")
_SCOPE_ROW = re.compile(r"^\|\|\s*\*\*([a-z0-9_.,\s]+)\*\*\s*\|")
# Pages about events: a folder named events, events-tasks, events-invoice..., or the event list pages.
_EVENT_PAGE = re.compile(r"(^|/)[^/]*events[^/]*(/|\.md$)")
# Methods without a dot that exist (everything else needs one, which filters out prose).
_DOTLESS = {"batch", "methods", "scope", "events", "profile"}


def _git(docs: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(docs), *args], check=True, capture_output=True, text=True).stdout


def derive(docs: Path) -> dict[str, object]:
    commit = _git(docs, "rev-parse", "HEAD").strip()
    files = [f for f in _git(docs, "ls-tree", "-r", "--name-only", "HEAD").splitlines() if f.endswith(".md")]
    methods: set[str] = set()
    events: set[str] = set()
    scopes: set[str] = set()
    for path in files:
        text = _git(docs, "show", f"HEAD:{path}")
        for pattern in _METHOD_PATTERNS:
            for name in pattern.findall(text):
                name = name.lower().removesuffix(".json")
                if "." in name or name in _DOTLESS:
                    methods.add(name)
        first = text.lstrip().splitlines()[0] if text.strip() else ""
        if path.startswith("api-reference/") and not _EVENT_PAGE.search(path):
            match = _TITLE_METHOD.match(first)
            if match:
                methods.add(match.group(1).lower())
        if _EVENT_PAGE.search(path):
            match = _TITLE_EVENT.search(first)
            if match:
                events.add(match.group(1).upper())
            events.update(e.upper() for e in _EVENT.findall(text))
        if path == "api-reference/scopes/permissions.md":
            for line in text.splitlines():
                row = _SCOPE_ROW.match(line)
                if row:
                    scopes.update(s.strip() for s in row.group(1).split(",") if s.strip())
                scopes.update(re.findall(r"^- \*\*([a-z_]+)\*\*", line))
    scopes.discard("scope code")
    # Per-type events (ONCRMDYNAMICITEMADD_147) are one name with a type id appended.
    events = {re.sub(r"_\d+$", "", e) for e in events}
    return {
        "source": "bitrix24/b24restdocs",
        "commit": commit,
        "methods": sorted(methods),
        "events": sorted(events),
        "scopes": sorted(scopes),
    }


def check(manifest_path: Path, names_path: Path = DEFAULT_OUT) -> list[str]:
    sys.path.insert(0, str(ROOT / "layers" / "b24core"))
    from b24core.capabilities.manifest import KnownNames, Manifest, ManifestError, check_known_names

    try:
        manifest = Manifest.from_dict(json.loads(manifest_path.read_text(encoding="utf-8")))
        check_known_names(manifest, KnownNames.load(names_path))
    except (ManifestError, ValueError) as exc:
        return [f"{manifest_path}: {exc}"]
    return []


def check_catalog(names_path: Path = DEFAULT_OUT) -> list[str]:
    """The object kinds the bundle ships (capabilities/object_kinds.json) against the docs' names."""
    sys.path.insert(0, str(ROOT / "layers" / "b24core"))
    from b24core.capabilities.manifest import KnownNames, ManifestError
    from b24core.capabilities.manifest import check_catalog as catalog_check

    try:
        return catalog_check(KnownNames.load(names_path))
    except ManifestError as exc:
        return [str(exc)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_derive = sub.add_parser("derive", help="read the docs repository, write the names file")
    p_derive.add_argument("--docs", type=Path, required=True, help="git directory of bitrix24/b24restdocs")
    p_derive.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p_check = sub.add_parser("check", help="refuse a manifest naming unknown methods, events or scopes")
    p_check.add_argument(
        "manifest", type=Path, nargs="*", default=sorted(ROOT.glob("apps/*/b24app.manifest.json"))
    )
    p_check.add_argument("--names", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.command == "derive":
        data = derive(args.docs)
        args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(
            f"{args.out}: {len(data['methods'])} methods, {len(data['events'])} events, "  # type: ignore[arg-type]
            f"{len(data['scopes'])} scopes from {data['commit']}"  # type: ignore[arg-type]
        )
        return 0
    failed = 0
    catalog_problems = check_catalog(args.names)
    for problem in catalog_problems:
        print(f"object_kinds.json: {problem}", file=sys.stderr)
    if not catalog_problems:
        print("object_kinds.json: every list method and event of the shipped object kinds is a known name")
    failed += bool(catalog_problems)
    for manifest in args.manifest:
        problems = check(manifest, args.names)
        for problem in problems:
            print(f"{manifest}: {problem}", file=sys.stderr)
        if not problems:
            print(f"{manifest}: every method, event and scope is a known Bitrix24 name")
        failed += bool(problems)
    return 1 if failed or not args.manifest else 0


if __name__ == "__main__":
    sys.exit(main())
