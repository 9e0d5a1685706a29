"""Files' speech chunks decoded in batches, one transcript per file; long recordings rechecked.

Each chunk is cut from its file, padded to Whisper's 30 s window and decoded as whisperx does it
(engine/decoding.py); chunks of several files may share a batch. A batch holding chunks of a long
recording (`vad.long_seconds`) is encoded once, decoded from that encoding, and its speech that
no decoded word starts in is decoded again (engine/recheck.py, `vad.recheck_seconds`). With
`condition_on_previous_text` the chunks are decoded one at a time, in order, unchecked.
"""

from __future__ import annotations

import numpy as np

from .base import Progress, SpeechChunk, SpeechOf, Transcript, segment_of
from .decoding import ChunkDecoder, Decoded, batches, decode_in_order
from .recheck import Batching, Chunks, Part, Stretches, Tally, recheck

#: whisperx works on 16 kHz mono.
SAMPLE_RATE = 16_000


def decode_chunks(decoder: ChunkDecoder, pipe: object, items: list[SpeechOf], long: list[bool],
                  batching: Batching, progress: Progress, language: str | None,
                  tally: Tally) -> list[Transcript]:
    """One transcript per item, in `language` (the decoder's tokenizer has it): a segment per
    chunk, or per part of a chunk whose missed speech was decoded again (counted in `tally`:
    the caller logs it, outside `logs.prints_as_logs`, where a log line would be a print caught)."""
    chunks = [(index, item.samples, chunk) for index, item in enumerate(items) for chunk in item.speech]
    results = [Transcript(segments=[], language=language) for _ in items]
    finished = [0]

    def features_of(i: int) -> np.ndarray:
        _index, samples, c = chunks[i]
        return decoder.features(samples[int(c["start"] * SAMPLE_RATE): int(c["end"] * SAMPLE_RATE)], pipe)

    def done(i: int, out: Decoded) -> None:
        done_parts(i, [Part(chunks[i][2]["start"], chunks[i][2]["end"], out)])

    def done_parts(i: int, parts: list[Part]) -> None:
        index, _samples, chunk = chunks[i]
        for part in parts:
            piece = chunk if len(parts) == 1 else SpeechChunk(start=part.start, end=part.end)
            results[index]["segments"].append(segment_of(piece, part.out))
        finished[0] += 1
        progress(100.0 * finished[0] / len(chunks))

    if decoder.rules.condition_on_previous_text:
        decode_in_order(decoder, features_of, [index for index, _s, _c in chunks], done)
        return results
    checked: list[Stretches] = [chunk.get("stretches", []) if long[index] else []
                                for index, _samples, chunk in chunks]
    for batch in batches(len(chunks), batching.batch_size):
        spans = [(chunks[i][2]["start"], chunks[i][2]["end"]) for i in batch]
        features = np.stack([features_of(i) for i in batch])
        if batching.recheck_seconds <= 0 or not any(checked[i] for i in batch):
            for i, out in zip(batch, decoder.decode(features), strict=True):
                done(i, out)
            continue
        encoded = decoder.encode(features)
        own = Chunks([chunks[i][1] for i in batch], spans, [checked[i] for i in batch])
        parts = recheck(decoder, pipe, own, encoded, decoder.decode_encoded(encoded), batching, tally)
        for i, chunk_parts in zip(batch, parts, strict=True):
            done_parts(i, chunk_parts)
    return results
