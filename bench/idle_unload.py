"""Idle unload (`model.idle_unload_seconds`): what the daemon's RSS is after the models are
released, and how long the next file waits for them to load again.

A real daemon (tiny.en on the CPU unless --model says otherwise) transcribes a corpus clip, idles
until it unloads (model.unloaded carries its RSS before and after), then gets the next clip and
reloads (model.loaded carries the seconds, the job's timings `model_load`). `--cycles` rounds;
the figures are the daemon's own events, read from its stdout.

    .venv/bin/python bench/idle_unload.py               # 3 cycles, tiny.en, ~1 min on 2 cores
    .venv/bin/python bench/idle_unload.py --engine fake # the daemon's own code only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import (bench_sections, commit, corpus_items, machine, median, merged, print_table,
                    require_corpus, running_daemon, scratch_dir)

MIB = 1024**2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    clips = [item for item in corpus_items("en", max_seconds=12.0) if item.seconds >= 5.0][:2]
    print(f"machine: {machine()}")
    print(f"commit {commit()}, {time.strftime('%Y-%m-%d')}; model {args.model}, engine {args.engine}; "
          f"idle_unload_seconds {args.idle}; clips {', '.join(c.path.name for c in clips)}")
    sections = merged(bench_sections(args.model), {"model": {"idle_unload_seconds": args.idle}})
    rows = []
    with scratch_dir(args.keep) as scratch, running_daemon(
            Path(scratch) / "daemon", sections, engine=args.engine,
            kept=("model.loaded", "model.unloaded", "job.moved", "job.done")) as (folders, daemon, events):
        first_load = events.wait(lambda e: e["event"] == "model.loaded", 300)
        for cycle in range(args.cycles):
            clip = clips[cycle % len(clips)]
            name = f"cycle{cycle}-{clip.path.name}"
            shutil.copy(clip.path, folders.inbox / name)
            reload = events.wait(lambda e: e["event"] == "model.loaded", 300) if cycle else first_load
            done = events.wait(lambda e: e["event"] == "job.done" and e["file"] == name, 300)
            events.wait(lambda e: e["event"] == "job.moved" and e["file"] == name, 300)
            unloaded = events.wait(lambda e: e["event"] == "model.unloaded", 300)
            timings = _timings(folders.outbox, name)
            rows.append([cycle, f"{reload['seconds']:.2f}", timings.get("model_load", "-"),
                         f"{done['wall_s']:.2f}", f"{unloaded['rss_before_bytes'] / MIB:.0f}",
                         f"{unloaded['rss_after_bytes'] / MIB:.0f}",
                         f"{unloaded['rss_freed_bytes'] / MIB:.0f}"])
    print_table(["cycle", "load s", "job model_load s", "job wall s", "RSS before MiB",
                 "RSS after unload MiB", "freed MiB"], rows)
    reloads = [float(r[1]) for r in rows[1:]]
    if reloads:
        print(f"reload: median {median(reloads):.2f} s over {len(reloads)}; first load at start "
              f"{float(rows[0][1]):.2f} s")
    print(f"RSS after unloading: median {median([float(r[5]) for r in rows]):.0f} MiB, freed "
          f"median {median([float(r[6]) for r in rows]):.0f} MiB")
    return 0


def _timings(outbox: Path, name: str) -> dict[str, float]:
    stem = name.rsplit(".", 1)[0]
    record = json.loads((outbox / f"{stem}.json").read_text())
    timings: dict[str, float] = record["transcribed"]["timings"]
    return timings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--engine", choices=["whisperx", "fake"], default="whisperx")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--idle", type=float, default=2.0, help="model.idle_unload_seconds")
    parser.add_argument("--keep", type=Path, help="keep the daemon's folders here")
    return parser


if __name__ == "__main__":
    sys.exit(main())
