"""Accuracy: the daemon's word error rate against the corpus references, beside a plain whisperx
loop's with the same model and settings, and the Whisper paper's figure where one exists.

Both sides are normalised before scoring: Whisper's English normaliser for English, lower-case
and punctuation stripping (Whisper's basic normaliser) for other languages, characters for zh and
ja. WER is corpus-level per group (total errors / total reference words). The daemon must not be
less accurate than the engine it wraps: daemon - loop <= 0.5 points.

    .venv/bin/python bench/accuracy.py                   # bundled tiny.en, English clips
    .venv/bin/python bench/accuracy.py --model DIR       # a multilingual model: every language
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import (Item, PlainLoop, corpus_items, corpus_wer, daemon_settings, describe, machine,
                    normalise, print_table, require_corpus, running_daemon, scratch_dir, text_of)

#: Issue 6: the daemon's WER may exceed the plain loop's by at most this many points.
MAX_DIFFERENCE_POINTS = 0.5
#: Whisper paper (Radford et al. 2022), LibriSpeech test-clean WER %, for the models given in issue 6.
PAPER_LIBRISPEECH_TEST_CLEAN = {"tiny.en": 5.6, "base.en": 4.2}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    settings = daemon_settings(args.model, args.beam_size)
    language = "en" if settings.language == "en" else None
    items = [i for i in corpus_items(language, args.max_seconds) if not args.sets or i.set_name in args.sets]
    items = items[: args.limit] if args.limit else items
    if not items:
        raise SystemExit("no corpus clips match")
    print(f"machine: {machine()}")
    print(f"settings: {describe(settings)}")
    print(f"clips: {len(items)}, {sum(i.seconds for i in items):.1f} s of audio")
    with scratch_dir(args.keep) as scratch_name:
        scratch = Path(scratch_name)
        daemon_texts = _through_daemon(items, scratch, settings, args.engine)
        if args.engine == "fake":
            loop_texts = dict(daemon_texts)  # the fake engine has no plain loop to compare with
        else:
            loop = PlainLoop(settings, scratch)
            started = time.perf_counter()
            loop_texts = {i.path: loop.transcribe(i.path)["text"] for i in items}
            print(f"plain loop: {time.perf_counter() - started:.0f} s", flush=True)
            loop.close()
    return _report(items, daemon_texts, loop_texts, settings.model_name, args.strict)


def _through_daemon(items: list[Item], scratch: Path, settings, engine: str) -> dict[Path, str]:
    """Every clip through one daemon at once; the text of each outbox .json."""
    started = time.perf_counter()
    with running_daemon(scratch / "daemon", engine=engine, settings=settings,
                        transcribe_only=True) as (folders, _daemon, events):
        waiting = {item.path.name for item in items}
        for item in items:
            shutil.copy(item.path, folders.inbox / item.path.name)
        while waiting:
            event = events.wait(lambda e: e.get("event") == "job.moved" and e.get("file") in waiting, 900)
            if "failed" in event:
                raise RuntimeError(f"the daemon failed {event['file']}")
            waiting.discard(event["file"])
    print(f"daemon: {time.perf_counter() - started:.0f} s (start-up included)", flush=True)
    texts = {}
    for item in items:
        result = json.loads((folders.outbox / f"{item.path.stem}.json").read_text(encoding="utf-8"))
        texts[item.path] = text_of(result)
    return texts


def _group(item: Item) -> str:
    return item.set_name if item.language == "en" else f"{item.set_name}/{item.language}"


def _report(items: list[Item], daemon: dict[Path, str], loop: dict[Path, str], model: str,
            strict: bool) -> int:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_group(item), []).append(item)
    paper = PAPER_LIBRISPEECH_TEST_CLEAN.get(model)
    rows = []
    for name, members in sorted(groups.items()):
        d = 100 * corpus_wer([(i, daemon[i.path]) for i in members])
        lp = 100 * corpus_wer([(i, loop[i.path]) for i in members])
        same = sum(normalise(daemon[i.path], i.language) == normalise(loop[i.path], i.language) for i in members)
        note = f"{paper} (test-clean)" if name == "librispeech" and paper is not None else ""
        rows.append([name, len(members), round(sum(i.seconds for i in members), 1), round(d, 2),
                     round(lp, 2), round(d - lp, 2), f"{same}/{len(members)}", note])
    english = [i for i in items if i.language == "en"]
    totals = []
    for label, members in [("all English", english), ("all", items)]:
        if members and (label == "all English" or len(members) != len(english)):
            d = 100 * corpus_wer([(i, daemon[i.path]) for i in members if i.language not in ("zh", "ja")])
            lp = 100 * corpus_wer([(i, loop[i.path]) for i in members if i.language not in ("zh", "ja")])
            same = sum(normalise(daemon[i.path], i.language) == normalise(loop[i.path], i.language)
                       for i in members)
            totals.append([label, len(members), round(sum(i.seconds for i in members), 1), round(d, 2),
                           round(lp, 2), round(d - lp, 2), f"{same}/{len(members)}", ""])
    print()
    print_table(["set", "clips", "audio s", "daemon WER %", "plain loop WER %", "difference",
                 "same text", f"paper WER % ({model})"], rows + totals)
    worst = max(row[5] for row in rows + totals)
    met = worst <= MAX_DIFFERENCE_POINTS
    print(f"\ndaemon - plain loop: at most {worst:+.2f} points per row (target <= "
          f"{MAX_DIFFERENCE_POINTS}): {'met' if met else 'MISSED'}")
    if paper is not None:
        print(f"paper: Whisper {model}, LibriSpeech test-clean {paper} %. The corpus 'librispeech' set is "
              "9 clips (dev-clean, train-clean-5 and one test-clean): a small sample, not test-clean.")
    return 1 if strict and not met else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Word error rate of the daemon's outputs and of a plain whisperx loop against the "
        "corpus references, per set, with the Whisper paper's figure beside them.")
    parser.add_argument("--model", type=Path, help="a CTranslate2 model dir (default: bundled tiny.en; "
                        "a multilingual one is scored on every language)")
    parser.add_argument("--beam-size", type=int, help="default: the config's model.beam_size")
    parser.add_argument("--max-seconds", type=float, help="only clips up to this long")
    parser.add_argument("--sets", nargs="+", help="only these corpus sets (e.g. librispeech ljspeech)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--engine", choices=["whisperx", "fake"], default="whisperx",
                        help="fake: check the plumbing only (its text is not speech recognition)")
    parser.add_argument("--keep", type=Path, help="work in this folder and leave it (default: a temp dir)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the daemon is worse by > 0.5 points")
    return parser


if __name__ == "__main__":
    sys.exit(main())
