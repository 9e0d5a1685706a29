"""Writing a job's results with whisperx's own writers, into the job's staging folder.

Writers are called through `write_result` on a file we open, so each output is complete and
fsynced before the spool moves it into the outbox (the writers' own `__call__` overwrites in
place). The JSON is the whisperx result plus a `transcribed` block of metadata.

Times are written on the media's clock (`on_media_clock`): the stages before (Whisper, the
filters, alignment, diarization) work on the decoded samples, whose 0 is where the audio stream
starts; a player's 0 is the media's start, which may be earlier (a camera's audio starting after
its video, a DVR recording's clock). Every file written, subtitles in a library included, is
shifted by the audio's offset, so a subtitle appears when its word is heard.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import durable
from ..config import Outputs
from ..engine.base import Transcript
from ..spool.finish import fit_name


def writer_options(outputs: Outputs) -> dict[str, Any]:
    """The subtitle writers read all three keys, even when they are None."""
    return {"max_line_width": outputs.max_line_width, "max_line_count": outputs.max_line_count,
            "highlight_words": outputs.highlight_words}


def write_outputs(result: Transcript, metadata: Mapping[str, object], outputs: Outputs,
                  staging: Path, stem: str, formats: tuple[str, ...] | None = None, *,
                  offset_seconds: float) -> dict[str, Path]:
    """Write each format to `staging/<stem>.<format>`, every time moved onto the media's clock by
    `offset_seconds` (the audio stream's start: `Audio.offset_seconds`, which every caller must
    give); returns {".json": path, ...}. A full, over-quota or read-only disk raises
    `errors.StorageFault` (writing them all again later replaces what was written so far)."""
    from whisperx.utils import get_writer

    result = on_media_clock(result, offset_seconds)
    written = {}
    for fmt in formats or outputs.formats:
        data = {**result, "transcribed": metadata} if fmt == "json" else result
        path = staging / fit_name(stem, f".{fmt}")  # a 255-byte source name has no room for .json
        with durable.own_write(staging), open(path, "w", encoding="utf-8") as file:
            get_writer(fmt, str(staging)).write_result(data, file=file, options=writer_options(outputs))
            file.flush()
            os.fsync(file.fileno())
        written[f".{fmt}"] = path
    return written


def plain_result(result: Transcript) -> Transcript:
    """The result with numpy numbers turned into Python ones, so json.dump takes it."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            return value.item()
        return value
    cleaned: Transcript = plain(result)
    return cleaned


#: The keys of a transcript that hold times, and the lists of timed items inside a segment.
_TIME_KEYS = ("start", "end")
_TIMED_PARTS = ("words", "chars")


def on_media_clock(result: Transcript, offset_seconds: float) -> Transcript:
    """A copy of `result` with every segment, word and character time moved `offset_seconds`
    later (rounded to the millisecond); `result` itself when there is nothing to move."""
    if not offset_seconds:
        return result
    moved = copy.deepcopy(result)
    for segment in [*moved["segments"], *moved.get("word_segments", [])]:
        timed: list[Any] = [segment]
        for part in _TIMED_PARTS:
            timed += segment.get(part) or []
        for item in timed:
            for key in _TIME_KEYS:
                value = item.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    item[key] = round(value + offset_seconds, 3)
    return moved
