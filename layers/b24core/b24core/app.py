"""``B24App``: the one object an app author builds.

    from b24core import B24App, Context, Event

    app = B24App(manifest="b24app.manifest.json")

    @app.event("ONTASKUPDATE", read="tasks.task.get", idempotent=True)
    def on_task(event: Event, ctx: Context) -> None:
        ctx.storage.put(f"task/{event.object_id}", event.object or {})

    @app.page("TASK_VIEW_TAB")
    def task_tab(ctx: Context) -> Page:
        return Page(title="History", body="<p>...</p>")

Every name is checked against the manifest when the module is imported, so a handler that could never
run (its event is in no feature, so it is never bound) is an error at import with a "did you mean",
not a silent no-op in production. The bundle's functions find the app through the ``B24_APP`` setting
(``module:attribute``), so the app lives in its own folder and the layer names none of its objects.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from b24core.capabilities.manifest import LIFECYCLE_EVENTS, NOT_BINDABLE, Manifest, ManifestError
from b24core.worker.handlers import Context, Event, Handler, Registration, Registry

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PAGE = "DEFAULT"


@dataclass(frozen=True)
class Page:
    """What a page handler returns: its title and the HTML of its body (the framework adds the
    document, the BX24 library, the strict CSP with a nonce, the language and the session)."""

    title: str
    body: str
    #: Inline script of the page, run with the CSP nonce after BX24 is loaded (optional).
    script: str = ""


PageHandler = Callable[[Context], Page]


@dataclass(frozen=True)
class Action:
    run: Callable[[Context, dict[str, Any]], dict[str, Any]]
    admin_only: bool


Hook = Callable[[Context], None]


@dataclass
class Command:
    """A CLI command an app adds to ``b24app`` (``b24app NAME ...``)."""

    name: str
    help: str
    #: ``configure(parser)`` adds the command's arguments; ``run(args)`` returns the exit code.
    configure: Callable[[Any], None]
    run: Callable[[Any], int]


@dataclass
class _Hooks:
    installed: list[Hook] = field(default_factory=list)
    uninstalled: list[Hook] = field(default_factory=list)
    feature_enabled: dict[str, list[Hook]] = field(default_factory=dict)


class B24App:
    def __init__(self, manifest: str | os.PathLike[str] = "b24app.manifest.json", *, name: str = "") -> None:
        path = Path(manifest)
        if not path.is_absolute():
            caller = inspect.stack()[1].filename
            path = Path(caller).resolve().parent / path
        self.manifest_path = path
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc}") from None
        self.manifest = Manifest.from_dict(raw)
        self.name = name or self.manifest.title or path.parent.name
        self.registry = Registry()
        self.hooks = _Hooks()
        self.pages: dict[str, PageHandler] = {}
        self.commands: dict[str, Command] = {}
        self.actions: dict[str, Action] = {}

    # ------------------------------------------------------------ events
    def event(
        self, *names: str, read: str | None = None, idempotent: bool = False
    ) -> Callable[[Handler], Handler]:
        """Handle these events. ``read`` names the method that reads the changed object by ``id``: the
        worker then reads it for you, coalesced per object and batched, as ``event.object``.
        ``idempotent=True`` says running twice for one event is harmless (the handler writes state,
        not a delta), which skips the once-per-event guard and its table writes."""
        if not names:
            raise ManifestError("app.event() needs at least one event name")
        if read is not None:
            read = read.lower()
            if read not in self.manifest.methods():
                raise ManifestError(
                    f"read={read!r} is not a method of any feature in {self.manifest_path.name}"
                    f"{_suggest(read, self.manifest.methods())}"
                )
        bound = [(name.upper(), self._feature_of(name.upper())) for name in names]

        def decorate(fn: Handler) -> Handler:
            for name, feature in bound:
                self.registry.add(name, Registration(fn, feature, fetch=read, idempotent=idempotent))
            return fn

        return decorate

    def _feature_of(self, event: str) -> str:
        feature = self.manifest.feature_of_event(event)
        if feature is not None:
            return feature.name
        if event in (*LIFECYCLE_EVENTS, *NOT_BINDABLE):
            hint = " (use @app.installed / @app.uninstalled: the bundle handles the app's lifecycle)"
        else:
            hint = _suggest(event, self.manifest.events())
        raise ManifestError(
            f"event {event} is in no feature of {self.manifest_path.name}, so it would never be bound{hint}"
        )

    # ------------------------------------------------------------ lifecycle hooks
    def installed(self, fn: F) -> F:
        """Runs once the app is installed on a portal and its capabilities are checked."""
        self.hooks.installed.append(fn)
        return fn

    def uninstalled(self, fn: F) -> F:
        """Runs once an uninstall is confirmed (the portal's tokens are already gone: no REST)."""
        self.hooks.uninstalled.append(fn)
        return fn

    def feature_enabled(self, name: str) -> Callable[[F], F]:
        """Runs when a capability check finds the feature available on a portal for the first time
        (at install, or after a box updated its modules)."""
        if self.manifest.feature(name) is None:
            raise ManifestError(
                f"feature {name!r} is not in {self.manifest_path.name}"
                f"{_suggest(name, [f.name for f in self.manifest.features])}"
            )

        def decorate(fn: F) -> F:
            self.hooks.feature_enabled.setdefault(name, []).append(fn)
            return fn

        return decorate

    # ------------------------------------------------------------ pages
    def page(self, placement: str = DEFAULT_PAGE) -> Callable[[F], F]:
        """Serve this placement's page (``DEFAULT``: the app's own page in its slider). A placement other
        than DEFAULT must be declared in a feature of the manifest, which binds it at install."""
        code = placement.upper()
        if code != DEFAULT_PAGE and self.manifest.feature_of_placement(code) is None:
            known = [p.code for p in self.manifest.placements()]
            raise ManifestError(
                f"placement {code} is in no feature of {self.manifest_path.name}, so it would never be "
                f"bound{_suggest(code, known)}"
            )

        def decorate(fn: F) -> F:
            self.pages[code] = fn
            return fn

        return decorate

    def page_feature(self, placement: str) -> str | None:
        feature = self.manifest.feature_of_placement(placement.upper())
        return feature.name if feature else None

    # ------------------------------------------------------------ the pages' own API
    def action(self, name: str, *, admin_only: bool = False) -> Callable[[F], F]:
        """A call a page makes to the app (``POST app/action`` with its user session): ``fn(ctx, data)``
        returns a JSON object. ``admin_only`` refuses it (403) to users who do not administer the
        portal, as the session says."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"action name {name!r}: letters, digits and _ only")

        def decorate(fn: F) -> F:
            self.actions[name] = Action(fn, admin_only)
            return fn

        return decorate

    # ------------------------------------------------------------ CLI
    def command(self, name: str, help: str, configure: Callable[[Any], None]) -> Callable[[F], F]:
        """Add ``b24app NAME`` to the operators' CLI (``configure(parser)`` adds its arguments)."""

        def decorate(fn: F) -> F:
            self.commands[name] = Command(name, help, configure, fn)
            return fn

        return decorate

    # ------------------------------------------------------------ running hooks
    def run_hooks(self, hooks: Iterable[Hook], ctx: Context) -> None:
        for hook in hooks:
            hook(ctx)


def _suggest(name: str, pool: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(pool), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def load_app(spec: str) -> B24App:
    """The app named ``package.module:attribute`` (``:app`` if left out), as the ``B24_APP`` setting does."""
    if not spec:
        raise RuntimeError("no app named: set B24_APP to its module:attribute (template parameter AppModule)")
    module_name, _, attr = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attr or "app")
    if not isinstance(app, B24App):
        raise RuntimeError(f"B24_APP={spec} is not a B24App")
    return app


__all__ = ["B24App", "Command", "Context", "Event", "Page", "load_app"]
