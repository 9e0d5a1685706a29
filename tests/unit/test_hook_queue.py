"""Completion hooks on real temp folders: the config keys, who may set them, which outcomes fire,
the pending record written before a job's moves, and delivery only once the files are in place."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.support.daemon import wait_until
from transcribed.config import Config, Folders, Hooks, Route, load_config, parse_config
from transcribed.errors import BadInput, ConfigError
from transcribed.hooks import Hooks as HookQueue
from transcribed.hooks import wanted
from transcribed.hooks.calls import environment, signature
from transcribed.spool.claim import Claims
from transcribed.spool.finish import Finisher
from transcribed.spool.jobs import Job, JobRecords
from transcribed.spool.workers import WorkerId
from transcribed.transcription.options import read_sidecar


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


class TestConfig:
    """The `hooks` section and the routes' `hooks_events`: defaults, checks, paths."""

    def test_defaults_fire_nothing_until_a_command_or_url_is_set(self) -> None:
        hooks = Config().hooks
        assert (hooks.command, hooks.url, hooks.secret_file) == (None, None, None)
        assert (hooks.timeout_seconds, hooks.max_attempts, hooks.events) == (60.0, 5, ("done", "failed"))

    @pytest.mark.parametrize(("hooks", "message"), [
        ({"command": "curl -X POST http://x"}, "hooks.command: expected a list"),
        ({"command": []}, "hooks.command: expected a list: the program"),
        ({"url": "file:///etc/passwd"}, "hooks.url: expected an http:// or https:// URL"),
        ({"url": "http://"}, "hooks.url: expected an http:// or https:// URL"),
        ({"events": ["done", "requeued"]}, "hooks.events: expected some of done, failed"),
        ({"max_attempts": 0}, "hooks.max_attempts: expected a positive integer"),
        ({"timeout_seconds": 0}, "hooks.timeout_seconds: expected a number above 0"),
        ({"secret": "x"}, "hooks.secret: unknown key (did you mean 'secret_file'?)"),
    ])
    def test_values_that_cannot_work_are_refused_naming_the_key(self, hooks: dict, message: str) -> None:
        assert _error({"hooks": hooks}).startswith(message)

    def test_a_routes_hooks_events_are_checked(self) -> None:
        assert _error({"routes": {"calls": {"hooks_events": ["ok"]}}}).startswith(
            "routes.calls.hooks_events: expected some of done, failed")

    def test_secret_file_and_a_relative_program_count_from_the_config_folder(self, tmp_path: Path) -> None:
        config_file = tmp_path / "etc" / "transcribed.yaml"
        config_file.parent.mkdir()
        config_file.write_text("hooks:\n  command: [./refresh.sh, --all]\n  secret_file: hook.key\n"
                               "routes:\n  quiet: {hooks_events: []}\n")
        config = load_config(config_file)
        assert config.hooks.command == (str(tmp_path / "etc" / "refresh.sh"), "--all")
        assert config.hooks.secret_file == tmp_path / "etc" / "hook.key"
        assert config.routes["quiet"] == Route(hooks_events=())

    def test_the_documented_config_file_states_the_hooks_defaults(self) -> None:
        shipped = load_config(Path(__file__).resolve().parents[2] / "config" / "transcribed.yaml")
        assert shipped.hooks == Config().hooks

    def test_a_bare_program_name_is_left_for_path_lookup(self, tmp_path: Path) -> None:
        config_file = tmp_path / "transcribed.yaml"
        config_file.write_text("hooks: {command: [curl, -fsS, 'http://127.0.0.1/x']}\n")
        assert load_config(config_file).hooks.command == ("curl", "-fsS", "http://127.0.0.1/x")


def test_every_yaml_example_in_docs_hooks_md_passes_the_loader() -> None:
    """The documentation's configs are real configs."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "hooks.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        config = parse_config(yaml.safe_load(block))
        assert config.hooks.command or config.hooks.url


class TestOnlyTheDaemonsConfig:
    """Whoever can write to the inbox must not choose what the daemon runs or calls."""

    @pytest.mark.parametrize("text", [
        "hooks_events: [done]\n",
        "hooks: {command: [touch, /tmp/owned]}\n",
        "hooks: {url: 'http://127.0.0.1:1/'}\n",
    ])
    def test_a_sidecar_naming_hooks_keys_is_bad_input(self, tmp_path: Path, text: str) -> None:
        sidecar = tmp_path / "talk.mp3.yaml"
        sidecar.write_text(text)
        with pytest.raises(BadInput) as caught:
            read_sidecar(sidecar)
        assert caught.value.kind == "bad_sidecar"
        assert "unknown key" in str(caught.value)


class TestWhichOutcomesFire:
    """hooks.events, overridden by the deepest route's hooks_events."""

    config = parse_config({
        "hooks": {"url": "http://127.0.0.1:9/", "events": ["failed"]},
        "routes": {"media": {"hooks_events": ["done", "failed"]}, "media/drafts": {"hooks_events": []},
                   "ru": {"language": "ru"}},
    })

    @pytest.mark.parametrize(("relpath", "outcome", "fires"), [
        ("a.wav", "failed", True),
        ("a.wav", "done", False),
        ("media/a.wav", "done", True),
        ("media/drafts/a.wav", "failed", False),
        ("ru/a.wav", "done", False),  # a route without hooks_events keeps hooks.events
        ("ru/a.wav", "failed", True),
    ])
    def test_events(self, relpath: str, outcome: str, fires: bool) -> None:
        assert wanted(self.config, PurePosixPath(relpath), outcome) is fires


def test_a_secret_file_that_cannot_be_read_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, url="http://127.0.0.1:9/", secret_file=tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="hooks.secret_file: cannot read"):
        HookQueue(config, WorkerId("h", 1, 2))
    (tmp_path / "empty.key").write_text("\n")
    config = _config(tmp_path / "2", url="http://127.0.0.1:9/", secret_file=tmp_path / "empty.key")
    with pytest.raises(ConfigError, match="is empty"):
        HookQueue(config, WorkerId("h", 1, 2))


def test_signature_is_hmac_sha256_of_the_body() -> None:
    """RFC 4231, test case 2."""
    assert signature(b"Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_environment_names_the_main_fields_and_leaves_absent_ones_unset() -> None:
    body = {"job_id": "j1", "outcome": "done", "file": "talks/a.mp3", "language": "de",
            "audio_seconds": 3.5, "error": None, "error_report": None, "log": None,
            "source": {"relative": "talks/a.mp3", "path": "/d/talks/a.mp3"},
            "results": [{"format": "srt", "relative": "talks/a.srt", "path": "/o/talks/a.srt"},
                        {"format": "log.jsonl", "relative": "talks/a.log.jsonl", "path": "/o/talks/a.log.jsonl"}]}
    assert environment(body) == {
        "TRANSCRIBED_JOB_ID": "j1", "TRANSCRIBED_OUTCOME": "done", "TRANSCRIBED_FILE": "talks/a.mp3",
        "TRANSCRIBED_SOURCE": "/d/talks/a.mp3", "TRANSCRIBED_SOURCE_RELATIVE": "talks/a.mp3",
        "TRANSCRIBED_LANGUAGE": "de", "TRANSCRIBED_AUDIO_SECONDS": "3.5",
        "TRANSCRIBED_RESULT_SRT": "/o/talks/a.srt", "TRANSCRIBED_RESULT_LOG_JSONL": "/o/talks/a.log.jsonl",
        "TRANSCRIBED_RESULT_DIR": "/o/talks",
    }


# --- the pending record and the moves ---------------------------------------------------------------

def _config(root: Path, **hooks: object) -> Config:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    for path in (folders.inbox, folders.outbox, folders.done, folders.failed, folders.state):
        path.mkdir(parents=True)
    return Config(folders=folders, hooks=Hooks(**hooks))  # type: ignore[arg-type]


def _job(config: Config, relpath: str) -> Job:
    source = config.folders.inbox / relpath
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"audio")
    claims = Claims(config.folders.state / "work" / WorkerId("h", 1, 2).name)
    job = claims.claim(source, PurePosixPath(relpath))
    assert job is not None
    JobRecords(WorkerId("h", 1, 2)).start_attempt(job)
    (job.staging / "a.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    return job


def _pending(config: Config) -> list[Path]:
    return sorted((config.folders.state / "hooks").glob("*.*.*/*.json"))


def test_the_pending_record_is_written_before_the_moves_and_delivered_only_after_them(tmp_path: Path) -> None:
    """A refused move (the outbox's subfolder is a file) holds the job: its delivery is recorded
    but waits; once the folder takes the files, it runs once, seeing the results in place."""
    seen = tmp_path / "seen.json"
    script = ("import json, os, sys; body = json.load(sys.stdin); "
              "json.dump({'body': body, 'srt': os.path.exists(os.environ['TRANSCRIBED_RESULT_SRT'])}, "
              f"open({str(seen)!r}, 'w'))")
    config = _config(tmp_path, command=(sys.executable, "-c", script), retry_delay_seconds=0.1)
    hooks = HookQueue(config, WorkerId("h", 1, 2))
    finisher = Finisher(config.folders, before_moves=hooks.before_moves)
    job = _job(config, "talks/a.wav")
    (config.folders.outbox / "talks").write_text("a file where the results' folder should be")
    hooks.job_ended(job, "done", {".srt": job.staging / "a.srt"}, metadata={"language": "en"})
    finisher.complete(job, {".srt": job.staging / "a.srt"})
    assert finisher.is_held(job)
    assert len(_pending(config)) == 1
    hooks.deliver_due()  # one pass of the hook thread, driven here
    assert not seen.exists()
    (config.folders.outbox / "talks").unlink()
    finisher.retry_held(now=time.monotonic() + 3600)
    assert not finisher.is_held(job)
    hooks.deliver_due()
    report = json.loads(seen.read_text())
    assert report["srt"] is True
    assert report["body"]["job_id"] == job.id
    assert report["body"]["results"] == [{"format": "srt", "relative": "talks/a.srt",
                                          "path": str(config.folders.outbox / "talks" / "a.srt")}]
    assert _pending(config) == []
    assert (config.folders.state / "hooks" / "delivered" / f"{job.id}.json").exists()


def test_a_requeued_job_with_a_note_left_by_a_crash_fires_nothing(tmp_path: Path) -> None:
    """The note says done, but the plan puts the file back in the inbox: no record."""
    config = _config(tmp_path, url="http://127.0.0.1:9/")
    hooks = HookQueue(config, WorkerId("h", 1, 2))
    job = _job(config, "a.wav")
    hooks.job_ended(job, "done", {".srt": job.staging / "a.srt"})
    Finisher(config.folders, before_moves=hooks.before_moves).requeue(job)
    assert (config.folders.inbox / "a.wav").exists()
    assert _pending(config) == []


def test_a_plan_carried_out_again_records_its_delivery_once(tmp_path: Path) -> None:
    """Each carrying out of a plan calls the step; a record pending or settled is not rewritten."""
    config = _config(tmp_path, url="http://127.0.0.1:9/")
    hooks = HookQueue(config, WorkerId("h", 1, 2))
    job = _job(config, "a.wav")
    hooks.job_ended(job, "failed", {}, error={"kind": "not_audio", "message": "m", "stage": "decode"})
    moves = [(job.source, config.folders.failed / "a.wav")]
    hooks.before_moves(job.dir, moves)
    (record,) = _pending(config)
    first = record.read_text()
    hooks.before_moves(job.dir, moves)
    assert _pending(config) == [record]
    assert record.read_text() == first
    record.unlink()
    (config.folders.state / "hooks" / "delivered").mkdir()
    (config.folders.state / "hooks" / "delivered" / record.name).write_text("{}")
    hooks.before_moves(job.dir, moves)
    assert _pending(config) == []


def test_stop_kills_a_running_command_and_keeps_its_delivery_pending(tmp_path: Path) -> None:
    """The thread ends on stop, a command in its middle is killed, its try not counted."""
    started = tmp_path / "started"
    script = f"import os, pathlib, time; pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(60)"
    config = _config(tmp_path, command=(sys.executable, "-c", script))
    hooks = HookQueue(config, WorkerId("h", 1, 2))
    job = _job(config, "a.wav")
    hooks.job_ended(job, "done", {".srt": job.staging / "a.srt"})
    Finisher(config.folders, before_moves=hooks.before_moves).complete(job, {".srt": job.staging / "a.srt"})
    hooks.start()
    pid = int(wait_until(lambda: started.exists() and started.read_text(), 10, "the command to start"))
    began = time.monotonic()
    hooks.stop()
    assert time.monotonic() - began < 5
    assert not Path(f"/proc/{pid}").exists()  # killed, and reaped
    assert not any(t.name == "hooks" for t in threading.enumerate())
    (record,) = _pending(config)
    assert json.loads(record.read_text())["targets"] == {}


def test_the_records_of_a_gone_worker_are_taken_over_and_a_live_ones_left(tmp_path: Path) -> None:
    """A worker whose work folder is gone, or whose process has ended, is gone: its pending
    deliveries move to us (and run); this process's own records, as another worker, stay put."""
    ran = tmp_path / "ran"
    ran.mkdir()
    script = f"import os, pathlib; pathlib.Path({str(ran)!r}, os.environ['TRANSCRIBED_JOB_ID']).touch()"
    config = _config(tmp_path / "t", command=(sys.executable, "-c", script))
    hooks_root = config.folders.state / "hooks"
    alive = WorkerId.of_this_process()
    ended = WorkerId(alive.host, 999_999_999, 5)  # this machine, no such pid
    forgotten = WorkerId(alive.host, 999_999_998, 5)
    ids = {}
    for owner in (alive, ended, forgotten):
        job = _job(config, f"{owner.pid}.wav")
        writer = HookQueue(config, owner)
        writer.job_ended(job, "done", {".srt": job.staging / "a.srt"})
        Finisher(config.folders, before_moves=writer.before_moves).complete(job, {".srt": job.staging / "a.srt"})
        ids[owner] = job.id
    (config.folders.state / "work" / alive.name).mkdir(parents=True)   # a live worker's folder
    (config.folders.state / "work" / ended.name).mkdir(parents=True)   # left by a crash
    me = HookQueue(config, WorkerId(alive.host, 1, 1))  # another daemon on this machine
    me.deliver_due()
    assert sorted(p.name for p in ran.iterdir()) == sorted([ids[ended], ids[forgotten]])
    assert sorted(p.stem for p in (hooks_root / "delivered").iterdir()) == sorted([ids[ended], ids[forgotten]])
    assert [p.stem for p in (hooks_root / alive.name).iterdir()] == [ids[alive]]
    assert not (hooks_root / ended.name).exists() and not (hooks_root / forgotten.name).exists()


def test_damaged_records_and_notes_cost_their_hook_only(tmp_path: Path) -> None:
    """A pending record that is not JSON, or lacks its keys, goes as it is to gave_up/ and the
    good one after it is delivered; a note damaged in the job's folder leaves the moves alone."""
    ran = tmp_path / "ran"
    script = f"import pathlib; pathlib.Path({str(ran)!r}).touch()"
    config = _config(tmp_path / "t", command=(sys.executable, "-c", script))
    me = WorkerId("h", 1, 2)
    hooks = HookQueue(config, me)
    finisher = Finisher(config.folders, before_moves=hooks.before_moves)
    broken = _job(config, "broken.wav")
    (broken.dir / "hook.json").write_text('{"outcome": "done"}')  # valid JSON, no keys
    finisher.complete(broken, {".srt": broken.staging / "a.srt"})
    assert (config.folders.done / "broken.wav").exists() and not broken.dir.exists()
    good = _job(config, "zz-good.wav")
    hooks.job_ended(good, "done", {".srt": good.staging / "a.srt"})
    finisher.complete(good, {".srt": good.staging / "a.srt"})
    mine = config.folders.state / "hooks" / me.name
    (mine / "00-not-json.json").write_text("{half a rec")
    (mine / "01-no-keys.json").write_text('{"note": {}}')
    hooks.deliver_due()
    assert ran.exists()
    gave_up = config.folders.state / "hooks" / "gave_up"
    assert (gave_up / "00-not-json.json").read_text() == "{half a rec"
    assert (gave_up / "01-no-keys.json").read_text() == '{"note": {}}'
    assert [p.stem for p in (config.folders.state / "hooks" / "delivered").iterdir()] == [good.id]
