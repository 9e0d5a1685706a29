"""Looking at a library: subtitle names as Plex and Jellyfin write them, the skip marker, the
walk over a real folder tree, and subtitle streams inside a real container (made with ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from transcribed.config import Library
from transcribed.library.scan import (
    ScanCounts,
    embedded_subtitle_languages,
    media_stem,
    subtitle_languages,
    subtitle_name,
    walk,
)

EXTENSIONS = frozenset({"mkv", "mp4", "avi"})


def test_sibling_subtitles_count_for_the_language_their_name_says() -> None:
    names = ["Movie (2010).mkv", "Movie (2010).en.srt", "Movie (2010).ger.forced.srt",
             "Movie (2010).pt-BR.vtt", "Movie (2010).srt", "Movie (2010).fr.txt",
             "Movie (2010) Extended.es.srt", "Movie (2010).nl.srt.part"]
    assert subtitle_languages("Movie (2010)", names) == {"en", "de", "pt"}


def test_a_subtitle_without_a_language_word_counts_for_none() -> None:
    assert subtitle_languages("Film", ["Film.srt", "Film.forced.srt", "Film.transcribed.srt"]) == set()


def test_subtitle_names_are_what_media_servers_read() -> None:
    assert subtitle_name("Movie (2010)", "en", None, "srt") == "Movie (2010).en.srt"
    assert subtitle_name("Movie (2010)", "en", "transcribed", "srt") == "Movie (2010).en.transcribed.srt"
    assert subtitle_name("Movie (2010)", "de", "forced", "vtt") == "Movie (2010).de.forced.vtt"
    assert media_stem("Show.S01E02.Title.mkv") == "Show.S01E02.Title"


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_walk_finds_media_missing_a_subtitle_and_skips_what_it_must(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    want = _touch(lib / "Movies" / "Movie (2010)" / "Movie (2010).mkv")
    _touch(lib / "Movies" / "Done (2011)" / "Done (2011).mp4")
    _touch(lib / "Movies" / "Done (2011)" / "Done (2011).eng.srt")
    _touch(lib / "Movies" / "Done (2011)" / "Done (2011).de.forced.srt")
    only_de = _touch(lib / "Shows" / "S01" / "Show.S01E01.mkv")
    _touch(lib / "Shows" / "S01" / "Show.S01E01.de.srt")
    _touch(lib / "Extras" / ".transcribed-skip", "")
    _touch(lib / "Extras" / "deep" / "clip.mkv")  # under the marker: skipped with its folder
    _touch(lib / ".thumbs" / "hidden.mkv")
    _touch(lib / "Movies" / "copying.mkv.part")
    _touch(lib / "Movies" / "poster.jpg")
    library = Library(path=lib, languages=("en", "de"))
    counts = ScanCounts()
    found = {f.path: f.missing for f in walk(library, EXTENSIONS, counts)}
    assert found == {want: ("en", "de"), only_de: ("en",)}
    assert (counts.media, counts.with_subtitles, counts.skipped_folders) == (3, 1, 1)


def test_the_walk_records_size_and_whole_second_mtime(tmp_path: Path) -> None:
    media = _touch(tmp_path / "lib" / "a.mkv", "12345")
    (found,) = walk(Library(path=tmp_path / "lib"), EXTENSIONS, ScanCounts())
    assert found.key == (5, int(media.stat().st_mtime))


@pytest.fixture
def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        if IN_CI:
            pytest.fail("ffmpeg is needed to make a container with a subtitle stream")
        pytest.skip("ffmpeg is not installed")
    return path


def test_a_subtitle_stream_inside_the_container_is_read_by_language(tmp_path: Path, ffmpeg: str) -> None:
    srt = _touch(tmp_path / "s.srt", "1\n00:00:00,000 --> 00:00:01,000\nHallo\n")
    mkv = tmp_path / "with_subs.mkv"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-i", str(srt), "-map", "0", "-map", "1", "-c:a", "aac", "-c:s", "srt",
                    "-metadata:s:s:0", "language=ger", str(mkv)], check=True)
    plain = tmp_path / "plain.mkv"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", str(plain)], check=True)
    assert embedded_subtitle_languages(mkv) == {"de"}
    assert embedded_subtitle_languages(plain) == set()
    assert embedded_subtitle_languages(srt) == set()  # not a container: no streams, no error


def test_a_library_scan_takes_its_own_extensions_and_passes_the_ledgers_files(tmp_path: Path) -> None:
    """LibrarySource.scan_if_due over a real tree: `extensions` keeps theme music out; a file the
    ledger records (same path, size, mtime) is passed by; one changed since is waiting again."""
    import yaml

    from transcribed.config import load_config
    from transcribed.library.ledger import Ledger, file_key
    from transcribed.library.source import LibrarySource
    from transcribed.operations.stats import Stats
    from transcribed.spool.folder import WorkFolder

    lib = tmp_path / "lib"
    episode = _touch(lib / "Show" / "Show.S01E01.mkv")
    done = _touch(lib / "Show" / "Show.S01E02.mkv")
    changed = _touch(lib / "Show" / "Show.S01E03.mkv")
    _touch(lib / "Show" / "theme.mp3")
    config_path = tmp_path / "transcribed.yaml"
    config_path.write_text(yaml.safe_dump({
        "folders": {name: name for name in ("inbox", "outbox", "done", "failed", "state")},
        "libraries": [{"path": "lib", "extensions": ["mkv"]}]}))
    ledger = Ledger(tmp_path / "state")
    ledger.record("id-done", "done", done, file_key(done) or (0, 0))
    ledger.record("id-changed", "failed", changed, file_key(changed) or (0, 0))
    changed.write_text("re-muxed, longer")
    config = load_config(config_path)
    spool = WorkFolder(config)
    spool.prepare()
    libraries = LibrarySource(config, spool, Stats())
    libraries.prepare()
    libraries.scan_if_due(now=0.0)
    assert libraries.waiting() == [episode, changed]
    spool.retire()
