"""The whole local stack: services, resources, functions, gateway, pollers and schedules.

``LocalStack`` reads the project's template.yaml and nothing else, so what runs locally is what
deploys: every table and queue it declares is created, every function gets its own execution
environments with its resolved environment, every HttpApi route, SQS event and schedule is
wired the way AWS would wire it. Tests use it as a context manager; the CLI wraps it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .gateway import GatewayServer, Route, start_gateway
from .intrinsics import DEFAULT_ACCOUNT_ID, Resolver, api_id
from .invoke_api import InvokeServer, start_invoke_server
from .lambda_env import Functions, FunctionSpec, InvokeResult
from .schedules import Schedule, ScheduleRunner
from .services import LocalServices, default_region
from .sqs_poller import SqsEventSource, SqsPoller
from .template import FUNCTION_TYPE, LAYER_TYPE, Template, find_template, load_template

__all__ = ["FunctionError", "LocalStack"]

log = logging.getLogger("b24stack")

Hook = Callable[["LocalStack"], None]


class FunctionError(Exception):
    """A synchronous invocation ended in a function error; ``error`` is Lambda's error object."""

    def __init__(self, function_id: str, error: dict[str, Any]) -> None:
        self.function_id = function_id
        self.error = error
        super().__init__(f"{function_id}: {error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")


class LocalStack:
    """Runs a SAM project locally: ``with LocalStack(project_dir) as stack: ...``.

    ``port`` 0 picks a free gateway port. ``state_dir`` (default ``<project>/.local``) keeps the
    DynamoDB data (unless ``in_memory``), the function logs and ``stack.json``. ``env_overrides``
    is added to every function's environment. ``schedules=False`` keeps schedules from firing
    on their own (they can still be fired by hand).
    """

    def __init__(
        self,
        project_dir: Path,
        port: int = 0,
        state_dir: Path | None = None,
        in_memory: bool = False,
        env_overrides: dict[str, str] | None = None,
        schedules: bool = True,
        *,
        template: Path | None = None,
        host: str = "127.0.0.1",
        pool_size: int = 2,
        pollers_per_queue: int = 1,
        stack_name: str = "local",
        region: str | None = None,
        layer_dirs: dict[str, Path] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.template_path = Path(template).resolve() if template else find_template(self.project_dir)
        self.port = port
        self.host = host
        self.state_dir = Path(state_dir).resolve() if state_dir else self.project_dir / ".local"
        self.in_memory = in_memory
        self.env_overrides: dict[str, str] = dict(env_overrides or {})
        #: A layer's content from another folder (logical id → folder): an app under development
        #: runs from its own folder as the AppLayer, without copying it into apps/.
        self.layer_dirs: dict[str, Path] = {k: Path(v).resolve() for k, v in (layer_dirs or {}).items()}
        self.schedules_enabled = schedules
        self.pool_size = pool_size
        self.pollers_per_queue = max(1, pollers_per_queue)
        self.stack_name = stack_name
        self.region = region or default_region()
        self.account_id = DEFAULT_ACCOUNT_ID
        self.before_ready: list[Hook] = []

        self.template: Template = load_template(self.template_path)
        self.services: LocalServices | None = None
        self.resolver: Resolver | None = None
        self.resources: dict[str, str] = {}
        self.routes: list[Route] = []
        self.schedules: list[Schedule] = []
        self.sqs_sources: list[SqsEventSource] = []
        self._functions: Functions | None = None
        self._gateway: GatewayServer | None = None
        self._invoke: InvokeServer | None = None
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ready = False
        self._started = False
        self._sqs_client: Any = None

    # -- public properties --------------------------------------------------------------------

    @property
    def functions(self) -> Functions | None:
        return self._functions

    @property
    def is_ready(self) -> bool:
        return self._ready

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self._gateway.port if self._gateway else self.port}"

    @property
    def invoke_url(self) -> str:
        return f"http://{self.host}:{self._invoke.port}" if self._invoke else ""

    @property
    def dynamodb_endpoint(self) -> str:
        return self.services.dynamodb_endpoint if self.services else ""

    @property
    def sqs_endpoint(self) -> str:
        return self.services.sqs_endpoint if self.services else ""

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            return self
        self._check_not_running()
        self._started = True
        self._stop_event.clear()
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_not_running(self) -> None:
        if not self.stack_file.is_file():
            return
        try:
            pid = int(json.loads(self.stack_file.read_text()).get("pid", 0))
        except (ValueError, OSError):
            pid = 0
        alive = pid > 0
        if alive:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                pass
        if alive:
            raise RuntimeError(f"a local stack (pid {pid}) already runs from {self.state_dir}")
        self.stack_file.unlink(missing_ok=True)

    def _start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._gateway = start_gateway(self, self.host, self.port)
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self._invoke = start_invoke_server(self, self.host, 0)
        self.services = LocalServices(
            state_dir=self.state_dir, in_memory=self.in_memory, region=self.region, logs_dir=self.logs_dir
        ).start()
        environ = {**os.environ, **self.env_overrides}
        self.resolver = Resolver(
            self.template,
            region=self.region,
            account_id=self.account_id,
            stack_name=self.stack_name,
            environ=environ,
        )
        self.resources = dict(self.services.create_resources(self.template, self.resolver))
        specs = self._function_specs(self.resolver)
        self._functions = Functions(specs, self.logs_dir, self.pool_size)
        for spec in specs:
            self.resources[spec.logical_id] = spec.name
        self._wire_events(specs, self.resolver)
        for source in self.sqs_sources:
            if source.enabled:
                for _ in range(self.pollers_per_queue):
                    self._start_thread(
                        SqsPoller(
                            source,
                            functions=self._functions,
                            client_factory=self._poller_client,
                            region=self.region,
                            stop_event=self._stop_event,
                        )
                    )
        if self.schedules_enabled and any(s.enabled for s in self.schedules):
            self._start_thread(
                ScheduleRunner(
                    self.schedules,
                    functions=self._functions,
                    region=self.region,
                    account_id=self.account_id,
                    stop_event=self._stop_event,
                )
            )
        for hook in list(self.before_ready):
            hook(self)
        self._ready = True
        self._write_stack_file()
        log.debug("local stack ready at %s", self.gateway_url)

    def pause_queues(self, paused: bool = True) -> None:
        """Stop (or restart) feeding the SQS event sources, as disabling their mappings would."""
        for source in self.sqs_sources:
            if paused:
                source.paused.set()
            else:
                source.paused.clear()

    def _poller_client(self) -> Any:
        assert self.services is not None
        return self.services.client("sqs", read_timeout=30)

    def _start_thread(self, thread: threading.Thread) -> None:
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call more than once."""
        if not self._started:
            return
        self._started = False
        self._ready = False
        self._stop_event.set()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        for server in (self._gateway, self._invoke):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
        if self._functions is not None:
            self._functions.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self.services is not None:
            self.services.stop()
        with contextlib.suppress(OSError):
            if (
                self.stack_file.is_file()
                and json.loads(self.stack_file.read_text()).get("pid") == os.getpid()
            ):
                self.stack_file.unlink()
        self._gateway = None
        self._invoke = None
        self._functions = None
        self._sqs_client = None

    def _write_stack_file(self) -> None:
        info = {
            "gateway_url": self.gateway_url,
            "invoke_url": self.invoke_url,
            "dynamodb_endpoint": self.dynamodb_endpoint,
            "sqs_endpoint": self.sqs_endpoint,
            "region": self.region,
            "resources": self.resources,
            "logs_dir": str(self.logs_dir),
            "template": str(self.template_path),
            "pid": os.getpid(),
            # The template's parameters as this stack resolved them (`b24app doctor` checks the OAuth
            # server and the secret's SSM name with them). None holds a secret: the secret is a name.
            "parameters": self._parameter_values(),
        }
        tmp = self.stack_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.stack_file)

    def _parameter_values(self) -> dict[str, Any]:
        resolver = self.resolver
        if resolver is None:
            return {}
        return {name: resolver.parameter_value(name) for name in self.template.parameters}

    # -- building functions and wiring events ------------------------------------------------

    def _function_specs(self, resolver: Resolver) -> list[FunctionSpec]:
        specs = []
        for logical_id, _res in self.template.of_type(FUNCTION_TYPE):
            if resolver.resource_enabled(logical_id):
                specs.append(self._function_spec(logical_id, resolver))
        return specs

    def _function_spec(self, logical_id: str, resolver: Resolver) -> FunctionSpec:
        props = self.template.function_properties(logical_id)
        name = resolver.physical_name(logical_id)
        handler = resolver.resolve_str(props.get("Handler", "app.lambda_handler"))
        code_uri = resolver.resolve(props.get("CodeUri"))
        if isinstance(code_uri, str) and code_uri:
            code_dir = (self.template.base_dir / code_uri).resolve()
        elif props.get("InlineCode") is not None:
            code_dir = self.state_dir / "inline" / logical_id
            code_dir.mkdir(parents=True, exist_ok=True)
            module = handler.rpartition(".")[0] or "index"
            (code_dir / f"{module}.py").write_text(resolver.resolve_str(props["InlineCode"]))
        else:
            code_dir = self.template.base_dir
        if not code_dir.is_dir():
            log.warning("%s: CodeUri folder %s does not exist", logical_id, code_dir)
        layer_dirs = []
        for layer in props.get("Layers") or []:
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            if layer_id in self.layer_dirs:
                layer_dirs.append(self.layer_dirs[layer_id])
                continue
            if layer_id and self.template.resource_type(layer_id) == LAYER_TYPE:
                content = resolver.resolve(self.template.properties(layer_id).get("ContentUri"))
                if isinstance(content, str):
                    layer_dirs.append((self.template.base_dir / content).resolve())
                    continue
            log.warning(
                "%s: layer %s is not a local LayerVersion; skipped", logical_id, resolver.resolve_str(layer)
            )
        timeout = float(resolver.resolve_str(props.get("Timeout", 3)) or 3)
        memory = int(resolver.resolve_str(props.get("MemorySize", 128)) or 128)
        runtime = resolver.resolve_str(props.get("Runtime", "python3.12"))
        variables = resolver.resolve(((props.get("Environment") or {}).get("Variables")) or {})
        env = self._runtime_env(name, logical_id, handler, code_dir, timeout, memory, runtime)
        env.update({str(k): _env_str(v) for k, v in (variables or {}).items()})
        unresolved = sorted(
            k
            for k, v in (variables or {}).items()
            if "UNRESOLVED(" in _env_str(v) and k not in self.env_overrides
        )
        if unresolved:
            log.warning("%s: no local value for %s", logical_id, ", ".join(unresolved))
        env.update(self.env_overrides)
        events = {}
        for event_name, event in (props.get("Events") or {}).items():
            if isinstance(event, dict):
                events[str(event_name)] = {
                    "Type": str(event.get("Type", "")),
                    "Properties": resolver.resolve(event.get("Properties") or {}),
                }
        reserved = resolver.resolve_str(props.get("ReservedConcurrentExecutions", ""))
        return FunctionSpec(
            max_concurrency=int(reserved) if reserved.isdigit() and int(reserved) > 0 else None,
            logical_id=logical_id,
            name=name,
            arn=resolver.arn("lambda", f"function:{name}"),
            code_dir=code_dir,
            handler=handler,
            layer_dirs=layer_dirs,
            environment=env,
            timeout=timeout,
            memory_mb=memory,
            runtime=runtime,
            events=events,
        )

    def _runtime_env(
        self,
        name: str,
        logical_id: str,
        handler: str,
        code_dir: Path,
        timeout: float,
        memory: int,
        runtime: str,
    ) -> dict[str, str]:
        """What Lambda's runtime sets, plus the local wiring to the emulated services."""
        assert self.services is not None
        moto = self.services.moto_endpoint
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(timeout) if timeout.is_integer() else timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + logical_id.lower(),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            # A developer's ~/.aws must not redirect a local function to a real account.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL": moto,
            "AWS_ENDPOINT_URL_DYNAMODB": self.services.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_SQS": moto,
            "AWS_ENDPOINT_URL_LAMBDA": self.invoke_url,
            "AWS_SAM_LOCAL": "true",
            "B24_LOCAL": "1",
        }

    def _wire_events(self, specs: list[FunctionSpec], resolver: Resolver) -> None:
        queues_by_arn = {
            str(resolver.get_att(qid, "Arn")): (qid, url)
            for qid, url in self.resources.items()
            if self.template.resource_type(qid) == "AWS::SQS::Queue"
        }
        queues_by_url = {url: (qid, url) for qid, url in self.resources.items()}
        for spec in specs:
            for event_name, event in spec.events.items():
                etype, props = event["Type"], event["Properties"]
                if etype == "HttpApi":
                    method = str(props.get("Method") or "ANY").upper()
                    path = props.get("Path")
                    api = props.get("ApiId")
                    self.routes.append(
                        Route(
                            spec.logical_id,
                            "ANY" if method in ("ANY", "*") else method,
                            str(path) if path else None,
                            api_id=str(api) if api else api_id("ServerlessHttpApi"),
                            account_id=self.account_id,
                        )
                    )
                elif etype == "SQS":
                    queue = str(props.get("Queue", ""))
                    found = queues_by_arn.get(queue) or queues_by_url.get(queue)
                    if found is None:
                        log.warning(
                            "%s.%s: queue %s is not in the template; not polled",
                            spec.logical_id,
                            event_name,
                            queue,
                        )
                        continue
                    self.sqs_sources.append(
                        SqsEventSource(
                            function_id=spec.logical_id,
                            event_name=event_name,
                            queue_url=found[1],
                            queue_arn=str(resolver.get_att(found[0], "Arn")),
                            batch_size=int(props.get("BatchSize", 10)),
                            window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                            report_failures="ReportBatchItemFailures"
                            in (props.get("FunctionResponseTypes") or []),
                            enabled=_env_str(props.get("Enabled", True)).lower() != "false",
                        )
                    )
                elif etype in ("Schedule", "ScheduleV2"):
                    expression = props.get("ScheduleExpression") or props.get("Schedule") or ""
                    state = str(props.get("State") or "ENABLED").upper()
                    enabled = state != "DISABLED" and _env_str(props.get("Enabled", True)).lower() != "false"
                    self.schedules.append(
                        Schedule(
                            function_id=spec.logical_id,
                            event_name=event_name,
                            expression=str(expression),
                            input=props.get("Input"),
                            enabled=enabled,
                            timezone=str(props.get("ScheduleExpressionTimezone") or "UTC"),
                            kind=etype,
                            arn=resolver.arn("scheduler", f"schedule/default/{spec.name}-{event_name}"),
                        )
                    )
                else:
                    log.warning(
                        "%s.%s: event type %s is not emulated locally", spec.logical_id, event_name, etype
                    )
        if self.routes:
            self.resources.update({api: self.gateway_url for api in self._http_api_ids()})

    def _http_api_ids(self) -> list[str]:
        return [lid for lid, _ in self.template.of_type("AWS::Serverless::HttpApi")]

    # -- operations ---------------------------------------------------------------------------

    def _require_functions(self) -> Functions:
        if self._functions is None or not self._ready:
            raise RuntimeError("the local stack is not running")
        return self._functions

    def _logical_id(self, function: str) -> str:
        logical_id = self._require_functions().lookup(function)
        if logical_id is None:
            raise KeyError(f"no function {function!r} in the template")
        return logical_id

    def invoke(self, function_logical_id: str, payload: Any = None, sync: bool = True) -> Any:
        """Invoke a function (by logical id, name or ARN). Sync returns its result or raises
        FunctionError; async returns the request id at once."""
        functions = self._require_functions()
        logical_id = self._logical_id(function_logical_id)
        event = {} if payload is None else payload
        if not sync:
            return functions.invoke_async(logical_id, event)
        result = functions.invoke(logical_id, event)
        if not result.ok:
            assert result.error is not None
            raise FunctionError(logical_id, result.error)
        return result.payload

    def fire_schedule_result(self, function_id: str, event_name: str) -> InvokeResult:
        logical_id = self._logical_id(function_id)
        for schedule in self.schedules:
            if schedule.function_id == logical_id and schedule.event_name == event_name:
                return self._require_functions().invoke(
                    logical_id, schedule.event(self.region, self.account_id)
                )
        raise KeyError(f"no schedule {event_name!r} on function {function_id!r}")

    def fire_schedule(self, function_logical_id: str, event_name: str) -> Any:
        """Fire a schedule now, synchronously; returns the function's result."""
        result = self.fire_schedule_result(function_logical_id, event_name)
        if not result.ok:
            assert result.error is not None
            raise FunctionError(function_logical_id, result.error)
        return result.payload

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` aimed at this stack (lambda -> the local Invoke API)."""
        if self.services is None:
            raise RuntimeError("the local stack is not running")
        client = self.services.client(service)
        if service == "lambda":
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "lambda",
                endpoint_url=self.invoke_url,
                region_name=self.region,
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=900),
            )
        return client

    def _queue_backlog(self) -> int:
        if self._sqs_client is None and self.services is not None:
            self._sqs_client = self.services.client("sqs")
        total = 0
        for source in self.sqs_sources:
            if not source.enabled:
                continue
            attrs = self._sqs_client.get_queue_attributes(
                QueueUrl=source.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            total += sum(int(v) for v in attrs.values())
        return total

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no invocation runs and no polled queue holds a message; True, or TimeoutError.

        Idle must hold on two looks in a row with no invocation started in between, so a
        message passed from one function to the next queue is not mistaken for the end.
        """
        functions = self._require_functions()
        deadline = time.monotonic() + timeout
        quiet_since: int | None = None
        while True:
            started = functions.started
            backlog = self._queue_backlog()
            busy = functions.in_flight > 0 or backlog > 0
            if not busy:
                if quiet_since == started == functions.started:
                    return True
                quiet_since = started
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stack not idle after {timeout:.0f}s: {functions.in_flight} invocations running, "
                    f"{backlog} queued messages"
                )
            time.sleep(0.1)

    def child_pids(self) -> list[int]:
        """Process ids this stack started that are still running (services and environments)."""
        pids = list(self.services.pids()) if self.services else []
        return pids + (self._functions.pids() if self._functions else [])

    def status(self) -> dict[str, Any]:
        functions = self._functions
        running: dict[str, Any] = {}
        if functions is not None:
            for lid, spec in functions.specs.items():
                running[lid] = {"name": spec.name, "environments": len(functions.pools[lid].pids())}
        return {
            "ready": self._ready,
            "gateway_url": self.gateway_url,
            "region": self.region,
            "resources": self.resources,
            "in_flight": functions.in_flight if functions else 0,
            "functions": running,
            "routes": [r.key for r in self.routes],
            "queues_polled": [s.queue_url for s in self.sqs_sources if s.enabled],
            "schedules": [
                {
                    "function": s.function_id,
                    "event": s.event_name,
                    "expression": s.expression,
                    "enabled": s.enabled,
                }
                for s in self.schedules
            ],
            "timed_schedules": self.schedules_enabled,
        }

    def summary(self) -> str:
        """One short line on what runs: counts, not secrets."""
        functions = self._functions
        tables = sum(
            1 for lid in self.resources if self.template.resource_type(lid) == "AWS::DynamoDB::Table"
        )
        queues = sum(1 for lid in self.resources if self.template.resource_type(lid) == "AWS::SQS::Queue")
        timed = sum(1 for s in self.schedules if s.enabled)
        counts = [
            _count(len(functions.specs) if functions else 0, "function"),
            _count(len(self.routes), "route"),
            _count(tables, "table"),
            _count(queues, "queue"),
            _count(timed, "schedule"),
        ]
        timers = "" if self.schedules_enabled else " (timers off)"
        return f"{', '.join(counts)}{timers}; state {self.state_dir}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
