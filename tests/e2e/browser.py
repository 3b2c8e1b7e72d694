"""A headless Chromium driven over the DevTools protocol, with nothing beyond the standard library.

Debian's `chromium` (CI installs it; see `.ci/run`) is started with `--remote-debugging-port=0`; the
port it picked is read from `<user-data-dir>/DevToolsActivePort`, and the page's websocket is spoken
by the small RFC 6455 client below (text frames, masked, no extensions).

    with Browser.launch() as browser:
        browser.set_viewport(390, 844)
        browser.navigate("http://127.0.0.1:8000/pages/complaint.html")
        browser.type("#text", "대기시간이 너무 길었습니다")
        browser.click("#submit")
        browser.wait_for("document.querySelector('#code').textContent !== ''")
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "SOTONG_CHROMIUM"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class BrowserMissing(RuntimeError):
    """No Chromium on this machine."""


class BrowserError(RuntimeError):
    """A DevTools call failed, a page script threw, or a wait ran out."""


def find_chromium() -> str:
    """The Chromium executable: `$SOTONG_CHROMIUM`, else the first candidate on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if shutil.which(configured):
            return configured
        raise BrowserMissing(f"{CHROMIUM_ENV}={configured} is not an executable")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        "no Chromium found (looked for "
        + ", ".join(CANDIDATES)
        + f" on PATH and ${CHROMIUM_ENV}). "
        "Install it: apt-get install -y chromium   (.ci/run does this in CI)"
    )


class WebSocket:
    """A minimal RFC 6455 client: text frames out (masked), text/binary frames in, ping → pong."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"only ws:// URLs: {url}")
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise BrowserError(f"websocket handshake refused: {lines[0]}")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
        }
        expected = base64.b64encode(
            hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
        ).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise BrowserError("websocket handshake: wrong Sec-WebSocket-Accept")

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise BrowserError("the browser closed the DevTools connection")
        self._buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self, timeout: float) -> str | None:
        """The next whole message, or None when none starts within `timeout` seconds."""
        message = b""
        while True:
            # Only the wait for a new message may time out; a frame once started is read whole.
            self.sock.settimeout(max(timeout, 0.001) if not message else 30)
            try:
                while len(self._buffer) < 2:
                    self._fill()
            except TimeoutError:
                if message:
                    raise BrowserError("a DevTools message stopped half-way") from None
                return None
            self.sock.settimeout(30)
            first, second = self._take(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._take(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._take(8))
            mask = self._take(4) if second & 0x80 else b""
            payload = self._take(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise BrowserError("the browser closed the DevTools connection")
            message += payload
            if first & 0x80:  # FIN: a whole text/binary message, or its last continuation
                return message.decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self.sock.close()


class Browser:
    """One headless Chromium with one page tab, driven over CDP."""

    def __init__(self, process: subprocess.Popen[bytes], profile: Path, ws: WebSocket) -> None:
        self.process, self.profile, self.ws = process, profile, ws
        self._next_id = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        # uncaught page exceptions, console.error lines and Content-Security-Policy violations
        self.errors: list[str] = []

    # -- start / stop --------------------------------------------------------------------------
    @classmethod
    def launch(cls, executable: str | None = None, startup_timeout: float = 15.0) -> Browser:
        binary = executable or find_chromium()
        profile = Path(tempfile.mkdtemp(prefix="sotong-chromium-"))
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--lang=ko-KR",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        log = (profile / "chromium.log").open("wb")
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        try:
            port = cls._devtools_port(process, profile, startup_timeout)
            ws = WebSocket(cls._page_socket(port, startup_timeout))
        except BaseException:
            cls._stop_process(process)
            shutil.rmtree(profile, ignore_errors=True)
            raise
        browser = cls(process, profile, ws)
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            browser.send(domain)
        return browser

    @staticmethod
    def _devtools_port(process: subprocess.Popen[bytes], profile: Path, timeout: float) -> int:
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = (profile / "chromium.log").read_text(errors="replace")
                raise BrowserError(f"chromium exited with {process.returncode}:\n{output[-3000:]}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.05)
        raise BrowserError(f"chromium wrote no {marker.name} within {timeout:.0f} s")

    @staticmethod
    def _page_socket(port: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                targets = json.load(answer)
            pages = [t for t in targets if t.get("type") == "page" and "webSocketDebuggerUrl" in t]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise BrowserError("chromium shows no page target")
            time.sleep(0.05)

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self._call("Browser.close", {}, timeout=3)
        self.ws.close()
        self._stop_process(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- the protocol ----------------------------------------------------------------------------
    def _note(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"uncaught: {text}")
        elif method == "Log.entryAdded":
            # What the browser itself reports: a Content-Security-Policy violation (a blocked
            # script, style or fetch) is an error here; failed requests (a 4xx) are not.
            entry = params.get("entry", {})
            text = str(entry.get("text", ""))
            if entry.get("source") == "security" or "Content Security Policy" in text:
                self.errors.append(f"{entry.get('source')}: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(
                "console.error: "
                + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
                )
            )

    def _call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            raw = self.ws.recv(left) if left > 0 else None
            if raw is None:
                raise BrowserError(f"{method}: no answer within {timeout:.0f} s")
            message = json.loads(raw)
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._note(message)

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Call a DevTools method; its result. Events that arrive meanwhile go to `events`."""
        return self._call(method, params or {}, timeout)

    def pump(self, seconds: float) -> None:
        """Read the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            raw = self.ws.recv(left)
            if raw is None:
                return
            message = json.loads(raw)
            if "method" in message:
                self._note(message)

    def wait_event(self, method: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first `method` event since the last `clear_events()`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    params: dict[str, Any] = event.get("params", {})
                    return params
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no {method} within {timeout:.0f} s")
            self.pump(min(left, 0.2))

    def clear_events(self) -> None:
        self.events.clear()

    # -- pages -----------------------------------------------------------------------------------
    def set_viewport(
        self, width: int, height: int, scale: float = 2.0, mobile: bool = True
    ) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
        )

    def set_locale(self, locale: str = "ko-KR") -> None:
        """Intl, navigator.language and Accept-Language as a browser set to `locale` has them."""
        self.send("Emulation.setLocaleOverride", {"locale": locale})
        agent = self.send("Browser.getVersion")["userAgent"]
        language = locale.split("-")[0]
        self.send(
            "Emulation.setUserAgentOverride",
            {"userAgent": agent, "acceptLanguage": f"{locale},{language}"},
        )

    def navigate(self, url: str, timeout: float = 10.0) -> None:
        """Open `url` and wait for its load event."""
        self.clear_events()
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": True,
            },
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}\n  in: {expression[:200]}")
        return result.get("result", {}).get("value")

    def wait_for(self, predicate: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(predicate)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout:.0f} s: {predicate}")
            self.pump(interval)

    def focus(self, selector: str) -> None:
        found = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false; el.scrollIntoView({block: 'center'}); el.focus();"
            " return true; })()"
        )
        if not found:
            raise BrowserError(f"no element {selector}")

    def type(self, selector: str, text: str, clear: bool = True) -> None:
        """Focus a field, empty it, and type `text` as keyboard input (input events fire)."""
        self.focus(selector)
        if clear:
            self.evaluate(
                f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                " el.select && el.select(); })()"
            )
            self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": "rawKeyDown",
                    "key": "Backspace",
                    "code": "Backspace",
                    "windowsVirtualKeyCode": 8,
                },
            )
            self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": "keyUp",
                    "key": "Backspace",
                    "code": "Backspace",
                    "windowsVirtualKeyCode": 8,
                },
            )
        if text:
            self.send("Input.insertText", {"text": text})

    def set_value(self, selector: str, value: str) -> None:
        """Set a field's value from script, then fire input and change (date inputs, selects)."""
        ok = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false;"
            f" el.value = {json.dumps(value)};"
            " el.dispatchEvent(new Event('input', {bubbles: true}));"
            " el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
        )
        if not ok:
            raise BrowserError(f"no element {selector}")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null;"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width * r.height]; })()"
        )
        if not box:
            raise BrowserError(f"no element {selector}")
        x, y, area = box
        if not area:
            raise BrowserError(f"{selector} is not visible")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def press(
        self, key: str, code: str | None = None, key_code: int = 0, text: str | None = None
    ) -> None:
        """One key press (e.g. `press("Tab", key_code=9)`, `press(" ", "Space", 32, " ")`)."""
        down: dict[str, Any] = {
            "type": "keyDown" if text else "rawKeyDown",
            "key": key,
            "code": code or key,
            "windowsVirtualKeyCode": key_code,
        }
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down)
        self.send(
            "Input.dispatchKeyEvent",
            {"type": "keyUp", "key": key, "code": code or key, "windowsVirtualKeyCode": key_code},
        )

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        """A PNG of the page (the whole page by default, not just the viewport)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, timeout=30)["data"]
        target = Path(path)
        target.write_bytes(base64.b64decode(data))
        return target
