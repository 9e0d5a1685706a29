"""Throughput: the daemon end to end, against a plain whisperx loop and the whisperx CLI.

The same recordings, model and settings, three ways, in one run:
  (a) the daemon: files copied into its inbox, timed until the last result has landed;
  (b) a plain loop calling whisperx on each file with a loaded model (a serial daemon's limit);
  (c) the `whisperx` command line run once per file, as a cron script would.
The files are cut into chunks. Each chunk goes through a, b, c, b, a (b, a, c, a, b on the
next chunk): (a) and (b) are cheap, so each runs twice around (c), which cancels drift in the
host's load between them. The daemon and the loop are started, and warmed up with one file,
before the clock runs; the CLI pays its start-up on every file, which is the point.

Where the daemon's time goes is read from its own events and outputs (job.claimed, job.moved,
the `timings` in each outbox .json), beside the loop's decode and transcribe times: a ratio a/b
below 1 is either the daemon's own work (claim, write, move, fsync) or the host's noise, and
the breakdown tells which.

    .venv/bin/python bench/throughput.py                 # 20 short corpus clips
    .venv/bin/python bench/throughput.py --folder DIR    # your own recordings
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (Events, Item, PlainLoop, Settings, cli_environment, daemon_settings, describe,
                    event_time, machine, median, print_table, proc_status_mib, run_cli,
                    running_daemon, scratch_dir, warmup_and_chunks)

#: Targets from issue 6 (2-core CPU, tiny.en int8, 20 short files).
TARGET_A_OVER_B = 0.97
TARGET_A_OVER_C = 5.0
WAYS = ("a", "b", "c")
NAMES = {"a": "(a) daemon, inbox to outbox", "b": "(b) plain whisperx loop, model loaded",
         "c": "(c) whisperx CLI, once per file"}


@dataclass
class Tally:
    """Wall seconds per pass (chunk index, seconds), and where (a)'s and (b)'s time went."""

    passes: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: {w: [] for w in WAYS})
    parts: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "a": {"claim": 0.0, "decode": 0.0, "transcribe": 0.0, "pipeline": 0.0, "complete": 0.0},
        "b": {"decode": 0.0, "transcribe": 0.0}})
    jobs: int = 0
    #: (a)'s stages, job by job (seconds), for medians beside the means.
    per_job: dict[str, list[float]] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warmup, chunks = warmup_and_chunks(args.folder, args.files, args.max_seconds, args.chunks)
    timed = [item for chunk in chunks for item in chunk]
    settings = daemon_settings(args.model, args.beam_size)
    print(f"machine: {machine()}")
    print(f"settings: {describe(settings)}")
    print(f"files: {len(timed)} timed, {sum(i.seconds for i in timed):.1f} s of audio, in "
          f"{len(chunks)} chunks, each run a b c b a or b a c a b; warm-up file {warmup.path.name}")
    tally = Tally()
    peaks: dict[str, float] = {}
    with scratch_dir(args.keep) as scratch_name:
        scratch = Path(scratch_name)
        cli_env, ffmpeg = cli_environment(scratch)
        print(f"(c) decodes with: {ffmpeg}", flush=True)
        loop = PlainLoop(settings, scratch)
        cli_peaks: list[float] = []
        with running_daemon(scratch / "daemon", settings=settings, transcribe_only=True,
                            kept=("job.claimed", "job.started", "job.done", "job.moved"),
                            ) as (folders, daemon, events):
            _through_daemon([warmup], "warmup", folders, events, Tally())
            loop.transcribe(warmup.path)
            for index, chunk in enumerate(chunks):
                order = "abcba" if index % 2 == 0 else "bacab"
                for number, way in enumerate(order):
                    started = time.perf_counter()
                    if way == "a":
                        _through_daemon(chunk, f"c{index}p{number}", folders, events, tally)
                    elif way == "b":
                        for item in chunk:
                            answer = loop.transcribe(item.path)
                            tally.parts["b"]["decode"] += answer["decode_s"]
                            tally.parts["b"]["transcribe"] += answer["wall_s"] - answer["decode_s"]
                    else:
                        for item in chunk:
                            cli_peaks.append(_cli(item, settings, scratch, cli_env))
                    tally.passes[way].append((index, time.perf_counter() - started))
                print(f"  chunk {index + 1}/{len(chunks)} ({len(chunk)} files, {order}): " + ", ".join(
                    f"{w} {' '.join(f'{s:.1f}' for i, s in tally.passes[w] if i == index)} s" for w in WAYS),
                    flush=True)
            peaks["a"] = proc_status_mib(daemon.process.pid, "VmHWM")
        peaks["b"] = loop.peak_rss_mib()
        peaks["c"] = max(cli_peaks)
        loop.close()
        standin = _standin_seconds(timed, cli_env) if "stand-in" in ffmpeg else 0.0
    return _report(chunks, tally, peaks, standin, args.strict)


def _through_daemon(chunk: list[Item], tag: str, folders, events: Events, tally: Tally) -> None:
    """Copy the chunk into the inbox and wait until every file's results have landed; add up
    the daemon's own account of each job (its events' times, its decode and transcribe timings)."""
    names = {f"{tag}-{item.path.name}": item for item in chunk}
    for name, item in names.items():
        shutil.copy(item.path, folders.inbox / name)
    seen: dict[str, dict[str, float]] = {name: {} for name in names}
    moved = 0
    while moved < len(names):
        event = events.wait(lambda e: e.get("file") in names, timeout=600)
        name = event["file"]
        seen[name][event["event"]] = event_time(event)
        if event["event"] != "job.moved":
            continue
        if "failed" in event:
            raise RuntimeError(f"the daemon failed {name}: see its log")
        moved += 1
        metadata = json.loads((folders.outbox / f"{Path(name).stem}.json").read_text())
        timings = metadata.get("transcribed", {}).get("timings", {})
        at = seen[name]
        job = {"claim": at["job.started"] - at["job.claimed"], "decode": timings.get("decode", 0.0),
               "transcribe": timings.get("transcribe", 0.0), "complete": at["job.moved"] - at["job.done"]}
        job["pipeline"] = at["job.done"] - at["job.started"] - job["decode"] - job["transcribe"]
        for key, seconds in job.items():
            tally.parts["a"][key] += seconds
            tally.per_job.setdefault(key, []).append(seconds)
        tally.jobs += 1


def _cli(item: Item, settings: Settings, scratch: Path, env: dict[str, str]) -> float:
    _, peak = run_cli(item.path, settings, scratch / "cli-out", env, scratch / "cli.log")
    return peak


def _standin_seconds(items: list[Item], env: dict[str, str]) -> float:
    """What the ffmpeg stand-in cost (c) in all: each file decoded once more, timed."""
    total = 0.0
    for item in items:
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-nostdin", "-threads", "0", "-i", str(item.path), "-f", "s16le",
                        "-ac", "1", "-acodec", "pcm_s16le", "-ar", "16000", "-"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        total += time.perf_counter() - started
    return total


def _report(chunks: list[list[Item]], tally: Tally, peaks: dict[str, float], standin: float,
            strict: bool) -> int:
    audio = [sum(i.seconds for i in chunk) for chunk in chunks]
    wall = {w: sum(s for _, s in tally.passes[w]) for w in WAYS}
    speed = {w: sum(audio[i] for i, _ in tally.passes[w]) / wall[w] for w in WAYS}
    print()
    print_table(["way", "passes", "audio s", "wall s", "audio s / wall s", "median of passes",
                 "peak RSS MiB"],
                [[NAMES[w], len(tally.passes[w]), round(sum(audio[i] for i, _ in tally.passes[w]), 1),
                  round(wall[w], 1), round(speed[w], 2),
                  round(median([audio[i] / s for i, s in tally.passes[w]]), 2), round(peaks[w])]
                 for w in WAYS])
    a_b, a_c = speed["a"] / speed["b"], speed["a"] / speed["c"]
    per_chunk = {w: [_chunk_speed(tally, w, i, audio[i]) for i in range(len(chunks))] for w in WAYS}
    ab = [a / b for a, b in zip(per_chunk["a"], per_chunk["b"])]
    ac = [a / c for a, c in zip(per_chunk["a"], per_chunk["c"])]
    print()
    print_table(["ratio", "whole run", "median of chunks", "chunks", "target", "met"], [
        ["a/b", round(a_b, 3), round(median(ab), 3), " ".join(f"{r:.3f}" for r in ab),
         f">= {TARGET_A_OVER_B}", _yes(a_b >= TARGET_A_OVER_B)],
        ["a/c", round(a_c, 2), round(median(ac), 2), " ".join(f"{r:.2f}" for r in ac),
         f">= {TARGET_A_OVER_C}", _yes(a_c >= TARGET_A_OVER_C)]])
    print("(peak RSS: the daemon's and the loop's whole process; the CLI's largest single run)")
    _breakdown(tally, wall)
    if standin:
        free = sum(audio) / (wall["c"] - standin)
        print(f"(c) spent about {standin:.1f} s in the PyAV ffmpeg stand-in; with a decoder that cost "
              f"nothing, c would be {free:.2f} audio s / wall s and a/c {speed['a'] / free:.2f}")
    met = a_b >= TARGET_A_OVER_B and a_c >= TARGET_A_OVER_C
    return 1 if strict and not met else 0


def _chunk_speed(tally: Tally, way: str, chunk: int, audio: float) -> float:
    seconds = [s for i, s in tally.passes[way] if i == chunk]
    return audio * len(seconds) / sum(seconds)


def _breakdown(tally: Tally, wall: dict[str, float]) -> None:
    """Where (a)'s and (b)'s wall time went, per job."""
    a, b = tally.parts["a"], tally.parts["b"]
    n = max(1, tally.jobs)
    waiting = wall["a"] - sum(a.values())

    def ms(seconds: float) -> int:
        return round(1000 * seconds / n)

    def med(key: str) -> int:
        return round(1000 * median(tally.per_job.get(key, [0.0])))

    rows = [["decode", ms(a["decode"]), med("decode"), ms(b["decode"])],
            ["transcribe (the engine)", ms(a["transcribe"]), med("transcribe"), ms(b["transcribe"])],
            ["claimed -> started (job folder, attempt record)", ms(a["claim"]), med("claim"), 0],
            ["rest of the pipeline (options, outputs written)", ms(a["pipeline"]), med("pipeline"), 0],
            ["done -> moved (outputs and source moved, fsync)", ms(a["complete"]), med("complete"), 0],
            ["between jobs (copy, notice, scan, claim; pipes for b)", ms(waiting), "-",
             ms(wall["b"] - b["decode"] - b["transcribe"])],
            ["total", ms(wall["a"]), "-", ms(wall["b"])]]
    print()
    print_table([f"ms per job ({n} jobs)", "(a) daemon, mean", "(a) median", "(b) loop, mean"], rows)
    own = wall["a"] - a["decode"] - a["transcribe"]
    print(f"the daemon's own work is {100 * own / wall['a']:.1f} % of (a)'s wall time (b: "
          f"{100 * (wall['b'] - b['decode'] - b['transcribe']) / wall['b']:.1f} %); the rest of any a/b "
          "gap is decode and the engine running slower or faster under the host's load")


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Audio seconds per wall second of the daemon (a), a plain whisperx loop (b) "
        "and the whisperx CLI per file (c), interleaved in one run; ratios a/b and a/c; peak RSS.")
    parser.add_argument("--files", type=int, default=20, help="timed files (default 20)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="only clips up to this long (default 10: short files)")
    parser.add_argument("--folder", type=Path, help="recordings to use instead of ../shared/corpus")
    parser.add_argument("--chunks", type=int, default=4, help="interleaved chunks (default 4)")
    parser.add_argument("--model", type=Path, help="a CTranslate2 model dir (default: bundled tiny.en)")
    parser.add_argument("--beam-size", type=int, help="default: the config's model.beam_size")
    parser.add_argument("--keep", type=Path, help="work in this folder and leave it (default: a temp dir)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


if __name__ == "__main__":
    sys.exit(main())
