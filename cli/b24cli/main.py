"""``b24app``: look at the portals the bundle serves. Never prints a token value."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from b24cli import (
    bulk_cmd,
    capabilities_cmd,
    delivery_cmd,
    doctor_cmd,
    events_cmd,
    health_cmd,
    portals_cmd,
    restore_cmd,
    tokens_cmd,
    webhook_cmd,
)
from b24cli.target import TargetError, find_target


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _store(args: argparse.Namespace) -> Any:
    from b24core.portals.store import DynamoPortalStore

    target = find_target(args.stack)
    return DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint)


def _features_line(view: dict[str, Any]) -> str:
    return capabilities_cmd.features_line(view.get("capabilities") or {})


def _token_user(user: dict[str, object]) -> str:
    """Whose pair the app's background calls use: it must be an administrator's."""
    if not user.get("user_id"):
        return "-"
    return f"{user['user_id']} ({'administrator' if user.get('admin') else 'NOT an administrator'})"


def cmd_portals_show(args: argparse.Namespace) -> int:
    portal = _store(args).get(args.member_id)
    if portal is None:
        print(f"no portal with member_id {args.member_id}", file=sys.stderr)
        return 1
    view = portal.public_view()
    history = capabilities_cmd.history_for(find_target(args.stack), portal.member_id)
    health = health_cmd.view(find_target(args.stack), portal.member_id)
    if args.json:
        delivery = delivery_cmd.view(find_target(args.stack), portal.member_id)
        auth = webhook_cmd.view(find_target(args.stack), portal.member_id, view.get("capabilities") or {})
        print(
            json.dumps(
                {**view, **auth, "capability_history": history, "delivery": delivery, "health": health},
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    rows = [
        ("member_id", view["member_id"]),
        ("domain", view["domain"]),
        ("client_endpoint", view["client_endpoint"]),
        ("state", view["state"]),
        ("token state", view["token_state"]),
        ("tokens of user", _token_user(view["token_user"])),
        ("access token expires", _when(view["access_expires_at"])),
        ("last refresh", _when(view["refreshed_at"])),
        ("keep-alive refresh due", _when(view["refresh_due_at"])),
        ("installed", f"{_when(view['installed_at'])} via {view['install_path'] or '-'}"),
        ("status (auth server)", view["status"] or "-"),
        ("scope", view["scope"] or "-"),
        ("capabilities", _features_line(view)),
        *capabilities_cmd.capability_rows(view.get("capabilities") or {}, history),
        *delivery_cmd.show_rows(find_target(args.stack), portal.member_id),
        *webhook_cmd.show_rows(find_target(args.stack), view.get("capabilities") or {}, portal.member_id),
        *health_cmd.show_rows(health),
    ]
    if view.get("newer_release"):  # docs/upgrading.md: this release reads it but never saves it
        rows.append(("written by a newer release", f"{view['newer_release']} (left untouched; skipped)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b24app", description="Operate the Bitrix24 serverless bundle.")
    parser.add_argument(
        "--stack", help="CloudFormation stack name (default: B24_STACK_NAME, else the local stack)"
    )
    sub = parser.add_subparsers(dest="group", required=True)
    portals = sub.add_parser("portals", help="installed portals").add_subparsers(
        dest="command", required=True
    )
    portals_cmd.register(portals)  # list, find, reindex
    p_show = portals.add_parser("show", help="one portal in detail (never token values)")
    p_show.add_argument("member_id")
    p_show.add_argument("--json", action="store_true")
    p_show.set_defaults(func=cmd_portals_show)
    capabilities_cmd.register(portals)
    delivery_cmd.register(portals)
    webhook_cmd.register(portals)
    bulk_cmd.register(portals)  # rebind
    events_cmd.register(sub)
    tokens_cmd.register(sub)
    doctor_cmd.register(sub)
    restore_cmd.register(sub)
    _app_commands(sub)
    return parser


def _app_commands(sub: Any) -> None:
    """The commands the deployed app adds (``@app.command``), e.g. the example's ``mirror show``."""
    from b24core.app import load_app
    from b24core.aws.settings import get_settings

    try:
        app = load_app(get_settings().app or _template_app())
    except Exception as exc:  # the bundle's own commands work without the app
        print(f"b24app: the app's commands are not available: {exc}", file=sys.stderr)
        return
    for command in app.commands.values():
        parser = sub.add_parser(command.name, help=command.help)
        command.configure(parser)
        parser.set_defaults(func=_app_command(command.run))


def _template_app() -> str:
    """Without B24_APP: the app template.yaml names (its AppModule parameter's default)."""
    from pathlib import Path

    from b24stack.template import default_app

    return default_app(Path(__file__).resolve().parents[2])


def _app_command(run: Any) -> Any:
    def call(args: argparse.Namespace) -> int:
        import boto3

        from b24core.portals.app_data import DynamoAppStorage

        target = find_target(args.stack)
        db = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.dynamodb_endpoint)
        args.storage = lambda member_id: DynamoAppStorage(db, target.table_name, member_id)
        return int(run(args))

    return call


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TargetError as exc:
        print(f"b24app: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
