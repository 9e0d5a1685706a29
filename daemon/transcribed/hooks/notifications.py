"""Notifications through Apprise: the third kind of completion hook, beside the command and the
webhook (docs/notifications.md).

Apprise speaks ntfy, Gotify, Telegram, Matrix, Discord, Slack, e-mail and a hundred more, each
through one URL. The URLs come from the file `hooks.notify.urls_file` names, read once at start;
they hold tokens and passwords, so none is ever logged, shown or written: a service is named by
its kind and its line in the file ("ntfy, line 2"), and its delivery state in a hook record is
kept under a hash of its URL (`notify:<hash>`), so each URL is tried, retried and ended on its
own, on the same durable queue as the command and the webhook (queue.py).

One try is one Apprise call to one service, on the hook thread, bounded by the service's own
connect and read timeouts (each capped at `hooks.timeout_seconds`). Apprise's own log lines are
kept out of the daemon's log (some name the URL's parts); the warnings of a failed try become
its error text, with every part of the URL cut out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Hooks
from ..errors import ConfigError
from .message import render

#: A hook record's target name for one Apprise URL: this prefix and a hash of the URL.
TARGET_PREFIX = "notify:"
#: Parts of a URL shorter than this are left in error texts (a port, "api", "v1").
MIN_SECRET_CHARS = 4
#: Apprise's logger: it must not reach the daemon's log.
APPRISE_LOGGER = "apprise"


@dataclass(frozen=True)
class Service:
    """One URL of the file: what a log line may say of it, and what must never be said."""

    target: str
    #: E.g. "ntfy, line 2": its kind and where it is in the file.
    label: str
    url: str
    plugin: Any

    def scrub(self, text: str) -> str:
        """`text` with every part of the URL that could be a secret cut out."""
        for part in sorted(_parts_of(self.url), key=len, reverse=True):
            text = text.replace(part, "***")
        return text


class Notifications:
    """The services of `hooks.notify.urls_file`; `send` makes one try to one of them."""

    def __init__(self, hooks: Hooks) -> None:
        self.settings = hooks.notify
        self.timeout = hooks.timeout_seconds
        self.services: dict[str, Service] = {}
        if hooks.notify.urls_file is not None:
            self.services = {s.target: s for s in _load(hooks.notify.urls_file, self.timeout)}

    @property
    def targets(self) -> list[str]:
        """The target names of the services, in the file's order."""
        return list(self.services)

    def label(self, target: str) -> str:
        service = self.services.get(target)
        return service.label if service is not None else target

    def send(self, target: str, body: Mapping[str, Any]) -> str | None:
        """Notify one service of a job's end; None once it accepted, else why not (no secret)."""
        import apprise

        service = self.services[target]
        title, text = render(self.settings, body)
        warnings: list[str] = []
        sender = apprise.Apprise(asset=_asset())
        sender.add(service.plugin)
        kind = apprise.NotifyType.FAILURE if body.get("outcome") == "failed" else apprise.NotifyType.SUCCESS
        try:
            result = sender.notify(body=text, title=title, notify_type=kind, log_level=logging.WARNING,
                                   log_callback=lambda entry, _service: warnings.append(entry.message))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is one failed try, not the thread's end
            return service.scrub(f"{service.label}: {type(exc).__name__}: {exc}")
        if result:
            return None
        said = "; ".join(dict.fromkeys(w.strip() for w in warnings if w.strip())) or "not accepted"
        return service.scrub(f"{service.label}: {said}")


def _asset() -> Any:
    """Apprise's settings: no time limit of its own (it would wait on a pool thread that outlives
    the call); each service's socket timeouts bound a try instead (capped in `_load`)."""
    import apprise

    return apprise.AppriseAsset(service_timeout=0)


def _load(path: Path, timeout: float) -> list[Service]:
    """Every URL of the file, each checked by Apprise; an error names the line, never the URL."""
    import apprise

    quiet = logging.getLogger(APPRISE_LOGGER)
    quiet.handlers[:] = [logging.NullHandler()]
    quiet.propagate = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"hooks.notify.urls_file: cannot read {path}: {reason}") from None
    services: list[Service] = []
    for number, line in enumerate(lines, start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
            raise ConfigError(f"hooks.notify.urls_file: line {number} of {path} is not a URL Apprise "
                              f"can use (scheme {scheme!r}; see its wiki for the service's form)")
        _cap_timeouts(plugin, timeout)
        target = TARGET_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        if any(s.target == target for s in services):
            continue  # the same URL twice: one notification
        services.append(Service(target, f"{plugin.service_name}, line {number}", url, plugin))
    if not services:
        raise ConfigError(f"hooks.notify.urls_file: {path} holds no URL (one per line; # comments)")
    return services


def _cap_timeouts(plugin: Any, timeout: float) -> None:
    """No connect or read of the service waits longer than `hooks.timeout_seconds`."""
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(plugin, name, None)
        if isinstance(current, (int, float)) and current > timeout:
            setattr(plugin, name, float(timeout))


def _parts_of(url: str) -> set[str]:
    """The pieces of a URL that may carry a secret: user, password, host, path segments, query
    values (Telegram's bot token is its host, ntfy's topic a path segment)."""
    parts = {url}
    split = urllib.parse.urlsplit(url)
    netloc = split.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        parts.update(re.split(r"[:]", netloc[0]))
    parts.add(netloc[-1].rsplit(":", 1)[0])
    parts.update(split.path.split("/"))
    for _key, value in urllib.parse.parse_qsl(split.query):
        parts.add(value)
    decoded = {urllib.parse.unquote(p) for p in parts}
    return {p for p in parts | decoded if len(p) >= MIN_SECRET_CHARS}
