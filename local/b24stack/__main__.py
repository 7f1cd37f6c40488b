"""``python -m b24stack``: run the project's template.yaml locally until Ctrl-C or SIGTERM.

Prints exactly one line on stdout once everything answers (scripts wait for it); every log line
(functions, requests, warnings) goes to stderr. Other modes, such as a Bitrix24 simulator next to
the stack, plug in through ``HOOKS`` without changing this file's flow.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .stack import LocalStack

__all__ = ["HOOKS", "Hook", "main"]


class Hook:
    """An extension of the CLI; override what you need. Hooks run in ``HOOKS`` order.

    - ``add_arguments``: add CLI options before parsing.
    - ``before_start``: the stack exists but runs nothing yet; e.g. set ``stack.env_overrides``.
    - ``before_ready``: services, tables, queues and functions run; the gateway still answers 503.
    - ``after_ready``: everything answers; runs before the "listening" line is printed.
    - ``summary``: a short text appended to the "listening" line, or None.
    - ``after_stop``: everything the stack started is stopped.
    - ``hint``: text for a person, printed to stderr after the "listening" line.
    """

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        return None

    def before_start(self, stack: LocalStack, args: argparse.Namespace) -> None:
        return None

    def before_ready(self, stack: LocalStack) -> None:
        return None

    def after_ready(self, stack: LocalStack) -> None:
        return None

    def summary(self, stack: LocalStack) -> str | None:
        return None

    def after_stop(self, stack: LocalStack) -> None:
        return None

    def hint(self, stack: LocalStack) -> str | None:
        """Text for a person, printed to stderr after the "listening" line."""
        return None


HOOKS: list[Hook] = []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m b24stack", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="gateway port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="gateway address")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="where template.yaml is")
    parser.add_argument("--template", type=Path, default=None, help="template file (default: template.yaml)")
    parser.add_argument("--state-dir", type=Path, default=None, help="state directory (default: .local)")
    parser.add_argument("--in-memory", action="store_true", help="keep DynamoDB tables in memory only")
    parser.add_argument("--no-schedules", action="store_true", help="do not fire schedules on their own")
    parser.add_argument("--pool-size", type=int, default=2, help="execution environments per function")
    parser.add_argument("--pollers", type=int, default=1, help="pollers per SQS event source")
    parser.add_argument("--log-level", default="INFO", help="runner log level (DEBUG, INFO, WARNING)")
    return parser


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, hooks: Sequence[Hook] | None = None) -> int:
    active = list(HOOKS if hooks is None else hooks)
    parser = _parser()
    for hook in active:
        hook.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    project_dir = args.project_dir.resolve()
    state_dir = args.state_dir.resolve() if args.state_dir else project_dir / ".local"
    try:
        stack = LocalStack(
            project_dir,
            port=args.port,
            state_dir=state_dir,
            in_memory=args.in_memory,
            schedules=not args.no_schedules,
            template=args.template,
            host=args.host,
            pool_size=args.pool_size,
            pollers_per_queue=args.pollers,
        )
    except (OSError, ValueError) as exc:
        print(f"b24stack: {exc}", file=sys.stderr)
        return 1
    for hook in active:
        hook.before_start(stack, args)
        stack.before_ready.append(hook.before_ready)

    # Installed explicitly: a shell's "cmd &" starts programs with SIGINT ignored, and closing the
    # terminal (SIGHUP) must stop the stack's processes as well.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    code = 0
    try:
        stack.start()
        for hook in active:
            hook.after_ready(stack)
        extras = [text for text in (h.summary(stack) for h in active) if text]
        summary = "; ".join([stack.summary(), *extras])
        print(f"b24app local stack listening on {stack.gateway_url} ({summary})", flush=True)
        for hook in active:
            text = hook.hint(stack)
            if text:
                print(text, file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"b24stack: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        for hook in active:
            hook.after_stop(stack)
    return code


if __name__ == "__main__":
    sys.exit(main())
