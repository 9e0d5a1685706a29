"""Opening what inbox writers leave (untrusted.py, durable.fsync_file, audio.decode, the sidecar
reader), on real special files: links, FIFOs, sockets, a file swapped for a link or a FIFO just
before the open. Nothing here may block: a FIFO opened for reading would wait for ever, so each
FIFO test would hang (and the suite's timeout fail it) if the open were not refused."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from structlog.testing import capture_logs

from tests.support.media import write_wav
from transcribed import durable
from transcribed.errors import BadInput
from transcribed.transcription.audio import decode, memory_limit
from transcribed.transcription.options import SIDECAR_MAX_BYTES, read_sidecar
from transcribed.transcription.untrusted import (
    LinkPolicy,
    kind_of,
    open_regular,
    read_limited,
    refuse_unless_regular,
)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "real.wav", np.zeros(16_000, dtype=np.float32))


@pytest.fixture
def bound_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock.wav"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    try:
        yield path
    finally:
        server.close()


def _refused(call: object, *args: object) -> BadInput:
    with pytest.raises(BadInput) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_a_regular_file_is_opened_and_read_blocking(wav: Path) -> None:
    """The descriptor handed on is a regular file with O_NONBLOCK cleared again."""
    with open_regular(wav) as file:
        assert os.get_blocking(file.fileno())
        assert file.read(4) == b"RIFF"


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wav")
    error = _refused(open_regular, tmp_path / "pipe.wav")
    assert error.kind == "not_a_regular_file" and "FIFO" in str(error)


def test_a_socket_is_refused(bound_socket: Path) -> None:
    error = _refused(open_regular, bound_socket)
    assert error.kind == "not_a_regular_file" and "socket" in str(error)


def test_a_link_is_refused_unless_followed_into_a_configured_root(tmp_path: Path, wav: Path) -> None:
    """No policy: refused, saying where it points. follow_symlinks: only into symlink_roots."""
    private, shared = tmp_path / "private", tmp_path / "shared"
    private.mkdir()
    shared.mkdir()
    secret = (private / "secret.wav")
    secret.write_bytes(wav.read_bytes())
    (shared / "ok.wav").write_bytes(wav.read_bytes())
    (tmp_path / "link.wav").symlink_to(secret)
    (tmp_path / "good.wav").symlink_to(shared / "ok.wav")
    error = _refused(open_regular, tmp_path / "link.wav")
    assert error.kind == "not_a_regular_file" and str(secret) in str(error)
    policy = LinkPolicy(follow=True, roots=(shared,))
    assert "outside" in str(_refused(open_regular, tmp_path / "link.wav", policy))
    with open_regular(tmp_path / "good.wav", policy) as file:
        assert file.read(4) == b"RIFF"


def test_a_link_to_a_fifo_inside_a_root_is_still_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.wav").symlink_to(tmp_path / "pipe")
    error = _refused(open_regular, tmp_path / "link.wav", LinkPolicy(True, (tmp_path,)))
    assert "FIFO" in str(error)


@pytest.mark.parametrize("swap_in", ["link", "fifo"])
def test_a_file_swapped_after_the_check_is_caught_at_the_open(tmp_path: Path, wav: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              swap_in: str) -> None:
    """The lstat saw a regular file; a link or a FIFO takes its place before os.open: the open's
    O_NOFOLLOW refuses the link, O_NONBLOCK keeps the FIFO from blocking and fstat refuses it."""
    target = tmp_path / "talk.wav"
    target.write_bytes(wav.read_bytes())

    def swapped(path: Path, policy: LinkPolicy = LinkPolicy()) -> Path:
        checked = refuse_unless_regular(path, policy)  # sees the regular file
        target.unlink()
        if swap_in == "link":
            target.symlink_to(wav)
        else:
            os.mkfifo(target)
        return checked

    monkeypatch.setattr("transcribed.transcription.untrusted.refuse_unless_regular", swapped)
    error = _refused(open_regular, target)
    assert error.kind == "not_a_regular_file" and "before it was opened" in str(error)


def test_fsync_file_never_opens_a_fifo(tmp_path: Path) -> None:
    """The finish path's fsync once blocked for ever on a FIFO from the inbox (issue 13)."""
    os.mkfifo(tmp_path / "pipe.wav")
    done = threading.Event()
    threading.Thread(target=lambda: (durable.fsync_file(tmp_path / "pipe.wav"), done.set()),
                     daemon=True).start()
    assert done.wait(5), "fsync_file blocked on a FIFO"


def test_a_fifo_and_a_link_are_moved_as_themselves(tmp_path: Path, wav: Path) -> None:
    """move_no_clobber moves the entry (a hard link of the link or FIFO), never its target."""
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "link.wav").symlink_to(wav)
    (tmp_path / "out").mkdir()
    for name in ("pipe.wav", "link.wav"):
        assert durable.move_no_clobber(tmp_path / name, tmp_path / "out" / name)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "out" / "pipe.wav").st_mode)
    assert os.readlink(tmp_path / "out" / "link.wav") == str(wav)


def test_decode_refuses_special_files_with_what_they_are(tmp_path: Path, wav: Path,
                                                         bound_socket: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "link.wav").symlink_to(wav)
    for path, words in ((tmp_path / "pipe.wav", "FIFO"), (bound_socket, "socket"),
                        (tmp_path / "link.wav", "symbolic link")):
        error = _refused(decode, path)
        assert error.kind == "not_a_regular_file" and words in str(error)
    assert decode(wav).seconds == pytest.approx(1.0)


def test_audio_longer_than_the_limit_is_refused_by_its_header(tmp_path: Path) -> None:
    """Both figures in the message; nothing decoded (the header alone decides)."""
    path = write_wav(tmp_path / "long.wav", np.zeros(16_000 * 30, dtype=np.float32))
    error = _refused(decode, path, False, 10.0)
    assert error.kind == "too_long"
    assert "declares 30.00 s" in str(error) and "(10 s" in str(error)
    assert decode(path, max_seconds=60.0).seconds == pytest.approx(30.0)


def test_the_memory_limit_is_the_cgroup_limit_when_below_the_ram(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text(f"{2 << 30}\n")
    assert memory_limit(tmp_path) == (2 << 30, f"cgroup limit {tmp_path / 'memory.max'}")
    (tmp_path / "memory.max").write_text("max\n")
    assert memory_limit(tmp_path)[1] == "RAM"


def test_read_limited_reads_no_more_than_the_limit_plus_one(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert read_limited(tmp_path / "big", 100) == b"x" * 100
    assert _refused(read_limited, tmp_path / "big", 99).kind == "too_large"


def test_kinds_are_said_in_words() -> None:
    assert kind_of(stat.S_IFIFO) == "a FIFO (named pipe)"
    assert kind_of(stat.S_IFCHR) == "a character device"
    assert kind_of(stat.S_IFLNK) == "a symbolic link"


# --- sidecars ----------------------------------------------------------------------------------

def test_a_sidecar_over_the_size_limit_fails_its_job(tmp_path: Path) -> None:
    sidecar = tmp_path / "talk.wav.yaml"
    sidecar.write_text("initial_prompt: " + "x" * SIDECAR_MAX_BYTES + "\n")
    error = _refused(read_sidecar, sidecar)
    assert error.kind == "bad_sidecar" and "larger than 64 KiB" in str(error)


def test_a_sidecar_with_aliases_is_refused_before_it_expands(tmp_path: Path) -> None:
    """A "billion laughs": nine levels of ten aliases would be 10^9 strings."""
    lines = ['a0: &a0 "lol"'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    sidecar = tmp_path / "talk.wav.yaml"
    sidecar.write_text("\n".join(lines) + "\nlanguage: *a9\n")
    error = _refused(read_sidecar, sidecar)
    assert error.kind == "bad_sidecar" and "aliases" in str(error)


def test_a_deeply_nested_json_sidecar_is_refused(tmp_path: Path) -> None:
    sidecar = tmp_path / "talk.wav.json"
    sidecar.write_text("[" * 30_000 + "]" * 30_000)
    assert _refused(read_sidecar, sidecar).kind == "bad_sidecar"


def test_a_sidecar_that_is_a_fifo_or_a_link_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a.wav.yaml")
    secret = tmp_path / "secret.yaml"
    secret.write_text("language: de\n")
    (tmp_path / "b.wav.yaml").symlink_to(secret)
    for name in ("a.wav.yaml", "b.wav.yaml"):
        error = _refused(read_sidecar, tmp_path / name)
        assert error.kind == "not_a_regular_file" and error.args[0].startswith(f"sidecar {name}:")


def test_free_names_beside_stay_within_name_max(tmp_path: Path) -> None:
    """`x.2.json` for a name already at the limit is shortened with a hash, not ENAMETOOLONG."""
    from transcribed.spool.finish import NAME_MAX, free_name_beside

    long_name = "a" * (NAME_MAX - len(".json")) + ".json"
    (tmp_path / long_name).write_text("{}")
    beside = free_name_beside(tmp_path / long_name)
    assert len(os.fsencode(beside.name)) <= NAME_MAX and beside.name.endswith(".2.json")
    beside.write_text("{}")  # a real name on a real filesystem


def test_a_damaged_plan_is_held_and_retried_not_raised(tmp_path: Path) -> None:
    """A plan.json that is not JSON: the job is held (retried later, logged), the caller goes on."""
    from transcribed.config import Folders
    from transcribed.spool.finish import PLAN_FILE, Finisher

    folders = Folders(*(tmp_path / n for n in ("inbox", "outbox", "done", "failed", "state")))
    job_dir = tmp_path / "state" / "work" / "w" / "job1"
    (job_dir / "src").mkdir(parents=True)
    (job_dir / PLAN_FILE).write_text("{not json")
    finisher = Finisher(folders)
    with capture_logs() as logged:
        assert finisher.resume(job_dir) is False
        finisher.retry_held(now=1e12)
    refused = [entry for entry in logged if entry["event"] == "job.move_refused"]
    # Held, then retried, refused again: the delay doubled; the job never left its folder.
    assert [(entry["job_id"], entry["retry_in_s"]) for entry in refused] == [("job1", 1.0), ("job1", 2.0)]
    assert (job_dir / PLAN_FILE).read_text() == "{not json" and (job_dir / "src").is_dir()


def test_sidecars_and_routes_can_set_only_transcription_options(tmp_path: Path) -> None:
    """Whoever writes to the inbox writes sidecars: no key of theirs names a path, a command or
    a URL (the hooks, folders and words files are the config's alone): every JobOptions field is
    a plain value (text, number, flag, a list of words, a model among those the config offers:
    test_a_sidecar_may_choose_only_a_model_the_config_offers), none is named like a place or a
    program, and a route adds only which outcomes fire the config's own hooks and its words file."""
    import dataclasses
    import typing

    from transcribed.config import JobOptions, Route

    for name, hint in typing.get_type_hints(JobOptions).items():
        assert "Path" not in str(hint), name
        assert not any(word in name for word in ("path", "dir", "file", "command", "url",
                                                 "token", "secret", "hook")), name
    assert {f.name for f in dataclasses.fields(Route)} - {f.name for f in dataclasses.fields(JobOptions)} \
        == {"hooks_events", "hotwords_file"}
    for key in ("command", "url", "folders", "hooks", "token_file", "hotwords_file", "hooks_events"):
        sidecar = tmp_path / f"{key}.wav.yaml"
        sidecar.write_text(f"{key}: /etc/passwd\n")
        error = _refused(read_sidecar, sidecar)
        assert error.kind == "bad_sidecar" and "unknown key" in str(error)


def test_a_sidecar_may_choose_only_a_model_the_config_offers(tmp_path: Path) -> None:
    """A sidecar's `model` names one of the config's models (model.name, a route's, a library's,
    models.choices): a path, a hub id or a size the config does not name fails the job as
    bad_sidecar, before anything is downloaded or loaded."""
    from transcribed.config import parse_config
    from transcribed.config.models import ModelChoice
    from transcribed.engine.base import EngineSettings
    from transcribed.engine.catalogue import Catalogue
    from transcribed.transcription.options import job_options

    config = parse_config({"model": {"name": "tiny.en"}, "models": {"choices": ["base"]}})
    settings = EngineSettings("x", "", "local", "cpu", 0, "int8", 4, 1)
    offer = Catalogue(config.default_model, {choice: settings for choice in config.named_models()})
    for name in ("/etc/passwd", "../../models/evil", "openai/whisper-large-v3", "large-v3"):
        (tmp_path / "a.wav.yaml").write_text(f"model: {{name: {name!r}}}\n")
        with pytest.raises(BadInput) as refused:
            job_options(config, PurePosixPath("a.wav"), tmp_path / "a.wav.yaml", offer=offer)
        error = refused.value
        assert error.kind == "bad_sidecar" and "not among the models" in str(error), name
    (tmp_path / "a.wav.yaml").write_text("model: {name: base, beam_size: 2}\n")
    options = job_options(config, PurePosixPath("a.wav"), tmp_path / "a.wav.yaml", offer=offer)
    assert (options.model, options.beam_size) == (ModelChoice("base"), 2)


@pytest.mark.parametrize(("section", "message"), [
    ({"daemon": {"umask": "0999"}}, "daemon.umask: expected an octal mode"),
    ({"daemon": {"umask": "rwx"}}, "daemon.umask: expected an octal mode"),
    ({"input": {"follow_symlinks": True, "symlink_roots": ["relative/dir"]}}, "expected absolute folders"),
    ({"input": {"symlink_roots": ["/srv/shared"]}}, "input.follow_symlinks is false"),
    ({"input": {"max_audio_seconds": 0}}, "input.max_audio_seconds: expected a number above 0"),
])
def test_the_new_keys_are_checked(section: dict[str, dict[str, object]], message: str) -> None:
    from transcribed.config import parse_config
    from transcribed.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config(section)


def test_umask_reads_octal_text_and_yaml_octal_numbers() -> None:
    from transcribed.config.checks import parse_umask

    assert parse_umask("0007") == parse_umask("0o007") == parse_umask(0o007) == 0o007
    assert parse_umask("027") == 0o027


def test_a_subfolder_swapped_for_a_link_before_the_claim_sends_no_rename_through_it(tmp_path: Path) -> None:
    """The scan saw inbox/sub/x.wav; sub became a link to a folder of the daemon's own (another
    user's done/, say): the claim refuses (O_NOFOLLOW on each folder), the file there stays."""
    from transcribed.spool.claim import Claims

    inbox, private = tmp_path / "inbox", tmp_path / "private"
    (inbox / "sub").mkdir(parents=True)
    private.mkdir()
    (private / "x.wav").write_bytes(b"RIFF")
    claims = Claims(tmp_path / "work")
    (inbox / "sub" / "x.wav").write_bytes(b"RIFF")
    ok = claims.claim(inbox / "sub" / "x.wav", PurePosixPath("sub/x.wav"))
    assert ok is not None and ok.source.exists()
    (inbox / "sub").rmdir()
    (inbox / "sub").symlink_to(private)
    assert claims.claim(inbox / "sub" / "x.wav", PurePosixPath("sub/x.wav")) is None
    assert (private / "x.wav").exists()
