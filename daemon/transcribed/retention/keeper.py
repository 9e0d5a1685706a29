"""Retention's passes: on a thread of the daemon, or once from `transcribed retention`.

A pass finishes a journal a crash left (carry.py), then for each folder with a policy lists its
items (items.py), what is in use, and what goes (select.py), and carries that out. Several
daemons may share the folders: a lock in the state folder lets one pass run at a time, the
others skip theirs. The clock is injected (`clock`), so tests move time instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..config import RETENTION_FOLDERS, Config, Keep
from ..logs import get_logger
from .carry import RETENTION_FOLDER, Carrier
from .items import in_use, items_of
from .select import Verdict, choose

#: With `done: delete`, done/ is looked at this often (a source goes within this after its job).
DELETE_PASS_SECONDS = 10.0
LOCK_FILE = "lock"

log = get_logger()


class Keeper:
    """The retention of one daemon's folders (`retention.*`)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.settings = config.retention
        self.clock = clock
        folders = config.folders
        self.roots = {"done": folders.done, "outbox": folders.outbox, "failed": folders.failed,
                      "state": folders.state}
        archives = {name: keep.archive for name in RETENTION_FOLDERS
                    if isinstance(keep := getattr(self.settings, name), Keep)}
        self.carrier = Carrier(folders.state, self.roots, archives)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def policies(self) -> dict[str, Keep]:
        """The folders that lose anything, with their policy (`done: delete` is age 0)."""
        return {name: keep for name in RETENTION_FOLDERS
                if (keep := self.settings.policy(name)) is not None}

    def plan(self, only: tuple[str, ...] = RETENTION_FOLDERS) -> dict[str, list[Verdict]]:
        """What goes now, per folder (touching nothing): `--dry-run`, and each pass."""
        chosen: dict[str, list[Verdict]] = {}
        for name, keep in self.policies.items():
            if name not in only:
                continue
            items = items_of(name, self.config)
            busy = in_use(self.config)  # after the listing: a plan begun since is seen here
            chosen[name] = choose(items, keep, busy, self.clock(), name)
        return chosen

    def run_pass(self, only: tuple[str, ...] = RETENTION_FOLDERS) -> dict[str, Any] | None:
        """One pass under the lock (None: another daemon's pass holds it): what went."""
        started = time.monotonic()
        with self._locked() as held:
            if not held:
                return None
            resumed = self.carrier.resume()
            chosen = self.plan(only)
            freed, counts = 0, {}
            for name, verdicts in chosen.items():
                freed += self.carrier.carry_out(verdicts, stop=self._stop.is_set)
                counts[name] = len(verdicts)
        summary = {"items": counts, "freed_bytes": freed, "resumed": resumed,
                   "seconds": round(time.monotonic() - started, 3)}
        if any(counts.values()) or resumed:
            log.info("retention.pass", **summary)
        return summary

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        """One pass at a time among the daemons that share the state folder."""
        folder = self.config.folders.state / RETENTION_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def describe(self, chosen: dict[str, list[Verdict]]) -> list[str]:
        """`transcribed retention --dry-run`: one line per item that would go, where, and why."""
        lines = []
        for name, verdicts in chosen.items():
            archive = self.policies[name].archive
            fate = f"moved to {archive}" if archive else "removed"
            for verdict in verdicts:
                item = verdict.item
                more = len(item.files) - 1
                files = f" (and {more} more file{'s' if more > 1 else ''})" if more else ""
                lines.append(f"{name}/{item.name}{files}: {_size(item.size)}, {verdict.reason}: {fate}")
        return lines

    # --- the thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Passes every `retention.check_seconds` (done/ every few seconds with `done: delete`);
        nothing when every folder keeps everything."""
        if not self.policies:
            return
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()
        folders = {name: "delete" if getattr(self.settings, name) == "delete" else _describe(keep)
                   for name, keep in self.policies.items()}
        log.info("retention.started", folders=folders, check_seconds=self.settings.check_seconds)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        deleting = "done" in self.policies and self.settings.done == "delete"
        next_full = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            full = now >= next_full
            try:
                self.run_pass() if full else self.run_pass(only=("done",))
            except Exception as exc:  # noqa: BLE001 - a share away or a damaged file costs a pass, not the thread
                log.warning("retention.error", error=f"{type(exc).__name__}: {exc}",
                            action="tried again at the next pass")
            if full:
                next_full = now + self.settings.check_seconds
            wait = min(next_full - time.monotonic(), DELETE_PASS_SECONDS if deleting else float("inf"))
            self._stop.wait(max(0.05, wait))


def _describe(keep: Keep) -> dict[str, Any]:
    return {"max_age_days": keep.max_age_days, "max_size": keep.max_size,
            "archive": str(keep.archive) if keep.archive else None}


def _size(count: int) -> str:
    for unit, step in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= step:
            return f"{count / step:.1f} {unit}"
    return f"{count} B"
