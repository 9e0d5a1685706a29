"""A model per route: how long switching models takes, and what a mixed queue's throughput is with
the grouping (files that use the loaded model first), without it (arrival order), and with a
budget that holds both models (nothing to switch).

A real daemon runs the bundled tiny.en for the inbox's top level and another model for `other/`
(by default the multilingual base model the tests build from installed packages; `--other` names
any model.name), with `models.memory_budget` holding one of them (`--budget`). The queue is
`--pairs` pairs of short English corpus clips, one at the top and one in `other/`, alternating
(the worst order for switching), all waiting in the inbox when the daemon starts. Each mode runs the same queue in a fresh daemon; the figures are
the daemon's own events (model.switched, job.started, job.done).

    .venv/bin/python bench/model_switch.py                # 3 modes x 12 files, ~3 min on 2 cores
    .venv/bin/python bench/model_switch.py --pairs 20 --other large-v3-turbo --budget "2 GiB"
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import (REPO, bench_sections, commit, corpus_items, event_time, machine, median, merged, parser,
                    print_table, require_corpus, running_daemon, scratch_dir, spread)

#: Each mode: its name, models.max_wait_seconds, and whether the budget holds both models.
MODES = (("grouped", 600.0, False), ("arrival order", 0.0, False), ("both resident", 0.0, True))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    other = args.other or str(_multilingual_base())
    clips = spread([c for c in corpus_items("en", max_seconds=args.max_seconds) if c.seconds >= 2.0],
                   2 * args.pairs)
    audio = sum(c.seconds for c in clips)
    print(f"machine: {machine()}")
    print(f"commit {commit()}, {time.strftime('%Y-%m-%d')}; tiny.en and {other}; budget {args.budget} for "
          f"one; {len(clips)} clips ({audio:.0f} s of audio), alternating")
    rows = []
    for name, max_wait, both in MODES:
        figures = _run_mode(args, other, clips, max_wait, "16 GiB" if both else args.budget)
        rows.append([name, figures["switches"], figures["switch_s"], round(figures["wall_s"], 1),
                     round(audio / figures["wall_s"], 2)])
    print_table(["mode", "model switches", "switch s (median)", "queue wall s", "x realtime"], rows)
    return 0


def _run_mode(args: Any, other: str, clips: list[Any], max_wait: float, budget: str) -> dict[str, Any]:
    sections = merged(bench_sections(args.model), {
        "models": {"memory_budget": budget, "max_wait_seconds": max_wait},
        "routes": {"other": {"model": {"name": other}, "language": "en"}},
        "packing": {"enabled": False}, "batching": {"enabled": False}})
    with scratch_dir(args.keep) as scratch:
        inbox = Path(scratch) / "daemon" / "inbox"
        (inbox / "other").mkdir(parents=True)
        for i, clip in enumerate(clips):  # the whole queue waits when the daemon starts
            shutil.copy(clip.path, inbox / ("other/" if i % 2 else "") / f"{i:03d}-{clip.path.name}")
        with running_daemon(Path(scratch) / "daemon", sections,
                            kept=("job.started", "job.done", "model.switched")) as (_folders, _daemon, events):
            return _figures(events, clips)


def _figures(events: Any, clips: list[Any]) -> dict[str, Any]:
    """From the first job's start to the last one's end, and each model switch on the way."""
    started = events.wait(lambda e: e["event"] == "job.started", 600)
    done = [events.wait(lambda e: e["event"] == "job.done", 600) for _ in clips]
    switches: list[dict[str, Any]] = []
    while True:
        try:
            switches.append(events.wait(lambda e: e["event"] == "model.switched", 0.01))
        except TimeoutError:
            break
    seconds = [s["seconds"] for s in switches]
    return {"switches": len(switches), "switch_s": round(median(seconds), 2) if seconds else "-",
            "wall_s": max(event_time(e) for e in done) - event_time(started)}


def _multilingual_base() -> Path:
    sys.path.insert(0, str(REPO))
    from tests.support.models import multilingual_base

    return multilingual_base()


def _parser() -> Any:
    result = parser(__doc__, model="tiny.en", max_seconds=10.0, keep=None)
    result.add_argument("--pairs", type=int, default=6, help="pairs of clips (one per model)")
    result.add_argument("--other", help="the other model (default: the multilingual base model)")
    result.add_argument("--budget", default="150 MB", help="models.memory_budget: room for one of the two")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
