"""CTranslate2 on the CPU: the two things the engine does for its speed there, each on and off
in one run (engine/openmp.py, engine/decoding.py's `encoder_output`).

- **Where the model is built**: a child process per way builds the Whisper model on its main
  thread (as a user's script does) or on a thread of its own (as the engine does), then decodes
  the same 30 s windows of corpus speech (beam 5, batch 4: the daemon's CPU defaults) from their
  encoder output, timed per window.
- **Windows per call**: the same windows encoded, decoded and aligned (the recheck's
  teacher-forced pass, engine/recheck.py) one, two and four to a CTranslate2 call, timed per
  window, on the model built on a thread of its own; whether the numbers, tokens and alignments
  are the same at each size is printed with them.
- **The CPU's threads**: the model built with one thread per call and two workers (a child of
  its own), the windows encoded and decoded one to a call, one call at a time and two at once,
  against the engine's way (both threads in one call). One thread's time over two threads' says
  how well a call uses the second core; two calls at once are what splitting the cores between
  two pieces of work (the VAD of the next part beside the transcription, two decoders) could get
  at best (docs/performance.md, one long recording).

    .venv/bin/python bench/ct2_cpu.py            # tiny.en, 8 windows, least of 3 rounds; ~2 min
    .venv/bin/python bench/ct2_cpu.py --model-path PATH   # another CTranslate2 Whisper model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from common import (LIBRARY_ENV, bench_sections, checked, commit, corpus_items, engine_settings, machine,
                    print_table, require_corpus)

WINDOW = 480_000  # 30 s at 16 kHz
BATCH = 4
#: Windows per CTranslate2 call, each timed.
SIZES = (1, 2, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-path", help="a CTranslate2 Whisper model folder (default: the config's, tiny.en)")
    parser.add_argument("--child", choices=["main", "thread", "workers"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "workers":
        return _workers_child(args.windows, args.rounds, args.model_path)
    if args.child:
        return _child(args.child == "thread", args.windows, args.rounds, args.model_path)
    require_corpus()
    print(f"machine: {machine()}")
    print(f"commit: {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{args.windows} windows of corpus speech, batch {BATCH}, least of {args.rounds} rounds; "
          f"model {args.model_path or 'the config default'}")
    results = {way: _run_child(way, args) for way in ("main", "thread", "workers")}
    main_thread, own_thread, workers = results["main"], results["thread"], results["workers"]
    print()
    print_table(["ms per 30 s window", "built on the main thread", "built on a thread of its own", "ratio"], [
        ["decode (beam 5) from encoder output", main_thread["decode_ms"], own_thread["decode_ms"],
         round(main_thread["decode_ms"] / own_thread["decode_ms"], 2)],
        [f"encode, batch {BATCH} in one call", main_thread["encode_batch_ms"], own_thread["encode_batch_ms"],
         round(main_thread["encode_batch_ms"] / own_thread["encode_batch_ms"], 2)],
        ["encode, one window per call", main_thread["encode_window_ms"], own_thread["encode_window_ms"],
         round(main_thread["encode_window_ms"] / own_thread["encode_window_ms"], 2)],
    ])
    print(f"encoding per window / in one batch call (model built on a thread of its own): "
          f"{own_thread['encode_window_ms'] / own_thread['encode_batch_ms']:.2f}; "
          f"the same numbers: {own_thread['same_numbers']}; the same decoded tokens on both ways: "
          f"{main_thread['tokens'] == own_thread['tokens']}")
    print()
    per_call = own_thread["per_call"]
    print_table(["windows per call (built on a thread of its own)", *(f"{n}: ms per window" for n in SIZES),
                 f"x{BATCH} / x1", f"x{BATCH} / x2", "the same result at every size"], [
        [work, *(per_call[work][str(n)] for n in SIZES),
         round(per_call[work][str(BATCH)] / per_call[work]["1"], 2),
         round(per_call[work][str(BATCH)] / per_call[work]["2"], 2), per_call[work]["same"]]
        for work in ("encode", "decode", "align")])
    print()
    print_table(["ms per window, one window per call", "2 threads (the engine)", "1 thread",
                 "1 thread / 2 threads", "two 1-thread calls at once", "two at once / 2 threads",
                 "the same result"], [
        [work, per_call[work]["1"], workers[work]["one"], round(workers[work]["one"] / per_call[work]["1"], 2),
         workers[work]["two"], round(workers[work]["two"] / per_call[work]["1"], 2),
         workers[work]["same"] and (work != "decode" or workers["tokens"] == own_thread["tokens"])]
        for work in ("encode", "decode")])
    return 0


def _run_child(way: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", way, "--windows", str(args.windows),
               "--rounds", str(args.rounds), *(["--model-path", args.model_path] if args.model_path else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, **LIBRARY_ENV})
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(on_a_thread: bool, count: int, rounds: int, model_path: str | None) -> int:
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from transcribed.engine.decoding import encoder_output
    from transcribed.engine.openmp import built_on_a_thread

    settings = engine_settings(checked(bench_sections(None)))

    def build() -> WhisperModel:
        return WhisperModel(model_path or settings.model_path, device="cpu", compute_type=settings.compute_type,
                            cpu_threads=settings.cpu_threads)

    model = built_on_a_thread(build) if on_a_thread else build()
    features = _features(model, count)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    def encode_batches() -> np.ndarray:
        return np.concatenate([np.asarray(model.model.encode(ctranslate2.StorageView.from_array(
            np.ascontiguousarray(features[i:i + BATCH])), to_cpu=True)) for i in range(0, count, BATCH)])

    encoded = encode_batches()

    def decode_batches() -> list[list[int]]:
        tokens = []
        for i in range(0, count, BATCH):
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[i:i + BATCH]))
            results = model.model.generate(batch, [prompt] * len(encoded[i:i + BATCH]), beam_size=5)
            tokens += [r.sequences_ids[0] for r in results]
        return tokens

    def least_ms(run: Callable[[], object]) -> float:
        best = min(_seconds(run) for _ in range(rounds))
        return round(1000 * best / count, 1)

    result = {"decode_ms": least_ms(decode_batches), "encode_batch_ms": least_ms(encode_batches),
              "encode_window_ms": least_ms(lambda: encoder_output(model, features)),
              "same_numbers": bool(np.array_equal(encoder_output(model, features), encoded)),
              "tokens": decode_batches()}
    if on_a_thread:
        result["per_call"] = _per_call(model, tokenizer, prompt, features, encoded, least_ms)
    print(json.dumps(result))
    return 0


def _workers_child(count: int, rounds: int, model_path: str | None) -> int:
    """Encode and decode on a model of one thread per call and two workers: one call at a time,
    then two at once (CTranslate2 runs each call on a free worker; it lets go of the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from transcribed.engine.openmp import built_on_a_thread

    settings = engine_settings(checked(bench_sections(None)))
    model = built_on_a_thread(lambda: WhisperModel(
        model_path or settings.model_path, device="cpu", compute_type=settings.compute_type, cpu_threads=1,
        num_workers=2))
    features = _features(model, count)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    def encode(i: int) -> np.ndarray:
        return np.asarray(model.model.encode(ctranslate2.StorageView.from_array(
            np.ascontiguousarray(features[i:i + 1])), to_cpu=True))[0]

    encoded = np.stack([encode(i) for i in range(count)])

    def decode(i: int) -> list[int]:
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[i:i + 1]))
        return model.model.generate(view, [prompt], beam_size=5)[0].sequences_ids[0]

    figures: dict[str, Any] = {}
    with ThreadPoolExecutor(2) as pool:
        for work, one in (("encode", encode), ("decode", decode)):
            alone = [one(i) for i in range(count)]
            together = list(pool.map(one, range(count)))
            figures[work] = {
                "one": round(1000 * min(_seconds(lambda one=one: [one(i) for i in range(count)])
                                        for _ in range(rounds)) / count, 1),
                "two": round(1000 * min(_seconds(lambda one=one: list(pool.map(one, range(count))))
                                        for _ in range(rounds)) / count, 1),
                "same": _equal(alone, together)}
        figures["tokens"] = [decode(i) for i in range(count)]
    print(json.dumps(figures))
    return 0


def _features(model: Any, count: int) -> np.ndarray:
    """`count` 30 s windows of corpus speech, as the model's mel features."""
    from transcribed.transcription.audio import decode

    speech = np.concatenate([decode(item.path).samples for item in corpus_items("en", max_seconds=40.0)])
    windows = [speech[i * WINDOW:(i + 1) * WINDOW] for i in range(count)]
    return np.stack([model.feature_extractor(w)[:, :3000] for w in windows]).astype(np.float32)


def _per_call(model: Any, tokenizer: Any, prompt: list[int], features: np.ndarray, encoded: np.ndarray,
              least_ms: Callable[[Callable[[], object]], float]) -> dict[str, dict[str, Any]]:
    """Encode, decode and align the windows `size` to a call, for each of SIZES."""
    import ctranslate2

    def view(array: np.ndarray) -> Any:
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))

    def calls(size: int, one: Callable[[slice], list[Any]]) -> list[Any]:
        return [out for start in range(0, len(features), size) for out in one(slice(start, start + size))]

    def encode(part: slice) -> list[Any]:
        return list(np.asarray(model.model.encode(view(features[part]), to_cpu=True)))

    def decode(part: slice) -> list[Any]:
        results = model.model.generate(view(encoded[part]), [prompt] * len(encoded[part]), beam_size=5)
        return [r.sequences_ids[0] for r in results]

    tokens = calls(BATCH, decode)
    texts = [[t for t in row if t < tokenizer.eot] for row in tokens]

    def align(part: slice) -> list[Any]:
        rows = texts[part]
        results = model.model.align(view(encoded[part]), tokenizer.sot_sequence, rows, [3000] * len(rows))
        return [r.alignments for r in results]

    figures: dict[str, dict[str, Any]] = {}
    for work, one in (("encode", encode), ("decode", decode), ("align", align)):
        outputs = {size: calls(size, one) for size in SIZES}
        same = all(_equal(outputs[size], outputs[SIZES[0]]) for size in SIZES)
        figures[work] = {**{str(size): least_ms(lambda size=size, one=one: calls(size, one)) for size in SIZES},
                         "same": same}
    return figures


def _equal(first: list[Any], second: list[Any]) -> bool:
    return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(first, second, strict=True))


def _seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
