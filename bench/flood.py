"""Flood: 10 000 small files dropped at once into an inbox 20 folders deep (issue 13).

The daemon runs with the fake engine (its own code everywhere but the model: real decoding, real
claims, moves and fsyncs). Three measures:

1. The inbox look the consumer makes (scan + settle rules), in this process on the same tree:
   the first look (every folder read), and a look with nothing changed (one stat per folder).
2. An idle daemon with 10 000 waiting files: every file is written and kept open (a flood being
   copied in, so none is complete yet); once the daemon has seen them all, its CPU time over
   `--idle-seconds` (from /proc/PID/stat), as a share of one core.
3. The flood processed: all writers closed at once; seconds until the last is in done/, files
   per second, and the checks: none lost (all in done/, none in failed/ or left in the inbox),
   each claimed once, in arrival order (by ctime, the order they came in), and how many
   neighbours were claimed against their creation order (files of one clock tick).

    .venv/bin/python bench/flood.py                     # 10 000 files, 20 folders deep
    .venv/bin/python bench/flood.py --files 500 --strict
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import IO

import numpy as np
import structlog
from common import DaemonProcess, Folders, machine, parser, print_table, scratch_dir

from tests.support.media import write_wav
from transcribed.intake.inbox import Inbox
from transcribed.intake.arrivals import Arrivals

#: Each file: 0.1 s of quiet noise (3.2 kB of 16-bit samples).
SECONDS_PER_FILE = 0.1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.files + 1024, args.files + 1024))
    print(f"machine: {machine()}")
    with scratch_dir(args.keep) as scratch:
        folders = Folders(Path(scratch) / "flood")
        # settle_seconds long enough that no file open for writing counts as complete by
        # settling during the idle phase (under load, inotify's write events can lag the scan).
        folders.write_config(watch={"settle_seconds": 300.0, "rescan_seconds": 60.0},
                             jobs={"retry_delay_seconds": 0.2})
        paths = _layout(folders.inbox, args.files, args.depth)
        payload = _payload(Path(scratch) / "payload.wav")
        look = _measure_look(folders.inbox, paths, payload)
        daemon = DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": "{}"})
        daemon.start()
        try:
            writers = [open(path, "wb") for path in paths]  # noqa: SIM115 - closed all at once below
            idle = _idle_with_waiting_files(daemon, writers, payload, args.idle_seconds)
            flood = _processed(daemon, folders, paths, writers, args.timeout)
            daemon.stop(timeout=60)
        finally:
            daemon.kill()
            (folders.root / "daemon.log").write_text("".join(daemon.lines))  # kept with --keep
    _report(args, look, idle, flood)
    ok = flood["lost"] == 0 and flood["in_order"] and flood["claimed_twice"] == 0
    return 1 if args.strict and not ok else 0


def _layout(inbox: Path, files: int, depth: int) -> list[Path]:
    """File i in the folder i % (depth + 1) levels deep: the tree is `depth` folders deep."""
    folders = [inbox]
    for level in range(depth):
        folders.append(folders[-1] / f"level{level + 1:02d}")
    folders[-1].mkdir(parents=True, exist_ok=True)
    return [folders[i % len(folders)] / f"f{i:06d}.wav" for i in range(files)]


def _payload(path: Path) -> bytes:
    noise = np.random.default_rng(13).normal(0, 0.05, int(16_000 * SECONDS_PER_FILE))
    return write_wav(path, noise.astype(np.float32)).read_bytes()


def _measure_look(inbox: Path, paths: list[Path], payload: bytes) -> dict[str, float]:
    """The consumer's look at the inbox (scan, then the settle rules), on the tree filled here
    (the files removed again before the daemon starts)."""
    for path in paths:
        path.write_bytes(payload)
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # no 10 000 detected lines
    scanner, arrivals = Inbox(inbox, ["wav"]), Arrivals(2.0)
    timings = {}
    for name in ("first look ms", "look, nothing changed ms"):
        started, cpu = time.perf_counter(), time.process_time()
        arrivals.ready(scanner.scan())
        timings[name] = (time.perf_counter() - started) * 1000
        timings[name.replace(" ms", " cpu ms")] = (time.process_time() - cpu) * 1000
    for path in paths:
        path.unlink()
    return timings


def _idle_with_waiting_files(daemon: DaemonProcess, writers: list[IO[bytes]], payload: bytes,
                             seconds: float) -> dict[str, float]:
    """Write every file and keep it open; once the daemon saw them all, its CPU over `seconds`
    (well within the 60 s after which a writer that sent no close counts as done)."""
    assert daemon.process is not None
    for writer in writers:
        writer.write(payload)
        writer.flush()
    deadline = time.monotonic() + 300
    while _count(daemon, "file.detected") < len(writers) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the detection burst's tail
    before, started = _cpu_seconds(daemon.process.pid), time.monotonic()
    time.sleep(seconds)
    used, wall = _cpu_seconds(daemon.process.pid) - before, time.monotonic() - started
    return {"detected": _count(daemon, "file.detected"), "cpu_s": used, "wall_s": wall,
            "share_of_one_core_pct": 100 * used / wall}


def _processed(daemon: DaemonProcess, folders: Folders, paths: list[Path],
               writers: list[IO[bytes]], timeout: float) -> dict[str, object]:
    """Close every writer at once; wait for the last file in done/; check what happened."""
    came_in = {str(p.relative_to(folders.inbox)): p.stat().st_ctime_ns for p in paths}
    for writer in writers:
        writer.close()
    closed = time.monotonic()
    deadline = closed + timeout
    while _count(daemon, "job.moved") < len(paths) and time.monotonic() < deadline:
        time.sleep(0.5)
    seconds = time.monotonic() - closed
    relative = [str(p.relative_to(folders.inbox)) for p in paths]
    done = set(folders.files(folders.done))
    events = daemon.events()
    claims = [e["file"] for e in events if e.get("event") == "job.claimed"]
    detected = [str(Path(e["path"]).relative_to(folders.inbox)) for e in events
                if e.get("event") == "file.detected"]
    names = [c.rpartition("/")[2] for c in claims]
    inbox, work = set(folders.files(folders.inbox)), _in_work(folders)
    return {"seconds": seconds, "files_per_s": len(done) / seconds, "done": len(done),
            "lost": sum(1 for r in relative if r not in done | inbox | work),
            "failed": len(folders.files(folders.failed)),
            "left_in_inbox": len(inbox), "in_work_folder": len(work),
            "claimed_twice": len(claims) - len(set(claims)),
            # Arrival order: each file's ctime, when it came into the inbox (files of one clock
            # tick may come in any order); the daemon's first sight of a file decides first.
            "in_order": _in_arrival_order(claims, detected, came_in),
            # Neighbours claimed against their names' (creation) order: only within a clock tick.
            "claims_out_of_creation_order": sum(a > b for a, b in zip(names, names[1:]))}


def _in_arrival_order(claims: list[str], detected: list[str], came_in: dict[str, int]) -> bool:
    """Claims follow the files' arrival: by ctime among those seen by one look (a flood), and
    nothing claimed before a file the daemon had seen earlier in another look."""
    times = [came_in.get(c, 0) for c in claims]
    return times == sorted(times) or claims == list(dict.fromkeys(detected))


def _in_work(folders: Folders) -> set[str]:
    """The files claimed and not finished (at a timeout), by their path in the inbox (each job
    folder's record names it)."""
    records = (folders.state / "work").glob("*/*/job.json")
    return {json.loads(record.read_text())["relpath"] for record in records}


def _count(daemon: DaemonProcess, event: str) -> int:
    """How many lines name `event` (a substring test: parsing 10 000 lines 5 times a second
    would take the CPU the daemon is measured on)."""
    needle = f'"event": "{event}"'
    return sum(1 for line in list(daemon.lines) if needle in line)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(args: object, look: dict[str, float], idle: dict[str, float],
            flood: dict[str, object]) -> None:
    print(f"\n{getattr(args, 'files')} files of {SECONDS_PER_FILE} s, inbox "
          f"{getattr(args, 'depth')} folders deep, fake engine\n")
    print_table(["measure", "value"], [[k, round(v, 2)] for k, v in look.items()]
                + [[f"idle with waiting files: {k}", round(v, 2)] for k, v in idle.items()]
                + [[f"flood: {k}", round(v, 2) if isinstance(v, float) else v]
                   for k, v in flood.items()])


def _parser():  # type: ignore[no-untyped-def]
    result = parser(__doc__, files=10_000, keep=None, strict=False)
    result.add_argument("--depth", type=int, default=20, help="folders deep")
    result.add_argument("--idle-seconds", type=float, default=30.0,
                        help="how long the idle daemon's CPU is measured")
    result.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds the flood may take before the checks")
    return result


if __name__ == "__main__":
    sys.exit(main())
