"""What changes the text, with the real pipeline on the CPU: a words file (names Whisper gets
wrong without it, right with it; a route's words in place of the daemon's; a sidecar's prompt),
the subtitle layout of a route (line width and count, highlighted words, Audacity labels), and
a model per route (the multilingual base model for German beside the bundled tiny.en, within a
budget that holds one of them: the other is evicted and loaded again).

The recordings and the names are the corpus's; bench/vocabulary.py measures the same effect over
more of them, and what the words cost.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.support.corpus import clip
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.models import multilingual_base, tiny_aligner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

#: Recordings with names in them, and the spelling of each name (their .txt references'):
#: tiny.en writes "Klaffon", "Swainheim", "Panerts", "Subiakal", "Freer" without help.
NAMED = {"misc_en/ami_ES2011a_headset0_40-46s.wav": ("Claflin",),
         "ljspeech/LJ001-0031.flac": ("Sweynheim", "Pannartz", "Subiaco"),
         "librispeech/3752-4944-0000.flac": ("Frere",)}
WORDS = ("# names in our recordings\nClaflin\nAbbie\nSweynheim\nPannartz\nSubiaco\nFrere\n"
         "Montreal Forced Aligner\nDashwood\nStrasburg\nBasle\nLubeck\nGutenberg\n")
GERMAN = "multilingual/de_picovoice_leopard.wav"
ENGLISH = "librispeech/2412-153948-0000.flac"


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(result: dict) -> str:
    return " ".join(s["text"] for s in result["segments"])


def _right(text: str, names: tuple[str, ...]) -> int:
    return sum(name in text for name in names)


def _drop(folders: Folders, corpus_path: str, name: str) -> None:
    target = folders.inbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clip(corpus_path).path, folders.root / "copying")
    shutil.move(folders.root / "copying", target)


def test_a_words_file_gets_the_names_right_and_a_routes_layout_is_its_own(folders: Folders) -> None:
    """Daemon-wide `model.hotwords_file`: the names come out right at the inbox's top level; a
    route with its own (unrelated) hotwords replaces them and the names come out as tiny.en hears
    them; a sidecar's `initial_prompt` gets them right again for its file. A `tv` route writes
    subtitles of at most 20 characters a line, 2 lines a cue, and Audacity labels; a `karaoke`
    route highlights each word."""
    (folders.root / "names.txt").write_text(WORDS, encoding="utf-8")
    folders.write_config(
        model={"hotwords_file": "names.txt"}, packing={"enabled": False},
        align={"enabled": False, "model": {"en": str(tiny_aligner())}},
        routes={"other": {"hotwords": "Zebra crossing"},
                "tv": {"align": True, "max_line_width": 20, "max_line_count": 2,
                       "formats": ["json", "srt", "aud"]},
                "karaoke": {"align": True, "highlight_words": True, "formats": ["json", "vtt"]}})
    with DaemonProcess(folders.config) as daemon:
        for path in NAMED:
            name = Path(path).name
            _drop(folders, path, name)
            _drop(folders, path, f"other/{name}")
        sidecar = "ljspeech/LJ001-0031.flac"
        (folders.inbox / "other" / "prompted").mkdir(parents=True)
        (folders.inbox / "other" / "prompted" / "LJ001-0031.flac.yaml").write_text(
            "initial_prompt: Sweynheim and Pannartz printed at Subiaco.\n")
        _drop(folders, sidecar, "other/prompted/LJ001-0031.flac")
        _drop(folders, ENGLISH, "tv/talk.flac")
        _drop(folders, ENGLISH, "karaoke/talk.flac")
        _drop(folders, ENGLISH, "plain.flac")
        expected = [Path(p).name for p in NAMED] + [f"other/{Path(p).name}" for p in NAMED] + [
            "other/prompted/LJ001-0031.flac", "tv/talk.flac", "karaoke/talk.flac", "plain.flac"]
        for name in expected:
            wait_until(lambda n=name: (folders.done / n).exists(), 600, f"{name} in done/")
        assert daemon.stop() == 0

    def outbox(name: str, suffix: str = ".json") -> Path:
        return (folders.outbox / name).with_suffix(suffix)

    with_words = sum(_right(_text(_json(outbox(Path(p).name))), names) for p, names in NAMED.items())
    without = sum(_right(_text(_json(outbox(f"other/{Path(p).name}"))), names) for p, names in NAMED.items())
    assert with_words == 5 and without == 0, (with_words, without)
    meta = _json(outbox(Path("ljspeech/LJ001-0031.flac").name))["transcribed"]
    assert meta["options"]["hotwords"].startswith("Claflin, Abbie, Sweynheim")
    prompted = _text(_json(outbox("other/prompted/LJ001-0031.flac")))
    assert _right(prompted, NAMED["ljspeech/LJ001-0031.flac"]) == 3, prompted

    tv = outbox("tv/talk.flac", ".srt").read_text()
    cues = [cue.splitlines()[2:] for cue in tv.strip().split("\n\n")]
    # whisperX counts a line's words without the spaces between them (docs/configuration.md).
    assert all(len(line.replace(" ", "")) <= 20 or " " not in line for cue in cues for line in cue), cues
    assert all(1 <= len(cue) <= 2 for cue in cues) and len(cues) > outbox("plain.flac", ".srt").read_text().count("-->")
    labels = [line.split("\t") for line in outbox("tv/talk.flac", ".aud").read_text().splitlines()]
    assert labels and all(len(label) == 3 and float(label[0]) <= float(label[1]) for label in labels)
    assert "<u>" in outbox("karaoke/talk.flac", ".vtt").read_text()


def test_a_route_runs_its_own_model_within_a_budget_for_one(folders: Folders) -> None:
    """`routes: {de: {model: {name: <the multilingual base model>}}}` beside the bundled tiny.en,
    with a budget that holds one of them: the German file is transcribed in German by base, the
    English ones by tiny.en; each change of model evicts the other (model.evicted,
    model.switched with its seconds), and every job's JSON names its model."""
    base = str(multilingual_base())
    folders.write_config(packing={"enabled": False}, align={"enabled": False},
                         models={"memory_budget": "150 MB", "max_wait_seconds": 0},
                         routes={"de": {"model": {"name": base}}})
    with DaemonProcess(folders.config) as daemon:
        budget = daemon.wait_for("models.budget")
        for corpus_path, name in ((ENGLISH, "first.flac"), (GERMAN, "de/leopard.wav"), (ENGLISH, "last.flac")):
            _drop(folders, corpus_path, name)
            wait_until(lambda n=name: (folders.done / n).exists(), 600, f"{name} in done/")
        switches = [e for e in daemon.events() if e.get("event") == "model.switched"]
        assert daemon.stop() == 0
    german = _json(folders.outbox / "de" / "leopard.json")
    english = [_json(folders.outbox / f"{n}.json") for n in ("first", "last")]
    assert german["transcribed"]["model"] == base and german["language"] == "de"
    assert re.search(r"\b(der|die|das|diesem)\b", _text(german).lower()), _text(german)
    assert all(e["transcribed"]["model"] == "tiny.en" and e["language"] == "en" for e in english)
    assert [(s["model"], s["evicted"]) for s in switches] == [(base, ["tiny.en"]), ("tiny.en", [base])]
    assert all(s["seconds"] > 0 for s in switches) and budget["budget_bytes"] == 150 * 10**6
    assert "model_switch" in german["transcribed"]["timings"]
