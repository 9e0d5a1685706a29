"""Throughput: the daemon end to end, against a plain whisperx loop and the whisperx CLI.

The same recordings, model and settings, three ways, in one run:
  (a) the daemon: files copied into its inbox, timed until the last result has landed;
  (b) a plain loop calling whisperx on each file with a loaded model (a serial daemon's limit);
  (c) the `whisperx` command line run once per file, as a cron script would.
The files are cut into chunks, and each chunk goes through (a), (b) and (c) in turn, the order
rotating from chunk to chunk, so the host's noise falls on all three alike. The daemon and the
loop are started, and warmed up with one file, before the clock runs; the CLI pays its start-up
on every file, which is the point of the comparison.

    .venv/bin/python bench/throughput.py                 # 20 short corpus clips
    .venv/bin/python bench/throughput.py --folder DIR    # your own recordings
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (Item, PlainLoop, cli_environment, corpus_items, daemon_settings, describe,
                    event_time, folder_items, machine, median, print_table, proc_status_mib,
                    require_corpus, run_cli, running_daemon, scratch_dir, spread)

#: Targets from issue 6 (2-core CPU, tiny.en int8, 20 short files).
TARGET_A_OVER_B = 0.97
TARGET_A_OVER_C = 5.0
WAYS = ("a", "b", "c")
NAMES = {"a": "(a) daemon, inbox to outbox", "b": "(b) plain whisperx loop, model loaded",
         "c": "(c) whisperx CLI, once per file"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    items = _items(args)
    if len(items) < 2:
        raise SystemExit("need at least 2 files (one warms up the resident pipelines)")
    settings = daemon_settings(args.model, args.beam_size)
    warmup, timed = items[0], items[1:]
    chunks = [timed[i::args.chunks] for i in range(args.chunks) if timed[i::args.chunks]]
    print(f"machine: {machine()}")
    print(f"settings: {describe(settings)}")
    print(f"files: {len(timed)} timed, {sum(i.seconds for i in timed):.1f} s of audio, "
          f"in {len(chunks)} interleaved chunks; warm-up file {warmup.path.name}")
    walls: dict[str, list[float]] = {way: [] for way in WAYS}
    peaks: dict[str, float] = {}
    with scratch_dir(args.keep) as scratch_name:
        scratch = Path(scratch_name)
        cli_env, ffmpeg = cli_environment(scratch)
        print(f"(c) decodes with: {ffmpeg}")
        loop = PlainLoop(settings, scratch)
        cli_peaks: list[float] = []
        with running_daemon(scratch / "daemon", settings=settings,
                            transcribe_only=True) as (folders, daemon, events):
            _through_daemon([warmup], "warmup", folders.inbox, events)
            loop.transcribe(warmup.path)
            for index, chunk in enumerate(chunks):
                order = WAYS[index % 3:] + WAYS[: index % 3]
                for way in order:
                    if way == "a":
                        walls["a"].append(_through_daemon(chunk, f"c{index}", folders.inbox, events))
                    elif way == "b":
                        started = time.perf_counter()
                        for item in chunk:
                            loop.transcribe(item.path)
                        walls["b"].append(time.perf_counter() - started)
                    else:
                        started = time.perf_counter()
                        for item in chunk:
                            _, peak = run_cli(item.path, settings, scratch / "cli-out", cli_env,
                                              scratch / "cli.log")
                            cli_peaks.append(peak)
                        walls["c"].append(time.perf_counter() - started)
                print(f"  chunk {index + 1}/{len(chunks)} ({len(chunk)} files, order {''.join(order)}): "
                      + ", ".join(f"{w} {walls[w][-1]:.1f} s" for w in WAYS), flush=True)
            peaks["a"] = proc_status_mib(daemon.process.pid, "VmHWM")
        peaks["b"] = loop.peak_rss_mib()
        peaks["c"] = max(cli_peaks)
        loop.close()
        standin = _standin_seconds(timed, cli_env) if "stand-in" in ffmpeg else 0.0
    return _report(chunks, walls, peaks, standin, args.strict)


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


def _items(args: argparse.Namespace) -> list[Item]:
    if args.folder:
        return folder_items(args.folder, args.max_seconds)[: args.files + 1]
    require_corpus()
    pool = corpus_items("en", args.max_seconds)
    # One more than asked: the first warms up the resident pipelines and is not timed.
    return spread(pool, args.files + 1)


def _through_daemon(chunk: list[Item], tag: str, inbox: Path, events) -> float:
    """Copy the chunk into the inbox; seconds until the last file's results have landed."""
    expected = {f"{tag}-{item.path.name}" for item in chunk}
    started = time.time()
    for item in chunk:
        shutil.copy(item.path, inbox / f"{tag}-{item.path.name}")
    last = started
    while expected:
        event = events.wait(lambda e: e.get("event") == "job.moved" and e.get("file") in expected,
                            timeout=600)
        if "failed" in event:
            raise RuntimeError(f"the daemon failed {event['file']}: see its log")
        expected.discard(event["file"])
        last = event_time(event)
    return last - started


def _report(chunks: list[list[Item]], walls: dict[str, list[float]], peaks: dict[str, float],
            standin: float, strict: bool) -> int:
    audio = [sum(i.seconds for i in chunk) for chunk in chunks]
    total_audio = sum(audio)
    speed = {w: total_audio / sum(walls[w]) for w in WAYS}
    print()
    print_table(["way", "files", "audio s", "wall s", "audio s / wall s", "median per chunk",
                 "peak RSS MiB"],
                [[NAMES[w], sum(map(len, chunks)), round(total_audio, 1), round(sum(walls[w]), 1),
                  round(speed[w], 2), round(median([a / t for a, t in zip(audio, walls[w])]), 2),
                  round(peaks[w])] for w in WAYS])
    a_b = speed["a"] / speed["b"]
    a_c = speed["a"] / speed["c"]
    per_chunk_ab = [b / a for a, b in zip(walls["a"], walls["b"])]
    per_chunk_ac = [c / a for a, c in zip(walls["a"], walls["c"])]
    print()
    print_table(["ratio", "whole run", "median of chunks", "chunks", "target", "met"], [
        ["a/b", round(a_b, 3), round(median(per_chunk_ab), 3),
         " ".join(f"{r:.3f}" for r in per_chunk_ab), f">= {TARGET_A_OVER_B}", _yes(a_b >= TARGET_A_OVER_B)],
        ["a/c", round(a_c, 2), round(median(per_chunk_ac), 2),
         " ".join(f"{r:.2f}" for r in per_chunk_ac), f">= {TARGET_A_OVER_C}", _yes(a_c >= TARGET_A_OVER_C)],
    ])
    print("(peak RSS: the daemon's and the loop's whole process; the CLI's largest single run)")
    if standin:
        free = total_audio / (sum(walls["c"]) - standin)
        print(f"(c) spent about {standin:.1f} s in the PyAV ffmpeg stand-in; with a decoder that cost "
              f"nothing, c would be {free:.2f} audio s / wall s and a/c {speed['a'] / free:.2f}")
    met = a_b >= TARGET_A_OVER_B and a_c >= TARGET_A_OVER_C
    return 1 if strict and not met else 0


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
