"""Which audio stream of a file a job transcribes: `audio.track` (or a route's or sidecar's
`audio_track`) chooses among a file's audio streams by number, by the languages its streams are
tagged with, or (auto) the one flagged default, else the first. The choice and why go into the
job's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import languages
from ..errors import BadInput

#: `audio.track`: "auto", an audio stream's number, or two-letter languages in order of preference.
TrackSetting = str | int | tuple[str, ...]


@dataclass(frozen=True)
class Stream:
    """What a container says about one of its audio streams."""

    #: Its number among the file's audio streams (0 = the first), as `audio.track` counts.
    number: int
    #: The stream's language tag as written (`eng`, `ger`, `und`), or None.
    language: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Track:
    """The audio stream chosen for a job, and why (the job's metadata shows both)."""

    number: int
    streams: int
    language: str | None
    reason: str

    def describe(self) -> dict[str, object]:
        return {"stream": self.number, "streams": self.streams, "language": self.language,
                "reason": self.reason}


def stream_of(number: int, stream: Any) -> Stream:
    """A PyAV audio stream as `choose_track` sees it: its number, language tag, default flag."""
    import av

    default = bool(stream.disposition & av.stream.Disposition.default)
    return Stream(number, (stream.metadata or {}).get("language") or None, default)


def choose_track(streams: list[Stream], setting: TrackSetting) -> Track:
    """The stream `setting` names: its number; the first stream tagged with the first of the
    languages present (two-letter codes against the containers' three-letter tags: `de` is
    `ger` and `deu`), the default-flagged one first among several; else (and for "auto") the
    stream flagged default, else the first. BadInput for a number the file does not have."""
    count = len(streams)
    if isinstance(setting, int):
        if setting >= count:
            raise BadInput("no_such_track", f"audio.track is {setting}, but the file has {count} "
                           f"audio stream{'s' if count > 1 else ''} (numbered from 0)")
        return Track(setting, count, streams[setting].language, f"audio.track is {setting}")
    if isinstance(setting, tuple):
        for wanted in setting:
            matching = [s for s in streams if languages.code_of_tag(s.language) == wanted]
            if matching:
                best = next((s for s in matching if s.default), matching[0])
                return Track(best.number, count, best.language,
                             f"tagged {best.language}: {wanted}, the first of {', '.join(setting)} present")
    fallback = next((s for s in streams if s.default), streams[0])
    if count == 1:
        why = "the only audio stream"
    elif fallback.default:
        why = "the stream flagged default"
    else:
        why = "the first audio stream (none is flagged default)"
    if isinstance(setting, tuple):
        tags = sorted({s.language or "untagged" for s in streams})
        why = f"no stream in {', '.join(setting)} (the file has {', '.join(tags)}): {why}"
    return Track(fallback.number, count, fallback.language, why)
