"""Running the Lambda functions in this process, one invocation at a time per function.

A function's module is imported once (its cold start), as `functions/<module>.py` with the
`functions/` folder on sys.path, just as the Lambda runtime imports the handler file. Each function
runs at most one invocation at a time, like one warm Lambda instance, so the module state that
Powertools keeps per instance (logger keys, pending metrics) is never shared between two calls.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotong import init_phase
from sotong.clock import OFFSET_ENV
from sotong.masking import mask_text
from sotong.resources import Function
from sotong_local.events import ACCOUNT, REGION

log = logging.getLogger("sotong_local.lambdas")

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """What the Lambda runtime passes as `context` (the attributes Powertools reads)."""

    def __init__(self, function: Function, name_prefix: str = "sotong-local") -> None:
        self.function_name = f"{name_prefix}-{function.name.replace('_', '-')}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        )
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Window:
    """When a shifted run had the clock, and its shift; `ended` is None while it runs."""

    started: float
    offset: float
    ended: float | None = None


class ClockGate:
    """Invocations share the clock; a run with a shifted clock has it to itself.

    `sotong.clock` reads its offset from a process-wide environment variable, so while one run
    sees a shifted clock no other invocation may run (they wait, then see the real clock).

    The shift is carried with the run: as nothing else runs meanwhile, every stream record and
    queued message made while a shifted run has the clock was made by that run. The gate keeps
    those windows (`offset_at`), and the stream and queue pollers invoke what such a record or
    message triggers with the same shift, so a chain (release → outbox item → relay → queue →
    sender) sees one clock from end to end, retries included.
    """

    KEEP = 1000
    """Windows remembered (the oldest are forgotten first)."""
    MARGIN_S = 0.002
    """AWS stamps records and messages to the millisecond."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._windows: collections.deque[_Window] = collections.deque(maxlen=self.KEEP)

    def offset_at(self, epoch_s: float | None) -> float | None:
        """The shift of the run that had the clock at `epoch_s` (wall clock), if one had it."""
        if epoch_s is None:
            return None
        with self._cond:
            windows = list(self._windows)
            now = time.time()
        for window in reversed(windows):
            ended = now if window.ended is None else window.ended
            if window.started - self.MARGIN_S <= epoch_s <= ended + self.MARGIN_S:
                return window.offset
        return None

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def shifted(self, offset_seconds: float) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._writer = True
            self._cond.wait_for(lambda: self._readers == 0)
        before = os.environ.get(OFFSET_ENV)
        total = float(before or 0) + offset_seconds
        os.environ[OFFSET_ENV] = str(total)
        # The window is known from the run's start: a poller may read what the run wrote (and
        # invoke what it triggers) before the run returns.
        window = _Window(started=time.time(), offset=offset_seconds)
        with self._cond:
            self._windows.append(window)
        try:
            yield
        finally:
            with self._cond:
                window.ended = time.time()
            if before is None:
                os.environ.pop(OFFSET_ENV, None)
            else:
                os.environ[OFFSET_ENV] = before
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class Invocation:
    function: str
    request_id: str
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    duration_ms: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Unavailable:
    """A function whose module could not be imported; invoking it fails like a broken deploy."""

    reason: str
    detail: str = ""


@dataclass
class Runtime:
    functions: Iterable[Function]
    functions_dir: Path | None = None
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    enforce_timeouts: bool = True
    name_prefix: str = "sotong-local"
    gate: ClockGate = field(default_factory=ClockGate)

    def __post_init__(self) -> None:
        self.definitions: dict[str, Function] = {f.name: f for f in self.functions}
        self.loaded: dict[str, Handler] = dict(self.handlers)
        self.unavailable: dict[str, Unavailable] = {}
        self._locks = {name: threading.Lock() for name in self.definitions}

    def load(self) -> None:
        """Import every function's module (its cold start); failures are remembered, not raised."""
        if self.functions_dir is not None:
            folder = str(self.functions_dir.resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)
        for name, function in self.definitions.items():
            if name in self.loaded:
                continue
            module_name, _, attribute = function.handler.rpartition(".")
            started = time.perf_counter()
            try:
                module = importlib.import_module(module_name)
                handler = getattr(module, attribute)
            except ModuleNotFoundError as error:
                if error.name == module_name:
                    self.unavailable[name] = Unavailable(
                        f"no module {module_name}.py in {self.functions_dir}"
                    )
                else:
                    self.unavailable[name] = Unavailable(
                        f"{type(error).__name__}: {error}", traceback.format_exc()
                    )
                continue
            except Exception as error:  # a broken function must not take the others down
                self.unavailable[name] = Unavailable(
                    f"{type(error).__name__}: {error}", traceback.format_exc()
                )
                continue
            if not callable(handler):
                self.unavailable[name] = Unavailable(f"{function.handler} is not callable")
                continue
            self.loaded[name] = handler
            log.debug("imported %s in %.0f ms", name, (time.perf_counter() - started) * 1000)
        init_phase.finished()  # even if a module failed before its own last line resumed it

    def available(self, name: str) -> bool:
        return name in self.loaded

    def invoke(
        self, name: str, event: dict[str, Any], *, clock_offset_seconds: float | None = None
    ) -> Invocation:
        function = self.definitions.get(name)
        if function is None:
            return Invocation(
                name,
                "-",
                error=f"no function named {name} among {', '.join(self.definitions)}",
                error_type="ResourceNotFoundException",
            )
        context = LambdaContext(function, self.name_prefix)
        result = Invocation(name, context.aws_request_id)
        handler = self.loaded.get(name)
        if handler is None:
            missing = self.unavailable.get(name, Unavailable("not loaded"))
            result.error, result.error_type = missing.reason, "Runtime.ImportModuleError"
            return result
        gate = (
            self.gate.shifted(clock_offset_seconds) if clock_offset_seconds else self.gate.shared()
        )
        with self._locks[name], gate:
            started = time.perf_counter()
            try:
                result.value = handler(event, context)
            except Exception as error:
                # Masked as the functions' own logs are (a phone, an address, a pydantic
                # error's input_value): this is the line the Lambda runtime would print.
                result.error = mask_text(f"{type(error).__name__}: {error}")
                result.error_type = type(error).__name__
                log.error(
                    "%s raised %s (request %s)\n%s",
                    name,
                    result.error,
                    result.request_id,
                    mask_text(traceback.format_exc().rstrip()),
                )
            result.duration_ms = (time.perf_counter() - started) * 1000
        if result.duration_ms > function.timeout_s * 1000:
            result.timed_out = True
            message = (
                f"{name} ran {result.duration_ms / 1000:.1f} s, over its {function.timeout_s} s "
                "timeout: AWS would have stopped it"
            )
            log.warning(message)
            if self.enforce_timeouts and result.error is None:
                result.error = f"Task timed out after {function.timeout_s}.00 seconds"
                result.error_type = "Sandbox.Timedout"
                result.value = None
        return result
