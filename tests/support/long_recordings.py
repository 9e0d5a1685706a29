"""Long recordings built from the corpus's English clips, as a meeting or a lecture is long: the
bench (bench/long_recording.py) measures on them and the e2e tests cut pieces of them.

`shuffled(seed)`: every single-speaker English clip of up to 40 s and the long-form recording
(half-way), in an order shuffled by `seed`, with irregular pauses between them (0.2-2 s, and a
4-8 s break after every 8th clip) and a faint noise floor (no digital silence, as in a room).
The same seed gives the same samples, so a stretch found in one run can be named in a test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.support.corpus import Clip, clips
from transcribed.transcription.audio import decode

SAMPLE_RATE = 16_000
#: The pauses between clips, and the longer break after every `BREAK_EVERY`th clip (seconds).
PAUSE_SECONDS, BREAK_SECONDS, BREAK_EVERY = (0.2, 2.0), (4.0, 8.0), 8
#: The noise floor, in dBFS.
NOISE_DBFS = -66
#: The longest clip taken (the long-form recording is added on its own).
MAX_CLIP_SECONDS = 40.0


@dataclass(frozen=True)
class Placed:
    """A clip and where it lies in the recording (seconds)."""

    clip: Clip
    start: float
    end: float


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray
    placed: list[Placed]

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def inside(self, start: float, end: float) -> list[Placed]:
        """The clips wholly inside [start, end]."""
        return [p for p in self.placed if p.start >= start and p.end <= end]


def shuffled(seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    items = clips(language="en", max_duration=MAX_CLIP_SECONDS)
    order = [items[k] for k in rng.permutation(len(items))]
    order[len(order) // 2:len(order) // 2] = clips(language="en", sets=["longform"])[:1]
    parts, placed, at = [], [], 0
    for n, clip in enumerate(order):
        samples = decode(clip.path).samples
        placed.append(Placed(clip, at / SAMPLE_RATE, (at + len(samples)) / SAMPLE_RATE))
        pause = rng.uniform(*BREAK_SECONDS) if (n + 1) % BREAK_EVERY == 0 else rng.uniform(*PAUSE_SECONDS)
        parts += [samples, np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)]
        at += len(samples) + len(parts[-1])
    audio = np.concatenate(parts)
    audio = audio + rng.normal(0, 10 ** (NOISE_DBFS / 20), len(audio)).astype(np.float32)
    return Recording(audio, placed)
