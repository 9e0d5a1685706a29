"""Latency: from a file's close in the inbox to its job starting, on an idle daemon.

Two daemons run side by side, one watching its inbox with inotify and one polling, both with the
config's default watch timings (`watch.settle_seconds`, `watch.poll_interval_seconds`). Files go
to them in turn, each only once both are idle, after a random pause (so that arrivals fall at
random points of the polling interval). The file is written and closed here; the clock stops at
the daemon's own `job.started` event (its timestamp; same host clock). A polling observer sees
no close, so a polled file must also sit unchanged for `settle_seconds` first.

    .venv/bin/python bench/latency.py                  # real engine, 10 files per mode
    .venv/bin/python bench/latency.py --engine fake    # the same watcher path, no model
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from common import (bench_sections, corpus_items, event_time, machine, median, parser, print_table,
                    require_corpus, running_daemon, scratch_dir)

from transcribed.config import Config

#: Issue 6: a job starts within 0.5 s of its file's close, with inotify.
TARGET_SECONDS = 0.5
MODES = {"inotify": False, "polling": True}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    sample = min(corpus_items("en"), key=lambda item: item.seconds)
    payload = sample.path.read_bytes()
    watch = Config().watch
    rng = random.Random(args.seed)
    print(f"machine: {machine()}")
    print(f"engine {args.engine}; file {sample.path.name} ({sample.seconds:.1f} s); defaults: "
          f"settle_seconds {watch.settle_seconds}, poll_interval_seconds {watch.poll_interval_seconds}")
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    with scratch_dir(args.keep) as scratch, ExitStack() as stack:
        # The config's own alignment setting, as a user runs it (bench_sections turns it off).
        daemons = {mode: stack.enter_context(running_daemon(
            Path(scratch) / mode, bench_sections(None, {"watch": {"polling": polling},
                                                        "align": {"enabled": "auto"}}),
            engine=args.engine, kept=("job.claimed", "job.started", "job.moved")))
            for mode, polling in MODES.items()}
        for trial in range(args.trials):
            order = list(MODES) if trial % 2 == 0 else list(reversed(MODES))
            for mode in order:
                folders, _daemon, events = daemons[mode]
                time.sleep(rng.uniform(0.2, 1.2))
                name = f"t{trial:03d}-{sample.path.name}"
                closed = _write(folders.inbox / name, payload)
                claimed = events.wait(lambda e: e.get("event") == "job.claimed" and e.get("file") == name, 60)
                started = events.wait(lambda e: e.get("event") == "job.started" and e.get("file") == name, 60)
                events.wait(lambda e: e.get("event") == "job.moved" and e.get("file") == name, 300)
                results[mode].append((event_time(claimed) - closed, event_time(started) - closed))
            print(f"  trial {trial + 1}/{args.trials}: " + ", ".join(
                f"{m} {results[m][-1][1]:.3f} s" for m in MODES), flush=True)
    return _report(results, watch.settle_seconds, args.strict)


def _write(path: Path, payload: bytes) -> float:
    """Write and close a file as a copy tool does; the wall-clock time of the close."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, payload)
    finally:
        os.close(descriptor)
    return time.time()


def _report(results: dict[str, list[tuple[float, float]]], settle: float, strict: bool) -> int:
    rows = []
    for mode, pairs in results.items():
        to_claim = sorted(p[0] for p in pairs)
        to_start = sorted(p[1] for p in pairs)
        target = f"<= {TARGET_SECONDS}" if mode == "inotify" else f"(settle {settle} s + polling)"
        met = ("yes" if median(to_start) <= TARGET_SECONDS else "NO") if mode == "inotify" else "-"
        rows.append([mode, len(pairs), round(median(to_claim), 3), round(median(to_start), 3),
                     round(min(to_start), 3), round(to_start[-1], 3), target, met])
    print()
    print_table(["watcher", "files", "median close->claimed s", "median close->started s", "min s",
                 "max s", "target", "met"], rows)
    inotify = sorted(p[1] for p in results["inotify"])
    return 1 if strict and median(inotify) > TARGET_SECONDS else 0


def _parser() -> argparse.ArgumentParser:
    result = parser(__doc__, engine="whisperx", keep=None, strict=False)
    result.add_argument("--trials", type=int, default=10, help="files per watcher")
    result.add_argument("--seed", type=int, default=6, help="seed of the random pauses")
    return result


if __name__ == "__main__":
    sys.exit(main())
