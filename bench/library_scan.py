"""Library scan: what a rescan of a 10 000-file library that is all done costs (issue 15).

A TV-like tree (shows / seasons / episodes, small files of distinct bytes) whose every file the
ledger records as done. Two states of it:

- `subtitled`: each episode has its `.en.srt` beside it (the usual state after the daemon ran):
  the walk passes each file by from its folder's listing, without a stat.
- `ledger`: no subtitle beside any file (deleted by a user, or failed files): each file is
  stat'ed and passed by because the ledger records it (path, size, mtime).

For each state, two measures:

1. In this process, the scan the consumer makes (`LibrarySource.scan_if_due`): the first after a
   start (the ledger read in, every folder listed) and later ones (median of `--runs`), in
   seconds, and the log lines they wrote.
2. A real daemon (fake engine, `watch.rescan_seconds: 1`) on the same tree for `--seconds`: the
   lines it logged after `daemon.started` and the jobs it claimed (both must stay near zero:
   one `library.scanned` line, no job).

    .venv/bin/python bench/library_scan.py                 # 10 000 files
    .venv/bin/python bench/library_scan.py --files 500 --seconds 3
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import DaemonProcess, Folders, machine, parser, print_table, scratch_dir

from transcribed import logs
from transcribed.config import load_config
from transcribed.library.source import LibrarySource
from transcribed.operations.stats import Stats
from transcribed.spool.folder import WorkFolder
from transcribed.library.ledger import LEDGER_FILE, content_id, file_key, library_state

EPISODES_PER_SEASON = 20
SEASONS_PER_SHOW = 5
FILE_BYTES = 8 * 1024


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    print(f"machine: {machine()}")
    rows = []
    with scratch_dir(args.keep) as scratch:
        for state in ("subtitled", "ledger"):
            folders = Folders(Path(scratch) / state)
            library = Path(scratch) / f"{state}-library"
            media = _layout(library, args.files)
            if state == "subtitled":
                for path in media:
                    path.with_name(path.stem + ".en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nx\n")
            config = folders.write_config(watch={"settle_seconds": 0.3, "rescan_seconds": 1})
            _add_library(config, library)
            _ledger_all_done(folders.state, media)
            scan = _measure_scans(config, args.runs)
            daemon = _daemon_run(config, args.seconds)
            rows.append([state, args.files, round(scan["first_s"], 3), round(scan["later_s"], 3),
                         scan["log_lines"], daemon["lines_after_start"], daemon["library_scanned"],
                         daemon["claimed"]])
    print_table(["state", "files", "first scan s", "later scan s", "scan log lines",
                 f"daemon lines in {args.seconds:g} s", "library.scanned", "claimed"], rows)
    return 0


def _parser() -> Any:
    result = parser(__doc__, keep=None)
    result.add_argument("--files", type=int, default=10_000, help="media files in the library")
    result.add_argument("--runs", type=int, default=5, help="later scans timed (the median is shown)")
    result.add_argument("--seconds", type=float, default=10.0, help="how long the daemon runs")
    return result


def _layout(library: Path, files: int) -> list[Path]:
    """Show NNN/Season S/Show NNN.SxxEyy.mkv, each file's bytes its own (distinct content ids)."""
    paths = []
    for i in range(files):
        show, rest = divmod(i, SEASONS_PER_SHOW * EPISODES_PER_SEASON)
        season, episode = divmod(rest, EPISODES_PER_SEASON)
        folder = library / f"Show {show:03d}" / f"Season {season + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"Show {show:03d}.S{season + 1:02d}E{episode + 1:02d}.mkv"
        seed = hashlib.sha256(str(i).encode()).digest()
        path.write_bytes(seed * (FILE_BYTES // len(seed)))
        paths.append(path)
    return paths


def _add_library(config: Path, library: Path) -> None:
    import yaml

    data = yaml.safe_load(config.read_text())
    data["libraries"] = [{"path": str(library), "languages": ["en"]}]
    config.write_text(yaml.safe_dump(data))


def _ledger_all_done(state: Path, media: list[Path]) -> None:
    """The ledger a finished run leaves: one `done` record per file (written in one go here;
    the daemon appends them one by one, each fsynced)."""
    lines = []
    for path in media:
        key = file_key(path)
        assert key is not None  # noqa: S101 - just written
        lines.append(json.dumps({"id": content_id(path, key), "outcome": "done", "path": str(path),
                                 "size": key[0], "mtime": key[1], "at": "", "worker": "bench"}))
    folder = library_state(state)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LEDGER_FILE).write_text("\n".join(lines) + "\n")


def _measure_scans(config_path: Path, runs: int) -> dict[str, Any]:
    """The consumer's scan, timed in this process, its log lines counted."""
    out = io.StringIO()
    logs.configure("json", "info", stream=out)
    config = load_config(config_path)
    spool = WorkFolder(config)
    spool.prepare()
    libraries = LibrarySource(config, spool, Stats())
    libraries.prepare()
    started = time.perf_counter()
    libraries.scan_if_due(now=0.0)
    first = time.perf_counter() - started
    later = []
    for run in range(runs):
        started = time.perf_counter()
        libraries.scan_if_due(now=(run + 1) * 1e6)
        later.append(time.perf_counter() - started)
    spool.retire()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    waiting = sum(e.get("waiting", 0) for e in lines if e.get("event") == "library.scanned")
    if waiting:
        raise SystemExit(f"the scan found {waiting} files to do in a library that is all done")
    return {"first_s": first, "later_s": statistics.median(later), "log_lines": len(lines)}


def _daemon_run(config: Path, seconds: float) -> dict[str, Any]:
    daemon = DaemonProcess(config, engine="fake", env={"TRANSCRIBED_FAKE": "{}"})
    daemon.start()
    try:
        time.sleep(seconds)  # a bench, not a test: the daemon is watched for a fixed time
        events = daemon.events()
        daemon.stop(timeout=60)
    finally:
        daemon.kill()
    after = [e for e in events[next(i for i, e in enumerate(events) if e["event"] == "daemon.started") + 1:]]
    return {"lines_after_start": len(after),
            "library_scanned": sum(1 for e in after if e["event"] == "library.scanned"),
            "claimed": sum(1 for e in after if e["event"] == "job.claimed")}


if __name__ == "__main__":
    raise SystemExit(main())
