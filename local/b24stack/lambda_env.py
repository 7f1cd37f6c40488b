"""Lambda execution environments as local subprocesses, and the child runtime that runs inside them.

Each environment is one Python process (the project's venv interpreter) that imports the
function's handler module once and then serves invocations one at a time, like a warm Lambda
sandbox: module-level state survives between invocations, ``/tmp`` is shared, and an exception
becomes a Lambda-shaped error result instead of a crash.

Protocol: the runner writes one JSON request per line to a dedicated pipe and reads one JSON
response per line from another (file descriptors passed with ``pass_fds``). The child's own
stdout/stderr therefore stay free for the function's logs, which the runner streams to its log
output (prefixed with the function's logical id) and appends to ``<state>/logs/<Id>.log``.

This module is also the child's entry point (``python -m b24stack.lambda_env <config json>``),
so it imports nothing beyond the standard library: the function, not the runner, decides what
gets loaded into its environment.
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["FunctionPool", "FunctionSpec", "Functions", "InvokeResult", "LogSink", "code_stamp"]

log = logging.getLogger("b24stack")
_INIT_TIMEOUT = 30.0  # Lambda allows 10 s of init; a cold local venv import gets more slack.


@dataclass
class FunctionSpec:
    """Everything needed to start one function's environments (all values already resolved)."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    layer_dirs: list[Path]
    environment: dict[str, str]
    timeout: float = 3.0
    memory_mb: int = 128
    runtime: str = "python3.12"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_concurrency: int | None = None  # ReservedConcurrentExecutions caps the pool


@dataclass
class InvokeResult:
    """The outcome of one invocation: ``payload`` on success, ``error`` (Lambda's shape) on failure."""

    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class LogSink:
    """Where one function's log lines go: the runner's logger and an append-only file."""

    def __init__(self, label: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.path = path
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the sink
        self._lock = threading.Lock()
        self._log = logging.getLogger(f"b24stack.fn.{label}")

    def write(self, line: str) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
        self._log.info("[%s] %s", self.label, line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _Gone(Exception):
    """The environment's process ended (or was killed) before it answered."""


class _Sandbox:
    """One execution environment: a child process plus the two protocol pipes."""

    def __init__(self, spec: FunctionSpec, sink: LogSink, generation: int = 0) -> None:
        self.spec = spec
        self.sink = sink
        self.generation = generation
        self.proc: subprocess.Popen[bytes] | None = None
        self._requests: IO[bytes] | None = None
        self._responses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.alive = False

    def start(self) -> dict[str, Any] | None:
        """Start the process and wait for its init; returns the init error, if any."""
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        config = {
            "handler": self.spec.handler,
            "code_dir": str(self.spec.code_dir),
            "layer_dirs": [str(p) for p in self.spec.layer_dirs],
            "request_fd": req_r,
            "response_fd": resp_w,
            "parent_pid": os.getpid(),
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "b24stack.lambda_env", json.dumps(config)],
                cwd=self.spec.code_dir,
                env=self.spec.environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(req_r, resp_w),
                start_new_session=True,
            )
        except BaseException:
            os.close(req_w)
            os.close(resp_r)
            raise
        finally:
            os.close(req_r)
            os.close(resp_w)
        self._requests = os.fdopen(req_w, "wb")
        self._threads = [
            threading.Thread(target=self._read_responses, args=(resp_r,), daemon=True),
            threading.Thread(target=self._pump_output, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.alive = True
        try:
            message = self._next(_INIT_TIMEOUT)
        except (_Gone, TimeoutError) as exc:
            self.kill()
            return {"errorMessage": f"Init failed: {exc}", "errorType": "Runtime.Unknown"}
        if message.get("type") == "init_error":
            self.kill()
            return dict(message["error"])
        return None

    def _read_responses(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as responses:
            for line in responses:
                with contextlib.suppress(ValueError):
                    self._responses.put(json.loads(line))
        self._responses.put(None)

    def _pump_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.sink.write(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._responses.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer within {timeout:.2f}s") from None
        if message is None:
            code = self.proc.wait() if self.proc is not None else -1
            raise _Gone(f"exit status {code}")
        return message

    def invoke(self, request_id: str, event: Any, invoked_arn: str) -> dict[str, Any]:
        """Run one invocation; returns the child's response message (ok + result or error)."""
        deadline = time.time() + self.spec.timeout
        request = {
            "requestId": request_id,
            "event": event,
            "deadlineMs": int(deadline * 1000),
            "arn": invoked_arn,
        }
        assert self._requests is not None
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.kill()
            return _exit_error(request_id, "exit status unknown")
        try:
            return self._next(self.spec.timeout)
        except TimeoutError:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            self.sink.write(f"{stamp}Z {request_id} Task timed out after {self.spec.timeout:.2f} seconds")
            self.kill()
            message = f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds"
            return {"ok": False, "error": {"errorType": "Sandbox.Timedout", "errorMessage": message}}
        except _Gone as exc:
            self.kill()
            return _exit_error(request_id, str(exc))

    def kill(self) -> None:
        self.alive = False
        if self._requests is not None:
            with contextlib.suppress(OSError):
                self._requests.close()
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=2)


def _exit_error(request_id: str, detail: str) -> dict[str, Any]:
    message = f"RequestId: {request_id} Error: Runtime exited with error: {detail}"
    return {"ok": False, "error": {"errorType": "Runtime.ExitError", "errorMessage": message}}


class PoolClosedError(RuntimeError):
    """The function pool was closed (the stack is stopping)."""


def code_stamp(roots: list[Path], limit: int = 5000) -> float:
    """Newest modification time of the source files under ``roots`` (hidden dirs, caches skipped).

    Gives up after ``limit`` files, so a CodeUri of "." on a big project costs little.
    """
    newest, seen = 0.0, 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
            for name in filenames:
                if name.endswith(".pyc"):
                    continue
                seen += 1
                if seen > limit:
                    return newest
                with contextlib.suppress(OSError):
                    newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


_SKIP_DIRS = {"__pycache__", "node_modules"}
_RELOAD_CHECK_SECONDS = 1.0


class FunctionPool:
    """Up to ``size`` warm environments of one function, created on first demand.

    Concurrent invocations take separate environments; past ``size`` they wait for one to free
    up (Lambda would scale out; locally a small bound keeps a laptop responsive). When a source
    file of the function or its layers changes, warm environments are retired, so an edit is
    live on the next request without restarting the stack.
    """

    def __init__(self, spec: FunctionSpec, sink: LogSink, size: int = 2) -> None:
        self.spec = spec
        self.sink = sink
        self.size = max(1, min(size, spec.max_concurrency or size))
        self._idle: list[_Sandbox] = []
        self._all: set[_Sandbox] = set()
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        self._roots = [spec.code_dir, *spec.layer_dirs]
        self._stamp = code_stamp(self._roots)
        self._checked = time.monotonic()
        self.generation = 0

    def invoke(
        self, event: Any, request_id: str | None = None, invoked_arn: str | None = None
    ) -> InvokeResult:
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        try:
            sandbox, init_error = self._acquire()
        except PoolClosedError:
            error = {"errorType": "ServiceException", "errorMessage": "the local stack is stopping"}
            return InvokeResult(request_id, error=error)
        if init_error is not None:
            return InvokeResult(request_id, error=init_error, duration_ms=(time.monotonic() - started) * 1000)
        assert sandbox is not None
        try:
            response = sandbox.invoke(request_id, event, invoked_arn or self.spec.arn)
        finally:
            self._release(sandbox)
        duration = (time.monotonic() - started) * 1000
        if response.get("ok"):
            return InvokeResult(request_id, payload=response.get("result"), duration_ms=duration)
        return InvokeResult(request_id, error=dict(response.get("error") or {}), duration_ms=duration)

    def _check_code(self) -> list[_Sandbox]:
        """Bump the generation if the code changed; returns idle environments to retire. Locked."""
        now = time.monotonic()
        if now - self._checked < _RELOAD_CHECK_SECONDS:
            return []
        self._checked = now
        stamp = code_stamp(self._roots)
        if stamp == self._stamp:
            return []
        self._stamp = stamp
        self.generation += 1
        log.info("%s: code changed; new environments from the next invocation", self.spec.logical_id)
        stale, self._idle = self._idle, []
        return stale

    def _acquire(self) -> tuple[_Sandbox | None, dict[str, Any] | None]:
        with self._cond:
            stale = self._check_code()
        for old in stale:
            self._discard(old)
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosedError(self.spec.logical_id)
                if self._idle:
                    return self._idle.pop(), None
                if self._count < self.size:
                    self._count += 1
                    sandbox = _Sandbox(self.spec, self.sink, self.generation)
                    self._all.add(sandbox)
                    break
                self._cond.wait()
        try:
            init_error = sandbox.start()
        except Exception as exc:  # e.g. a CodeUri folder that does not exist
            init_error = {"errorType": "Runtime.Unknown", "errorMessage": f"cannot start environment: {exc}"}
        if init_error is not None or self._closed:
            self._discard(sandbox)
            if init_error is None:
                raise PoolClosedError(self.spec.logical_id)
            return None, init_error
        return sandbox, None

    def _release(self, sandbox: _Sandbox) -> None:
        if not sandbox.alive or self._closed or sandbox.generation != self.generation:
            self._discard(sandbox)
            return
        with self._cond:
            self._idle.append(sandbox)
            self._cond.notify()

    def _discard(self, sandbox: _Sandbox) -> None:
        sandbox.kill()
        with self._cond:
            if sandbox in self._all:
                self._all.discard(sandbox)
                self._count -= 1
            if sandbox in self._idle:
                self._idle.remove(sandbox)
            self._cond.notify()

    def pids(self) -> list[int]:
        with self._cond:
            return [s.proc.pid for s in self._all if s.proc is not None and s.proc.poll() is None]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            sandboxes = list(self._all)
            self._cond.notify_all()
        threads = [threading.Thread(target=s.kill) for s in sandboxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class Functions:
    """All function pools of a stack, addressed by logical id, function name or ARN.

    It also counts invocations in flight (and every invocation ever started), which is what
    ``wait_idle`` needs to tell "nothing is happening" from "between two steps".
    """

    def __init__(self, specs: list[FunctionSpec], logs_dir: Path, pool_size: int = 2) -> None:
        self.specs = {s.logical_id: s for s in specs}
        self.sinks = {s.logical_id: LogSink(s.logical_id, logs_dir / f"{s.logical_id}.log") for s in specs}
        self.pools = {s.logical_id: FunctionPool(s, self.sinks[s.logical_id], pool_size) for s in specs}
        self._names = {s.name: s.logical_id for s in specs}
        self._lock = threading.Lock()
        self.in_flight = 0
        self.started = 0
        self._threads: set[threading.Thread] = set()

    def lookup(self, name_or_arn: str) -> str | None:
        """Logical id for a function name, ARN (with or without qualifier) or logical id."""
        name = name_or_arn
        if ":function:" in name:
            name = name.split(":function:", 1)[1]
        name = name.split(":", 1)[0]
        if name in self._names:
            return self._names[name]
        return name if name in self.specs else None

    def invoke(self, logical_id: str, event: Any, request_id: str | None = None) -> InvokeResult:
        """Synchronous invocation (RequestResponse)."""
        with self._lock:
            self.in_flight += 1
            self.started += 1
        try:
            result = self.pools[logical_id].invoke(event, request_id=request_id)
        finally:
            with self._lock:
                self.in_flight -= 1
        if not result.ok:
            assert result.error is not None
            log.warning(
                "%s failed: %s: %s",
                logical_id,
                result.error.get("errorType", "Error"),
                str(result.error.get("errorMessage", ""))[:300],
            )
        return result

    def invoke_async(self, logical_id: str, event: Any) -> str:
        """Asynchronous invocation (Event): returns the request id at once."""
        request_id = str(uuid.uuid4())
        with self._lock:
            self.in_flight += 1
            self.started += 1

        def run() -> None:
            try:
                self.invoke(logical_id, event, request_id)
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=f"async-{logical_id}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return request_id

    def pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.pids()]

    def close(self) -> None:
        threads = [threading.Thread(target=p.close) for p in self.pools.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            pending = list(self._threads)
        for t in pending:
            t.join(timeout=5)
        for sink in self.sinks.values():
            sink.close()


# ---------------------------------------------------------------------------------------------
# Child side: runs inside the execution environment.
# ---------------------------------------------------------------------------------------------


class LambdaContext:
    """The ``context`` argument, with the attributes and method the Python runtime provides."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        # A string, exactly as the real runtime passes it on.
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)
        sys.stdout.flush()

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn}])"
        )


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _json_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return math.nan
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": frames,
    }


def _log_exception(exc: BaseException, request_id: str) -> None:
    text = "".join(traceback.format_exception(exc))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    sys.stderr.write(f"[ERROR] {stamp}Z\t{request_id}\t{type(exc).__name__}: {exc}\n{text}")
    sys.stderr.flush()


def _watch_parent(parent: int) -> None:
    """Leave when the runner is gone, so a killed runner leaves no environments behind."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _load_handler(handler: str) -> Any:
    module_name, _, func_name = handler.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    func = getattr(module, func_name, None)
    if func is None:
        raise AttributeError(f"Handler '{func_name}' missing on module '{module_name}'")
    return func


def _child_main(config: dict[str, Any]) -> int:
    code_dir = str(config["code_dir"])
    front = [code_dir, *[str(p) for p in config["layer_dirs"]]]
    # The Lambda layout: function code, then layers (with their python/ folder), then packages.
    layer_python = [f"{p}/python" for p in config["layer_dirs"] if os.path.isdir(f"{p}/python")]
    front += layer_python
    rest = [p for p in sys.path[1:] if p not in front and p not in ("", ".", os.getcwd())]
    sys.path[:] = front + rest
    from b24stack.aws_calls import install_from_env

    install_from_env()  # tests: record every AWS call this function makes (b24stack.iam checks them)

    threading.Thread(target=_watch_parent, args=(int(config["parent_pid"]),), daemon=True).start()
    requests = os.fdopen(int(config["request_fd"]), "rb")
    responses = os.fdopen(int(config["response_fd"]), "wb", buffering=0)

    def send(message: dict[str, Any]) -> None:
        responses.write(json.dumps(message, default=_json_default).encode() + b"\n")

    request_filter = _RequestIdFilter()
    handler_out = logging.StreamHandler(sys.stdout)
    handler_out.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    handler_out.formatter.converter = time.gmtime  # type: ignore[union-attr]
    handler_out.addFilter(request_filter)
    logging.getLogger().addHandler(handler_out)

    init_started = time.monotonic()
    handler_name = str(config["handler"])
    try:
        func = _load_handler(handler_name)
    except SyntaxError as exc:
        _log_exception(exc, "")
        send(
            {
                "type": "init_error",
                "error": _error(exc, "Runtime.UserCodeSyntaxError", f"Syntax error in module: {exc}"),
            }
        )
        return 1
    except AttributeError as exc:
        _log_exception(exc, "")
        send({"type": "init_error", "error": _error(exc, "Runtime.HandlerNotFound")})
        return 1
    except Exception as exc:
        _log_exception(exc, "")
        module = handler_name.rpartition(".")[0]
        message = f"Unable to import module '{module}': {exc}"
        send({"type": "init_error", "error": _error(exc, "Runtime.ImportModuleError", message)})
        return 1
    init_ms: float | None = (time.monotonic() - init_started) * 1000
    send({"type": "ready"})

    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    while True:
        line = requests.readline()
        if not line:
            return 0
        request = json.loads(line)
        request_id = str(request["requestId"])
        request_filter.request_id = request_id
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        started = time.monotonic()
        context = LambdaContext(request_id, int(request["deadlineMs"]), str(request["arn"]))
        try:
            result = func(request["event"], context)
            try:
                payload = json.dumps({"ok": True, "result": result}, default=_json_default, allow_nan=True)
                responses.write(payload.encode() + b"\n")
            except (TypeError, ValueError) as exc:
                message = f"Unable to marshal response: {exc}"
                _log_exception(exc, request_id)
                send({"ok": False, "error": _error(exc, "Runtime.MarshalError", message)})
        except Exception as exc:
            _log_exception(exc, request_id)
            send({"ok": False, "error": _error(exc)})
        elapsed = (time.monotonic() - started) * 1000
        sys.stdout.flush()
        sys.stderr.flush()
        rss_mb = _max_rss_mb()
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {elapsed:.2f} ms\t"
            f"Billed Duration: {math.ceil(elapsed)} ms\tMemory Size: {memory} MB\t"
            f"Max Memory Used: {rss_mb} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
            init_ms = None
        print(f"END RequestId: {request_id}", flush=True)
        print(report, flush=True)
        request_filter.request_id = ""


def _max_rss_mb() -> int:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except (ImportError, OSError):
        return 0


if __name__ == "__main__":  # pragma: no cover - runs as the environment's process
    sys.exit(_child_main(json.loads(sys.argv[1])))
