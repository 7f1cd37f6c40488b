"""Shared library of the Bitrix24 serverless bundle (deployed as the CoreLayer).

An app imports its public API from here: ``from b24core import B24App, Context, Event, Page``.
Inside, the rooms by concern, bottom up: ``aws`` (settings, logs, metrics, table helpers), ``bitrix``
(the wire), ``portals`` (the installation registry), ``trust``, ``tokens``, ``capabilities``,
``events`` (intake), ``worker``, ``delivery``, ``app`` (B24App) and ``entry`` (what each function
calls); docs/architecture.md draws them.

The names load on first use, so a function that needs none of them (the events intake, whose cold
start matters) does not pay for importing the framework.
"""

from typing import TYPE_CHECKING, Any

from b24core.aws.version import VERSION

__version__ = VERSION

_PUBLIC = {
    "B24App": "b24core.app",
    "Page": "b24core.app",
    "load_app": "b24core.app",
    "Context": "b24core.worker.handlers",
    "Event": "b24core.worker.handlers",
    "PageUser": "b24core.worker.handlers",
    "RestClient": "b24core.worker.handlers",
    "AppStorage": "b24core.portals.app_data",
    "InMemoryAppStorage": "b24core.portals.app_data",
    "Portal": "b24core.portals.model",
}

if TYPE_CHECKING:
    from b24core.app import B24App, Page, load_app
    from b24core.portals.app_data import AppStorage, InMemoryAppStorage
    from b24core.portals.model import Portal
    from b24core.worker.handlers import Context, Event, PageUser, RestClient


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'b24core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AppStorage",
    "B24App",
    "Context",
    "Event",
    "InMemoryAppStorage",
    "Page",
    "PageUser",
    "Portal",
    "RestClient",
    "load_app",
]
