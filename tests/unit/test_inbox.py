"""The inbox's name rules on real temp folders: which files are jobs, which sidecars are strays."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath

from transcribed.intake.inbox import Inbox
from transcribed.spool.sidecars import audio_named_by, sidecar_next_to, sidecars_of


def _inbox(root: Path) -> Inbox:
    root.mkdir(exist_ok=True)
    return Inbox(root, ["wav", "mp3"])


def _touch(path: Path, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_only_complete_visible_files_with_a_watched_extension_are_taken(tmp_path: Path) -> None:
    """Hidden names, copies in progress and other extensions wait; the extension's case does not matter."""
    inbox = _inbox(tmp_path / "inbox")
    for name in ("a.wav", "B.MP3", ".hidden.wav", "c.wav.part", "d.wav~", "e.txt", "wav", "f.mp3.yaml"):
        _touch(inbox.folder / name)
    _touch(inbox.folder / "sub" / "g.wav")
    _touch(inbox.folder / ".trash" / "h.wav")
    assert [inbox.relative(p) for p in inbox.scan()] == [
        PurePosixPath("B.MP3"), PurePosixPath("a.wav"), PurePosixPath("sub/g.wav")]


def test_a_sidecar_names_its_audio_by_the_audios_full_name() -> None:
    """`talk.mp3.yaml` belongs to `talk.mp3`; a plain `talk.yaml` is no sidecar."""
    assert audio_named_by("talk.mp3.yaml") == "talk.mp3"
    assert audio_named_by("talk.mp3.json") == "talk.mp3"
    assert audio_named_by("talk.mp3") is None


def test_the_sidecars_of_a_file_are_found_in_suffix_order(tmp_path: Path) -> None:
    """The one lookup the options, the claim and the finish share."""
    audio = _touch(tmp_path / "talk.mp3")
    assert sidecar_next_to(audio) is None and sidecars_of(audio) == {}
    json_sidecar, yaml_sidecar = _touch(tmp_path / "talk.mp3.json"), _touch(tmp_path / "talk.mp3.yaml")
    (tmp_path / "talk.mp3.yml").mkdir()  # not a file: not a sidecar
    assert sidecars_of(audio) == {".yaml": yaml_sidecar, ".json": json_sidecar}
    assert sidecar_next_to(audio) == yaml_sidecar


def test_a_sidecar_is_a_stray_only_when_old_and_its_audio_is_nowhere(tmp_path: Path) -> None:
    """Its audio present, or still being copied under a temporary name, keeps it waiting."""
    inbox = _inbox(tmp_path / "inbox")
    stray = _touch(inbox.folder / "gone.wav.yaml", age=100)
    _touch(inbox.folder / "young.wav.yaml")
    _touch(inbox.folder / "here.wav.yaml", age=100)
    _touch(inbox.folder / "here.wav")
    _touch(inbox.folder / "copying.wav.yaml", age=100)
    _touch(inbox.folder / "copying.wav.part")
    _touch(inbox.folder / "notes.txt.yaml", age=100)  # names no watched file: not ours
    assert inbox.stray_sidecars(older_than=50) == [stray]


def test_a_folder_is_read_again_only_when_changed_recently_or_on_the_full_walk(tmp_path: Path) -> None:
    """A change the folder's mtime does not show (mtime put back, as a filesystem without folder
    mtimes would) is found on the full walk, never lost; a recent mtime is always read again."""
    now = [0.0]
    inbox = Inbox(tmp_path / "inbox", ["wav"], full_walk_seconds=60, clock=lambda: now[0])
    inbox.folder.mkdir()
    _touch(inbox.folder / "a.wav")
    old = time.time() - 100
    os.utime(inbox.folder, (old, old))
    assert [p.name for p in inbox.scan()] == ["a.wav"]
    _touch(inbox.folder / "b.wav")
    os.utime(inbox.folder, (old, old))  # the change hidden from the mtime
    now[0] = 30.0
    assert [p.name for p in inbox.scan()] == ["a.wav"]  # the listing kept: one lstat, no read
    now[0] = 61.0
    assert [p.name for p in inbox.scan()] == ["a.wav", "b.wav"]  # the full walk finds it
    _touch(inbox.folder / "c.wav")  # a fresh mtime: read again at once
    now[0] = 62.0
    assert [p.name for p in inbox.scan()] == ["a.wav", "b.wav", "c.wav"]


def test_links_fifos_and_sockets_are_offered_and_named_not_regular(tmp_path: Path) -> None:
    """They are jobs (to fail with not_a_regular_file), and need no settling; a link to a folder
    is not descended into."""
    inbox = _inbox(tmp_path / "inbox")
    _touch(inbox.folder / "a.wav")
    os.mkfifo(inbox.folder / "pipe.wav")
    (inbox.folder / "link.wav").symlink_to(tmp_path / "nowhere")
    (tmp_path / "elsewhere").mkdir()
    _touch(tmp_path / "elsewhere" / "x.wav")
    (inbox.folder / "dir").symlink_to(tmp_path / "elsewhere")
    assert [p.name for p in inbox.scan()] == ["a.wav", "link.wav", "pipe.wav"]
    assert [p.name for p in inbox.not_regular()] == ["link.wav", "pipe.wav"]


def test_a_file_the_inbox_will_never_take_is_ignored_with_why(tmp_path: Path) -> None:
    """An unwatched extension, no extension, a sidecar of an unwatched name: ignored, each with
    its reason. Taken names, hidden and temporary names (they wait to be renamed) and sidecars of
    watched names (they travel with their audio, or go to failed/ as strays) are not."""
    inbox = _inbox(tmp_path / "inbox")
    for name in ("a.wav", "clip.m2ts", "README", "notes.txt.yaml", "notes.json", ".DS_Store",
                 ".hidden.m2ts", "talk.mp3.part", "c.wav.crdownload", "talk.mp3.yaml", "gone.wav.json"):
        _touch(inbox.folder / name)
    _touch(inbox.folder / "sub" / "photo.JPG")
    _touch(inbox.folder / ".trash" / "old.m2ts")
    inbox.scan()
    ignored = {str(inbox.relative(path)): why for path, why in inbox.ignored().items()}
    assert ignored == {
        "clip.m2ts": "its extension .m2ts is not in watch.extensions (rename it, or add m2ts to "
                     "watch.extensions)",
        "README": "it has no extension; the inbox takes only names ending in one of watch.extensions",
        "notes.txt.yaml": "a sidecar of 'notes.txt', a name the inbox never takes: its extension "
                          ".txt is not in watch.extensions (rename it, or add txt to watch.extensions)",
        "notes.json": "its extension .json is not in watch.extensions (rename it, or add json to "
                      "watch.extensions)",
        "sub/photo.JPG": "its extension .jpg is not in watch.extensions (rename it, or add jpg to "
                         "watch.extensions)",
    }


def test_what_is_ignored_follows_the_inbox(tmp_path: Path) -> None:
    """A file renamed to a watched name is taken, no longer ignored; a file gone is forgotten."""
    inbox = _inbox(tmp_path / "inbox")
    _touch(inbox.folder / "a.m2ts")
    _touch(inbox.folder / "b.xyz")
    inbox.scan()
    assert sorted(p.name for p in inbox.ignored()) == ["a.m2ts", "b.xyz"]
    (inbox.folder / "a.m2ts").rename(inbox.folder / "a.wav")
    (inbox.folder / "b.xyz").unlink()
    assert [p.name for p in inbox.scan()] == ["a.wav"]
    assert inbox.ignored() == {}
