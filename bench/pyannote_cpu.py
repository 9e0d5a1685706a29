"""pyannote's VAD on the CPU: its batch size (the engine's CPU_VAD_BATCH_SIZE, engine/hardware.py)
and its LSTM in bfloat16 (tried, not kept: docs/performance.md), each way in one run.

The engine finds a long recording's speech (tests/support/long_recordings.py's shuffled
recording, seed 1: `heldout` of bench/long_recording.py) with pyannote's LSTM in float32 or in
bfloat16 (where the CPU computes it natively: AVX512-BF16 or AMX; the SincNet front stays
float32) and 8 or 32 windows per batch (whisperx's size),
the least of `--rounds` each (the ways in turn, round by round), and compares each way's speech
with float32 at 32 (seconds that are speech in one and not the other).

    .venv/bin/python bench/pyannote_cpu.py          # ~1 min
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from common import bench_sections, checked, commit, engine_settings, machine, print_table, require_corpus

from tests.support.long_recordings import shuffled

SIZES = (8, 32)
#: The speech masks' resolution, per second.
MASK_RATE = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    require_corpus()
    from transcribed.engine.whisperx_engine import WhisperXEngine

    config = checked(bench_sections(None))
    engine = WhisperXEngine(config, engine_settings(config))
    engine.load()
    recording = shuffled(1)
    model = engine.segmentation().model
    float32_lstm = model.lstm
    print(f"machine: {machine()}")
    print(f"commit: {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; a "
          f"{recording.seconds / 60:.1f}-min recording (long: its 5 s windows every "
          f"{config.vad.long_step_seconds} s), least of {args.rounds} rounds; bfloat16 native: {native_bfloat16()}")
    lstms = {"float32": float32_lstm, **({"bfloat16": _bfloat16_lstm(float32_lstm)} if native_bfloat16() else {})}
    ways = [(name, size) for name in lstms for size in SIZES]
    timed: dict[tuple[str, int], tuple[float, list[Any]]] = {way: (float("inf"), []) for way in ways}
    for _ in range(args.rounds):
        for name, size in ways:
            model.lstm = lstms[name]
            seconds, chunks = _timed(engine, recording.samples, size)
            timed[name, size] = (min(seconds, timed[name, size][0]), chunks)
    reference = timed["float32", 32][1]
    rows = [[f"LSTM {name}, batch {size}", round(seconds, 2), round(timed["float32", 32][0] / seconds, 2),
             len(chunks), round(sum(c.get("speech_seconds", 0.0) for c in chunks), 2),
             _speech_moved(chunks, reference)]
            for (name, size), (seconds, chunks) in timed.items()]
    print()
    print_table(["way", "VAD s", "x float32 batch 32", "chunks", "speech s",
                 "speech s not the same as float32 batch 32's"], rows)
    return 0


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes
        return False


def _bfloat16_lstm(lstm: Any) -> Any:
    """`lstm` run under CPU autocast to bfloat16, its output handed on as float32."""
    import torch

    class Bfloat16Lstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = lstm

        def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, Any]:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outputs, state = self.lstm(inputs)
            return outputs.float(), state

    return Bfloat16Lstm()


def _timed(engine: Any, samples: Any, size: int) -> tuple[float, list[Any]]:
    engine.vad_batch.current = size
    started = time.perf_counter()
    chunks = engine.find_speech(samples)
    return time.perf_counter() - started, chunks


def _speech_moved(chunks: list[Any], reference: list[Any]) -> float:
    """Seconds that are speech in one way's VAD stretches and not in the other's."""
    ours, theirs = _speech_mask(chunks), _speech_mask(reference)
    size = max(len(ours), len(theirs))
    return round(float(np.sum(np.pad(ours, (0, size - len(ours))) ^ np.pad(theirs, (0, size - len(theirs)))))
                 / MASK_RATE, 2)


def _speech_mask(chunks: list[Any]) -> np.ndarray:
    stretches = [s for chunk in chunks for s in chunk.get("stretches", [(chunk["start"], chunk["end"])])]
    mask = np.zeros(int(max((b for _a, b in stretches), default=0) * MASK_RATE) + 1, dtype=bool)
    for a, b in stretches:
        mask[int(a * MASK_RATE):int(b * MASK_RATE)] = True
    return mask


if __name__ == "__main__":
    sys.exit(main())
