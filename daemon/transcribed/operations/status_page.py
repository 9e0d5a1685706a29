"""The status page at `/` on the metrics listener: what the daemon is doing, for a person.

Worded from one `Stats` snapshot (the dict the status file holds), so it never disagrees with
STATUS=, `transcribed status` or /metrics, and a state Stats learns later shows up here as soon
as the snapshot carries it (`conditions`). Plain HTML and CSS, no script and no build step: the
page reloads itself every REFRESH_SECONDS and reads well on a phone.

What it never shows: a file's content, or a path outside the configured folders. Every path is
shown relative to the folder it is in ("outbox/talks/keynote.srt"); one that is in none of them
is left out. Who may read it at all is `metrics.status_page_clients` (loopback by default).
"""

from __future__ import annotations

import html
import ipaddress
import time
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__
from ..config import Config
from .progress import describe_duration as _duration
from .progress import describe_eta
from .status_line import describe, pause_words

#: The page reloads itself this often (seconds).
REFRESH_SECONDS = 5
#: Results named per finished job before "and N more".
RESULTS_SHOWN = 6

_STYLE = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--muted:#5b6470;--ok:#1a7f37;
--bad:#c62828;--warn:#9a6700;--bar:#2f6feb;--line:#d8dde3}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#111418;--card:#1a1f25;--muted:#9aa4ae;
--line:#2c333b;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--bar:#4c8dff}}
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}main{max-width:46rem;margin:0 auto;padding:.75rem}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem .75rem;margin:.25rem 0 .75rem}
h1{font-size:1.3rem;margin:0}h2{font-size:1rem;margin:0 0 .5rem}
section{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:.75rem;
margin:0 0 .75rem}.muted{color:var(--muted);font-size:.9rem}.badge{display:inline-block;
padding:0 .5rem;border-radius:1rem;font-size:.85rem;font-weight:600;border:1px solid currentColor}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
.bar{height:.8rem;background:var(--line);border-radius:.4rem;overflow:hidden;margin:.4rem 0}
.bar>div{height:100%;background:var(--bar)}ul{list-style:none;margin:0;padding:0}
li{padding:.45rem 0;border-top:1px solid var(--line)}li:first-child{border-top:0}
.name{font-weight:600;overflow-wrap:anywhere}code{font-size:.85rem;overflow-wrap:anywhere}
.row{display:flex;justify-content:space-between;gap:.5rem}.alert{border-left:.3rem solid var(--warn)}
.alert.bad{border-left-color:var(--bad);color:inherit}.results{margin-top:.25rem}
.results li{border:0;padding:0}
"""


class StatusPage:
    """Renders the page from a snapshot; knows the configured folders, so that every path it
    shows is relative to one of them, and who may read it."""

    def __init__(self, config: Config, worker: str = "") -> None:
        self.worker = worker
        self.clients = [ipaddress.ip_network(n, strict=False) for n in config.metrics.status_page_clients]
        folders = config.folders
        roots = [("inbox", folders.inbox), ("outbox", folders.outbox), ("done", folders.done),
                 ("failed", folders.failed)]
        names = [lib.path.name for lib in config.libraries if lib.path is not None]
        for i, lib in enumerate(config.libraries):
            if lib.path is not None:
                label = lib.path.name if names.count(lib.path.name) == 1 else f"{lib.path.name}[{i}]"
                roots.append((label, lib.path))
        #: Deepest first, so that a folder inside another is named by its own label.
        self.roots = sorted(roots, key=lambda item: -len(item[1].parts))
        #: Also the state folder, only to shorten paths in error messages (never listed).
        self._in_messages = sorted([*roots, ("state", folders.state)], key=lambda item: -len(str(item[1])))

    @property
    def enabled(self) -> bool:
        return bool(self.clients)

    def allows(self, address: str) -> bool:
        """May a client at `address` read the page (`metrics.status_page_clients`)?"""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack listener
        return any(ip in network for network in self.clients)

    def shown(self, path: str, default: str | None = None) -> str | None:
        """`path` as "<folder>/<relative>" when it is in a configured folder (a relative path is
        taken as `default`'s), else None: nothing outside them is ever shown."""
        if not PurePosixPath(path).is_absolute():
            inside = default is not None and ".." not in PurePosixPath(path).parts
            return f"{default}/{path}" if inside else None
        for label, root in self.roots:
            try:
                relative = Path(path).relative_to(root)
            except ValueError:
                continue
            return f"{label}/{relative.as_posix()}" if ".." not in relative.parts else None
        return None

    def job_name(self, file: str) -> str:
        """How a job's file is named: its path in the inbox as it came ("talks/keynote.mp4"), a
        library file under its library's name, else (never expected) only its own name."""
        path = PurePosixPath(file)
        if not path.is_absolute():
            return file if ".." not in path.parts else path.name
        return self.shown(file) or path.name

    def words(self, text: str) -> str:
        """A message (an error, a reason) with each configured folder's path shortened to its
        name: "state/work/..." instead of the path on this machine."""
        for label, root in self._in_messages:
            text = text.replace(f"{root}/", f"{label}/").replace(str(root), label)
        return text

    def render(self, snapshot: dict[str, Any], now: float | None = None) -> bytes:
        """The whole page, as UTF-8."""
        now = time.time() if now is None else now
        if snapshot.get("current_file"):  # the summary line names it as the rest of the page does
            snapshot = {**snapshot, "current_file": self.job_name(str(snapshot["current_file"]))}
        parts = [self._head(snapshot), *self._conditions(snapshot), self._running(snapshot),
                 self._waiting(snapshot), self._recent(snapshot, now), self._hooks(snapshot),
                 self._foot(snapshot, now)]
        body = "\n".join(p for p in parts if p)
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width,initial-scale=1">'
                f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
                f"<title>transcribed: {_e(describe(snapshot))}</title><style>{_STYLE}</style></head>"
                f'<body><main id="status" data-state="{_e(snapshot.get("state"))}">{body}</main>'
                "</body></html>\n")
        return page.encode("utf-8")

    # --- the parts ---------------------------------------------------------------------------------

    def _head(self, snapshot: dict[str, Any]) -> str:
        healthy = snapshot.get("healthy")
        badge = ("ok", "working") if healthy else ("bad", "not working")
        if healthy and snapshot.get("degraded"):
            badge = ("warn", "waiting")
        device = " on ".join(_e(x) for x in (snapshot.get("model"), snapshot.get("device")) if x)
        return (f'<header><h1>transcribed</h1><span class="badge {badge[0]}" id="health">{badge[1]}</span>'
                f'<span class="muted">{device or "model not loaded yet"}</span></header>'
                f'<p id="summary">{_e(describe(snapshot))}</p>')

    def _conditions(self, snapshot: dict[str, Any]) -> list[str]:
        """Why the daemon does not work, or waits: every such state the snapshot carries."""
        found: list[tuple[str, str]] = []
        if not snapshot.get("healthy") and snapshot.get("reason"):
            found.append(("bad", f"Not working: {self.words(str(snapshot['reason']))}"))
        if snapshot.get("degraded"):
            found.append(("warn", f"Waiting: {self.words(str(snapshot['degraded']))}"))
        if snapshot.get("claims_paused"):
            found.append(("warn", "Paused: a folder refuses finished work (full or read-only); no new "
                                  "file is taken until it accepts it again."))
        if snapshot.get("paused"):
            paused = snapshot["paused"]
            found.append(("warn", f"{pause_words(paused).capitalize()}: no new file is taken"
                                  f"{'; the running one goes back to the inbox' if paused.get('now') else ''}"
                                  "; files that arrive are counted and wait."))
        if snapshot.get("unloaded_at"):
            found.append(("muted", "The models are unloaded while idle; the next file loads them again."))
        return [f'<section class="alert {css}" data-condition>{_e(text)}</section>' for css, text in found]

    def _running(self, snapshot: dict[str, Any]) -> str:
        current = snapshot.get("current_file")
        if not current:
            return ('<section id="running"><h2>Now</h2>'
                    '<p class="muted">Nothing is being transcribed.</p></section>')
        name = self.job_name(current)
        progress = snapshot.get("progress") or {}
        percent = float(progress.get("percent") or 0.0)
        facts = [f"{percent:.0f} %"]
        if progress.get("audio_total_s"):
            facts.append(f"of {_duration(progress['audio_total_s'])} of audio")
        if progress.get("eta_s") is not None:
            facts.append(describe_eta(progress["eta_s"]))
        elapsed = progress.get("elapsed_s", snapshot.get("current_for_s"))
        if elapsed is not None:
            facts.append(f"running for {_duration(elapsed)}")
        return (f'<section id="running"><h2>Now</h2><div class="name">{_e(name)}</div>'
                f'<div class="bar" role="progressbar" aria-valuenow="{percent:.0f}" aria-valuemin="0" '
                f'aria-valuemax="100"><div id="progress" data-percent="{percent:.1f}" '
                f'style="width:{percent:.1f}%"></div></div>'
                f'<div class="muted" id="progress-text">{_e(", ".join(facts))}</div></section>')

    def _waiting(self, snapshot: dict[str, Any]) -> str:
        count = int(snapshot.get("queue_length") or 0) + int(snapshot.get("library_waiting") or 0)
        named = snapshot.get("waiting") or []
        head = f"<h2>Waiting: {count}</h2>"
        if not count and not named:
            return f'<section id="waiting">{head}<p class="muted">Nothing waits.</p></section>'
        audio = snapshot.get("queue_audio_s")
        lines = [f'<p class="muted">{_duration(audio)} of audio in the inbox (where the files tell it)</p>'
                 if audio else ""]
        items = []
        for entry in named:
            where = "inbox" if entry.get("from") in ("inbox", "retry") else None
            name = self.shown(str(entry.get("file")), where)
            if name is None:
                continue
            length = _duration(entry["audio_s"]) if entry.get("audio_s") else "length not known yet"
            note = " (to be tried again)" if entry.get("from") == "retry" else ""
            items.append(f'<li class="row"><span class="name">{_e(name)}{note}</span>'
                         f'<span class="muted">{_e(length)}</span></li>')
        more = count - len(items)
        if more > 0 and items:
            items.append(f'<li class="muted">and {more} more</li>')
        return f'<section id="waiting">{head}{"".join(lines)}<ul>{"".join(items)}</ul></section>'

    def _recent(self, snapshot: dict[str, Any], now: float) -> str:
        recent = snapshot.get("recent") or []
        jobs = snapshot.get("jobs") or {}
        head = (f"<h2>Finished: {jobs.get('done', 0)} done, {jobs.get('failed', 0)} failed "
                "since the start</h2>")
        if not recent:
            return f'<section id="recent">{head}<p class="muted">No job has ended yet.</p></section>'
        items = "".join(self._ended(job, now) for job in recent)
        return f'<section id="recent">{head}<ul>{items}</ul></section>'

    def _ended(self, job: dict[str, Any], now: float) -> str:
        failed = job.get("outcome") == "failed"
        name = self.job_name(str(job.get("file")))
        badge = '<span class="badge bad">failed</span>' if failed else '<span class="badge ok">done</span>'
        when = _ago(now - float(job.get("at") or now))
        source, *results_at = [self.shown(str(p)) for p in job.get("places") or []] or [None]
        places = [p for p in results_at if p]
        if failed:
            error = job.get("error") or {}
            detail = (f'<div class="bad reason">{_e(error.get("kind") or "failed")}: '
                      f'{_e(self.words(str(error.get("message") or "")))}</div>')
            if source:
                detail += (f'<div class="muted">kept in <code>{_e(source)}</code>, '
                           "its report beside it</div>")
        else:
            places = [source, *places] if source else places
            facts = [f"{_duration(job['audio_s'])} of audio" if job.get("audio_s") else "",
                     f"took {_duration(job['took_s'])}" if job.get("took_s") else ""]
            detail = f'<div class="muted">{_e(", ".join(f for f in facts if f))}</div>'
        shown = places[:RESULTS_SHOWN]
        results = "".join(f"<li><code>{_e(p)}</code></li>" for p in shown)
        if len(places) > RESULTS_SHOWN:
            results += f'<li class="muted">and {len(places) - RESULTS_SHOWN} more</li>'
        results = f'<ul class="results">{results}</ul>' if results else ""
        return (f'<li class="job" data-outcome="{_e(job.get("outcome"))}"><div class="row">'
                f'<span class="name">{_e(name)}</span>{badge}</div>'
                f'<div class="muted">{_e(when)}</div>{detail}{results}</li>')

    def _hooks(self, snapshot: dict[str, Any]) -> str:
        hooks = snapshot.get("hooks")
        if not hooks:
            return ""
        lines = [f"{hooks.get('pending', 0)} pending"]
        if hooks.get("failing"):
            last = self.words(str(hooks.get("last_error")))
            lines.append(f"{hooks['failing']} failing, last error: {last}")
        if hooks.get("gave_up"):
            lines.append(f"{hooks['gave_up']} given up since the start (kept in state/hooks/gave_up)")
        items = "".join(f"<li>{_e(line)}</li>" for line in lines)
        return f'<section id="hooks"><h2>Notifications and hooks</h2><ul>{items}</ul></section>'

    def _foot(self, snapshot: dict[str, Any], now: float) -> str:
        started = snapshot.get("started_at")
        up = f"running for {_duration(now - float(started))}" if started else ""
        parts = [f"transcribed {__version__}", self.worker, up,
                 f"this page reloads every {REFRESH_SECONDS} s"]
        return f'<p class="muted">{_e(" · ".join(p for p in parts if p))}</p>'


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _ago(seconds: float) -> str:
    """How long ago, roughly: "just now", "12 min ago", "3 h ago", "2 days ago"."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"
