"""The voice-activity step side by side: pyannote (whisperx's default) and Silero (faster-whisper's
ONNX model), on the same English corpus clips, in one process, interleaved.

For each method: the VAD's own seconds, the whole engine call's seconds (VAD + Whisper), and the
word error rate of the text against the corpus references; then the ratios. The engines are the
daemon's own (WhisperXEngine with the daemon's settings), differing only in `vad.method`.

    .venv/bin/python bench/vad.py                 # every English single-speaker clip
    .venv/bin/python bench/vad.py --clips 10 --runs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.corpus import clips, word_error_rate  # noqa: E402
from transcribed import logs  # noqa: E402
from transcribed.audio import decode  # noqa: E402
from transcribed.config import Config, Vad  # noqa: E402
from transcribed.engine.base import Request  # noqa: E402
from transcribed.engine.hardware import choose, probe  # noqa: E402
from transcribed.engine.models import bundled_model_path  # noqa: E402
from transcribed.engine.whisperx_engine import WhisperXEngine  # noqa: E402

METHODS = ("pyannote", "silero")


def engine_with(method: str) -> WhisperXEngine:
    config = dataclasses.replace(Config(), vad=dataclasses.replace(Vad(), method=method))
    settings = choose(config.model, probe(0), bundled_model_path(), "bundled")
    engine = WhisperXEngine(config, settings)
    engine.load()
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=0, help="at most this many clips (0: all)")
    parser.add_argument("--runs", type=int, default=2, help="runs per method; the minimum counts")
    args = parser.parse_args()
    logs.configure()  # the engine's library prints become log lines (on stdout, before the table)
    chosen = clips(language="en", speakers=1)
    chosen = chosen[: args.clips] if args.clips else chosen
    audio = [(c, decode(c.path).samples) for c in chosen]
    engines = {m: engine_with(m) for m in METHODS}
    for engine in engines.values():  # first calls pay one-off costs (allocations, kernels)
        engine.transcribe(audio[0][1], Request(language="en"), engine.settings.batch_size,
                          lambda _p: None)
    request = Request(language="en")
    vad_s = {m: [] for m in METHODS}
    total_s = {m: [] for m in METHODS}
    texts: dict[str, list[str]] = {m: [] for m in METHODS}
    for run in range(args.runs):
        for method in METHODS if run % 2 == 0 else reversed(METHODS):
            engine, vad_run, total_run, run_texts = engines[method], 0.0, 0.0, []
            for _clip, samples in audio:
                began = time.perf_counter()
                speech = engine.find_speech(samples)
                vad_run += time.perf_counter() - began
                result = engine.transcribe(samples, request, engine.settings.batch_size,
                                           lambda _p: None, speech)
                total_run += time.perf_counter() - began
                run_texts.append(" ".join(s["text"].strip() for s in result["segments"]))
            vad_s[method].append(vad_run)
            total_s[method].append(total_run)
            texts[method] = run_texts
    seconds = sum(c.duration_s for c, _ in audio)
    print(f"{len(audio)} English clips, {seconds:.0f} s of audio, {args.runs} runs each (minimum shown)")
    print(f"{'method':10} {'vad s':>8} {'total s':>8} {'x realtime':>10} {'WER %':>7}")
    wer = {}
    for method in METHODS:
        wer[method] = 100 * statistics.fmean(word_error_rate(c.reference, t, "en")
                                             for (c, _), t in zip(audio, texts[method], strict=True))
        print(f"{method:10} {min(vad_s[method]):8.2f} {min(total_s[method]):8.2f} "
              f"{seconds / min(total_s[method]):10.1f} {wer[method]:7.2f}")
    same = sum(a == b for a, b in zip(texts["pyannote"], texts["silero"], strict=True))
    print(f"silero/pyannote: VAD {min(vad_s['pyannote']) / min(vad_s['silero']):.2f}x faster, "
          f"engine call {min(total_s['pyannote']) / min(total_s['silero']):.2f}x faster, "
          f"WER {wer['silero'] - wer['pyannote']:+.2f} points, same text {same}/{len(audio)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
