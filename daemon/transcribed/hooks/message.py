"""What a notification says: a title and a short body for a person, from a delivery's JSON.

The same body the command and the webhook get (queue.py) is worded here: the file, its outcome,
how much audio and how long it took, its language, the transcript's first words, where the
results are, and for a failed job why. `hooks.notify.title` and `body` are `str.format`
templates over these fields (config/checks.py allows only their names); a body line whose
fields had nothing to say is dropped, so one template serves done and failed jobs alike.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import Notify
from ..operations.progress import describe_duration

#: Words of the transcript a note keeps (`hooks.notify.first_words` quotes up to this many).
NOTE_WORDS = 60
#: Bytes of a staged result read for its first words: a transcript's start, never the whole file.
READ_BYTES = 16384
#: Results named in `{where}` before "and N more".
SHOWN_RESULTS = 2
#: The formats that hold the text, in the order they are read for the first words.
TEXT_FORMATS = (".txt", ".json", ".srt", ".vtt", ".tsv")
_CUE_TIMING = re.compile(r"^\s*(\d+|WEBVTT.*|NOTE.*|[\d:.,]+\s+-->\s+[\d:.,]+.*)\s*$")


def fields(body: Mapping[str, Any], words: int) -> dict[str, str]:
    """Every field a template may name, as text ("" where there is nothing to say)."""
    failed = body.get("outcome") == "failed"
    error = body.get("error") or {}
    results = [r.get("relative", "") for r in body.get("results") or []]
    values = {
        "file": str(body.get("file", "")), "name": PurePosixPath(str(body.get("file", ""))).name,
        "outcome": str(body.get("outcome", "")),
        "outcome_text": "Failed" if failed else "Transcribed",
        "duration": describe_seconds(body.get("audio_seconds")),
        "took": describe_seconds(body.get("wall_seconds")),
        "language": str(body.get("language") or ""),
        "first_words": quote(body.get("first_words") or "", words),
        "error": str(error.get("message") or ""), "error_kind": str(error.get("kind") or ""),
        "results": ", ".join(results), "job_id": str(body.get("job_id", "")),
    }
    values["summary"] = _summary(values, failed)
    values["where"] = _where(body, results, failed)
    return values


def render(notify: Notify, body: Mapping[str, Any]) -> tuple[str, str]:
    """The notification's title and body for this delivery."""
    values = fields(body, notify.first_words)
    title = notify.title.format(**values).strip()
    lines = []
    for line in notify.body.splitlines():
        named = [name for _, name, _, _ in string.Formatter().parse(line) if name]
        if named and not any(values[name] for name in named):
            continue  # every field of the line had nothing to say: no line of punctuation
        text = line.format(**values).rstrip()
        if text.strip():
            lines.append(text)
    return title, "\n".join(lines)


def _summary(values: Mapping[str, str], failed: bool) -> str:
    """E.g. "42 min of audio (en), transcribed in 3 min 10 s." or "Not transcribed (not_audio):
    the file holds no audio stream." """
    if failed:
        kind = f" ({values['error_kind']})" if values["error_kind"] else ""
        return f"Not transcribed{kind}: {values['error']}" if values["error"] else f"Not transcribed{kind}."
    audio = f"{values['duration']} of audio" if values["duration"] else "The audio"
    language = f" ({values['language']})" if values["language"] else ""
    took = f" in {values['took']}" if values["took"] else ""
    return f"{audio}{language}, transcribed{took}."


def _where(body: Mapping[str, Any], results: list[str], failed: bool) -> str:
    """Where to look, relative to the folders a person knows: "Results: outbox/a.txt, ..." or
    "Kept in failed/a.mp3 with its report"."""
    if failed:
        source = (body.get("source") or {}).get("relative")
        return f"Kept in failed/{source} with its report." if source else ""
    if not results:
        return ""
    shown = ", ".join(f"outbox/{name}" if not name.startswith("/") else name
                      for name in results[:SHOWN_RESULTS])
    more = len(results) - SHOWN_RESULTS
    return f"Results: {shown}" + (f" and {more} more." if more > 0 else ".")


def describe_seconds(seconds: Any) -> str:
    """A duration as a person says it ("3 min 10 s"); "" when unknown."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return ""
    return describe_duration(max(seconds, 1.0) if seconds > 0 else 0.0)


def quote(text: str, words: int) -> str:
    """The first `words` words in quotes, "…" where more follow; "" for no text."""
    split = text.split()
    if not split:
        return ""
    shown = " ".join(split[:words])
    return f"“{shown}{'…' if len(split) > words else ''}”"


def first_words(files: Mapping[str, Path], words: int = NOTE_WORDS) -> str:
    """The transcript's first words, read from the start of a staged result (suffix -> path):
    the text file, else the JSON's segments, else a subtitle file's cue text. "" when none
    holds text (silence, a failed job with nothing kept) or none can be read."""
    for suffix in TEXT_FORMATS:
        path = files.get(suffix)
        if path is None:
            continue
        try:
            text = _text_of(suffix, path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        split = text.split()
        if split:
            return " ".join(split[:words])
    return ""


def _text_of(suffix: str, path: Path) -> str:
    if suffix == ".json":  # the whole file (segments come after nothing long): read as JSON
        segments = json.loads(path.read_text(encoding="utf-8")).get("segments") or []
        return " ".join(str(s.get("text", "")) for s in segments[:200])
    with path.open("rb") as handle:
        head = handle.read(READ_BYTES).decode("utf-8", "replace")
    if len(head) >= READ_BYTES:
        head = head.rsplit(None, 1)[0]  # a word cut by the read is not quoted
    lines = head.splitlines()
    if suffix == ".tsv":
        return " ".join(line.split("\t", 2)[-1] for line in lines[1:])
    if suffix in (".srt", ".vtt"):
        return " ".join(line for line in lines if line.strip() and not _CUE_TIMING.match(line))
    return head
