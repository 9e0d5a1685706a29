"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the status
page's tests.

No browser download and no new dependency: Chromium is started with `--remote-debugging-pipe`,
which speaks the DevTools protocol as NUL-separated JSON on file descriptors 3 (commands in) and
4 (answers and events out), so a pair of pipes is the whole transport. The flags keep it off the
network (the closed network here refuses its background connections) and out of the user's
profile (a fresh `--user-data-dir` per browser).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import select
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

#: Debian's package installs it here (.ci/run installs the package).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: What every start needs on this machine (the task's list), and a phone-sized window.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe")
#: A phone: 390 x 844 CSS pixels (the page must read well there), one device pixel each (small
#: screenshots).
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


class DevToolsError(RuntimeError):
    """The browser answered a command with an error, or went away."""


class Browser:
    """One headless Chromium and one page in it; a context manager that always ends the browser."""

    def __init__(self, profile: Path, timeout: float = 30.0) -> None:
        self.profile = profile
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.session: str | None = None

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Above 4, so that `3<&x 4>&y` cannot overwrite one with the other (bash: dash takes one digit).
        to_browser_r, from_browser_w = _above(to_browser_r), _above(from_browser_w)
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        # The pipes must be the browser's fds 3 and 4: the shell's redirections put them there.
        command = f"exec {shlex.join(argv)} 3<&{to_browser_r} 4>&{from_browser_w}"
        self._log = (self.profile.parent / f"{self.profile.name}.log").open("wb")
        self.process = subprocess.Popen(["bash", "-c", command], pass_fds=(to_browser_r, from_browser_w),
                                        stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.send("Page.enable")
            self.send("Emulation.setDeviceMetricsOverride", PHONE)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(DevToolsError, OSError):
            self.send("Browser.close", session=False)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- the protocol ------------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        """One command; its result (events that arrive meanwhile are kept in `events`)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session and self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == number:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return dict(reply.get("result") or {})
            self.events.append(reply)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise DevToolsError(f"no answer to {waiting_for} within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                said = (self.profile.parent / f"{self.profile.name}.log").read_text(errors="replace")
                raise DevToolsError(f"the browser went away while {waiting_for} was pending; it said: "
                                    f"{said[-3000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(line))

    # --- what tests do -----------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Load `url` and wait until it has loaded."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (the test's probe; the page has no script)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, interval: float = 0.1) -> Any:
        """Evaluate `expression` until it is truthy (a page that reloads itself is caught between
        loads: an evaluation that fails then is tried again); its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(DevToolsError):
                last = self.evaluate(expression)
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {expression!r} in the page (last: {last!r})")

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the window) as PNG at `path`."""
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def text(self) -> str:
        return str(self.evaluate("document.body.innerText"))


def _above(fd: int, lowest: int = 10) -> int:
    """The same pipe end on a descriptor number of at least `lowest` (the old one closed)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return moved
