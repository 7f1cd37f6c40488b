"""Child-process plumbing: free ports, process groups, and a watchdog against orphans.

Every service process runs in its own session/process group, so a terminal's Ctrl-C reaches only
the runner, which then stops its children in order, and one ``killpg`` ends a child together
with anything it spawned. If the runner itself dies abruptly (SIGKILL, a crashed test run) the
children must not live on: services are started through this module's watchdog
(``python -m b24stack.procs <runner pid> -- cmd ...``), which sets PR_SET_PDEATHSIG on the real
process and exits when the runner disappears.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["free_port", "spawn_watched", "stop_process", "wait_http"]

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn_watched(
    cmd: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` under the watchdog in a new process group, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "b24stack.procs", str(os.getpid()), "--", *cmd]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap the leader."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Whatever is left in the group (a watchdog's child, a grandchild) gets SIGKILL.
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_http(url: str, *, proc: subprocess.Popen[bytes] | None, timeout: float, what: str) -> None:
    """Poll ``url`` until it answers anything HTTP (even 4xx), or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
            return
        except urllib.error.HTTPError:
            return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer on {url} within {timeout:.0f}s")
        time.sleep(0.05)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the forked child
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _watch(argv: list[str], stderr: IO[str]) -> int:
    """Watchdog main: run the command, forward SIGTERM/SIGINT, die with the runner."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m b24stack.procs <parent pid> -- cmd ...", file=stderr)
        return 2
    parent = int(argv[0])
    child = subprocess.Popen(argv[2:], preexec_fn=_set_pdeathsig)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            child.kill()
            child.wait()
            return 1


if __name__ == "__main__":  # pragma: no cover - exercised through spawn_watched
    sys.exit(_watch(sys.argv[1:], sys.stderr))
