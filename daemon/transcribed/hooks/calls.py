"""What one try of a completion hook does: run the command, or POST to the URL (queue.py decides
when, and keeps the records).

A command runs in its own process group with the job's JSON on stdin, so that past the timeout
it is killed with whatever it started; its output goes to a temporary file, never a pipe that a
grandchild could hold open. A POST goes through urllib (no new dependency), follows no redirect
and counts any 2xx answer as delivered. Each returns None on success, else why not, in words.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import os
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..errors import ConfigError

#: How much of a failed command's output, or of a refusing server's answer, the log shows.
OUTPUT_TAIL = 2000
#: The body's HMAC-SHA256 with the key of `hooks.secret_file`, as "sha256=<hex>".
SIGNATURE_HEADER = "X-Transcribed-Signature"


def headers(body: Mapping[str, Any], payload: bytes, attempt: int, secret: bytes | None) -> dict[str, str]:
    """The webhook's headers: the job id as the Idempotency-Key (a delivery may be repeated
    after a crash), the event, the try, and the body's signature when a secret is set."""
    sent = {"Content-Type": "application/json", "User-Agent": f"transcribed/{__version__}",
            "Idempotency-Key": body["job_id"], "X-Transcribed-Event": body["outcome"],
            "X-Transcribed-Attempt": str(attempt)}
    if secret is not None:
        sent[SIGNATURE_HEADER] = signature(secret, payload)
    return sent


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: "sha256=" and the body's HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def read_secret(path: Path) -> bytes:
    """The signing key: the file's content without its trailing newline. Never logged."""
    try:
        secret = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"hooks.secret_file: cannot read {path}: {exc.strerror or exc}") from None
    if not secret:
        raise ConfigError(f"hooks.secret_file: {path} is empty")
    return secret


def environment(body: Mapping[str, Any]) -> dict[str, str]:
    """The TRANSCRIBED_* variables a hook command gets: the body's main fields, absent ones unset.
    Each result is TRANSCRIBED_RESULT_<FORMAT> (SRT, JSON, LOG_JSONL...)."""
    error = body.get("error") or {}
    values = {
        "JOB_ID": body["job_id"], "OUTCOME": body["outcome"], "FILE": body["file"],
        "SOURCE": _path_of(body.get("source")), "SOURCE_RELATIVE": _relative_of(body.get("source")),
        "ERROR_REPORT": _path_of(body.get("error_report")), "LOG": _path_of(body.get("log")),
        "ERROR_KIND": error.get("kind"), "ERROR": error.get("message"),
        "LANGUAGE": body.get("language"), "AUDIO_SECONDS": body.get("audio_seconds"),
        "WALL_SECONDS": body.get("wall_seconds"),
    }
    for result in body.get("results", []):
        values["RESULT_" + result["format"].upper().replace(".", "_")] = result["path"]
    if body.get("results"):
        values["RESULT_DIR"] = str(Path(body["results"][0]["path"]).parent)
    return {f"TRANSCRIBED_{key}": str(value) for key, value in values.items() if value is not None}


def _path_of(entry: Mapping[str, str] | None) -> str | None:
    return entry["path"] if entry else None


def _relative_of(entry: Mapping[str, str] | None) -> str | None:
    return entry["relative"] if entry else None


class CommandRunner:
    """Runs hook commands one at a time; `kill` ends the one running (from another thread)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def run(self, argv: list[str], payload: bytes, env: dict[str, str], timeout: float) -> str | None:
        """Run `argv` with `payload` on stdin; None when it exits 0, else why not."""
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=output,
                                           stderr=subprocess.STDOUT, env=env, start_new_session=True)
            except OSError as exc:
                return f"cannot run {argv[0]}: {exc.strerror or exc}"
            self._process = process
            try:
                process.communicate(payload, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.wait()
                return f"still running after {timeout:g} s (hooks.timeout_seconds): killed"
            finally:
                self._process = None
            if process.returncode != 0:
                return f"exited with status {process.returncode}: {_tail(output)}"
        return None

    def kill(self) -> None:
        """Kill the running command and what it started (the daemon stops)."""
        process = self._process
        if process is not None:
            _kill_group(process)


def post_json(url: str, payload: bytes, headers: dict[str, str], timeout: float) -> str | None:
    """POST `payload`; None on a 2xx answer, else why not (a redirect is not followed: urllib
    would resend the POST as a GET without its body)."""
    # S310: hooks.url is checked to be http(s) when the config is read (config/checks.py).
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        answer = exc.read(OUTPUT_TAIL).decode("utf-8", "replace")
        return f"HTTP {exc.code} {exc.reason}: {answer}".strip()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"{type(exc).__name__}: {reason}"
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error answer for a webhook (urllib would resend the POST as a GET)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    output.seek(max(0, output.tell() - OUTPUT_TAIL))
    return output.read().decode("utf-8", "replace").strip()
