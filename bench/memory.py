"""Memory: the daemon's RSS (and GPU memory where there is one) over many consecutive jobs.

Short corpus clips (1-3 s) are fed to one daemon, a few at a time, under new names, for `--jobs`
jobs; after each job's results land the daemon's VmRSS is read from /proc. Growth compares the
median of the last 20 samples with the median of the 20 after the warm-up (the first 10 % of jobs:
allocator pools, lazy imports and caches fill there). Other watch-folder services have been
reported growing to hundreds of GB over days; this one must stay flat (< 5 % after warm-up).

    .venv/bin/python bench/memory.py                          # 300 jobs, real engine (~10 min)
    .venv/bin/python bench/memory.py --jobs 30 --engine fake  # the daemon's own code only
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from common import (bench_sections, corpus_items, gpu_mib, machine, median, parser, print_table,
                    proc_status_mib, require_corpus, running_daemon, scratch_dir)

#: Issue 6: RSS growth after warm-up below 5 %.
TARGET_GROWTH_PERCENT = 5.0
#: Files waiting in the inbox at any time.
QUEUED = 3
WINDOW = 20


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    pool = [item for item in corpus_items("en", max_seconds=3.0) if item.seconds >= 1.0]
    warmup = args.warmup if args.warmup is not None else max(1, args.jobs // 10)
    print(f"machine: {machine()}")
    print(f"engine {args.engine}, overlap {'on' if args.overlap else 'off'}; {args.jobs} jobs over "
          f"{len(pool)} clips of 1-3 s; warm-up {warmup} jobs")
    rss: list[float] = []
    gpu: list[float] = []
    failed = 0
    started = time.monotonic()
    with scratch_dir(args.keep) as scratch:
        # The config's own alignment setting, as a user runs it (bench_sections turns it off).
        sections = bench_sections(None, {"overlap": {"enabled": args.overlap}, "align": {"enabled": "auto"}})
        with running_daemon(Path(scratch) / "daemon", sections, engine=args.engine) as (folders, daemon, events):
            pid = daemon.process.pid
            loaded = proc_status_mib(pid)
            sent = 0
            waiting: set[str] = set()
            while len(rss) < args.jobs:
                while sent < args.jobs and len(waiting) < QUEUED:
                    item = pool[sent % len(pool)]
                    name = f"job{sent:05d}-{item.path.name}"
                    shutil.copy(item.path, folders.inbox / name)
                    waiting.add(name)
                    sent += 1
                event = events.wait(lambda e: e.get("event") == "job.moved" and e.get("file") in waiting, 600)
                waiting.discard(event["file"])
                failed += "failed" in event
                rss.append(proc_status_mib(pid))
                if (used := gpu_mib(pid)) is not None:
                    gpu.append(used)
                if len(rss) % max(1, args.jobs // 10) == 0:
                    print(f"  {len(rss)} jobs, RSS {rss[-1]:.0f} MiB, {time.monotonic() - started:.0f} s",
                          flush=True)
            peak = proc_status_mib(pid, "VmHWM")
    return _report(rss, gpu, loaded, peak, warmup, failed, args.strict)


def growth(samples: list[float], warmup: int) -> tuple[float, float, float, int]:
    """(baseline, end, growth %, window): medians of the first `window` samples after warm-up
    and of the last `window` (WINDOW, or half of what follows the warm-up when that is less)."""
    after = samples[warmup:] or samples
    window = min(WINDOW, max(1, len(after) // 2))
    baseline, end = median(after[:window]), median(after[-window:])
    return baseline, end, 100.0 * (end - baseline) / baseline, window


def _slope_per_100(samples: list[float]) -> float:
    """Least-squares slope, MiB per 100 jobs."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples))
    var = sum((x - mean_x) ** 2 for x in range(n))
    return 100 * cov / var


def _report(rss: list[float], gpu: list[float], loaded: float, peak: float, warmup: int,
            failed: int, strict: bool) -> int:
    n = len(rss)
    marks = sorted({1, warmup, n // 4, n // 2, 3 * n // 4, n} - {0})
    print()
    print_table(["after job", "RSS MiB"] + (["GPU MiB"] if gpu else []),
                [[m, round(rss[m - 1])] + ([round(gpu[m - 1])] if gpu else []) for m in marks])
    baseline, end, percent, window = growth(rss, warmup)
    met = percent < TARGET_GROWTH_PERCENT
    rows = [["RSS", round(loaded), round(baseline), round(end), round(percent, 2),
             round(_slope_per_100(rss[warmup:]), 2), round(peak), "yes" if met else "NO"]]
    if gpu:
        g_base, g_end, g_percent, _ = growth(gpu, warmup)
        rows.append(["GPU", "-", round(g_base), round(g_end), round(g_percent, 2),
                     round(_slope_per_100(gpu[warmup:]), 2), "-", "yes" if g_percent < TARGET_GROWTH_PERCENT else "NO"])
        met = met and g_percent < TARGET_GROWTH_PERCENT
    print()
    print_table(["memory", "at start MiB", "after warm-up MiB", "at end MiB", "growth %",
                 "slope MiB/100 jobs", "peak MiB", f"< {TARGET_GROWTH_PERCENT} %"], rows)
    print(f"{n} jobs ({failed} failed); warm-up {warmup} jobs; baseline and end are medians of {window} samples")
    return 1 if strict and (not met or failed) else 0


def _parser() -> argparse.ArgumentParser:
    result = parser(__doc__, engine="whisperx", keep=None, strict=False)
    result.add_argument("--jobs", type=int, default=300, help="consecutive jobs")
    result.add_argument("--warmup", type=int, help="jobs before the baseline (default: 10 %% of --jobs)")
    result.add_argument("--overlap", action="store_true",
                        help="with overlap.enabled: true (the next file decoded on a second thread)")
    return result


if __name__ == "__main__":
    sys.exit(main())
