"""The configuration: defaults, the documented file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transcribed.config import Config, load_config, parse_config, render_yaml, to_plain
from transcribed.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


def test_documented_default_file_is_the_built_in_default() -> None:
    """config/transcribed.yaml states the built-in defaults, with folders under ./data/."""
    from_file = load_config(REPO / "config" / "transcribed.yaml")
    built_in = Config()
    assert from_file.folders.inbox == REPO / "data" / "inbox"
    assert from_file.folders.state == REPO / "data" / "state"
    assert from_file.model == built_in.model.__class__(**{**built_in.model.__dict__,
                                                          "download_dir": REPO / "data" / "models"})
    for section in ("vad", "watch", "input", "jobs", "outputs", "oom", "batching", "overlap", "align",
                    "diarize", "routes", "hooks", "retention", "log", "metrics", "daemon", "models",
                    "schedule"):
        assert getattr(from_file, section) == getattr(built_in, section), section


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_runs_with_the_values_it_states(path: Path) -> None:
    """Each example in config/ passes the real loader, and every value it writes is the one the
    daemon runs with (none dropped or coerced away); relative paths resolve against the file."""
    stated = yaml.safe_load(path.read_text())
    loaded = to_plain(load_config(path))
    for section, keys in stated.items():
        for key, value in keys.items():
            relative = isinstance(value, str) and value.startswith("../")
            expected = str((path.parent / value).resolve()) if relative else value
            assert loaded[section][key] == expected, f"{path.name}: {section}.{key}"


#: The keys operators set first (README, docs/configuration.md), each with a value that is not
#: its default, so that reading it back proves the key is read and not silently defaulted.
OPERATOR_KEYS = {"folders.inbox": "in", "folders.outbox": "out", "folders.done": "done-here",
                 "folders.failed": "failed-here", "model.name": "base", "model.device": "cpu",
                 "model.compute_type": "int8", "model.batch_size": 8, "model.language": "de"}


def test_the_keys_operators_rely_on_exist_and_are_read() -> None:
    """folders.{inbox,outbox,done,failed} and model.{name,device,compute_type,batch_size,language}:
    each is in the defaults, and a value given for it is the value the config carries."""
    data: dict[str, dict[str, object]] = {}
    for dotted, value in OPERATOR_KEYS.items():
        section, key = dotted.split(".")
        data.setdefault(section, {})[key] = value
    given, defaults = to_plain(parse_config(data)), to_plain(Config())
    for dotted, value in OPERATOR_KEYS.items():
        section, key = dotted.split(".")
        assert key in defaults[section] and defaults[section][key] != value, dotted
        assert given[section][key] == value, dotted


def test_unknown_key_is_named_with_a_suggestion() -> None:
    """A typo names the key and the likely intent."""
    assert _error({"model": {"batchsize": 4}}) == "model.batchsize: unknown key (did you mean 'batch_size'?)"


def test_batch_size_zero_is_refused() -> None:
    """batch_size must be a positive integer or auto."""
    assert "model.batch_size" in _error({"model": {"batch_size": 0}})


def test_wrong_type_is_refused_with_the_key() -> None:
    """A string where a number belongs names the key and the value."""
    message = _error({"watch": {"settle_seconds": "soon"}})
    assert message.startswith("watch.settle_seconds: expected a number") and "'soon'" in message


def test_unknown_device_is_refused() -> None:
    """device is auto, cpu or cuda."""
    assert "model.device: expected one of auto, cpu, cuda" in _error({"model": {"device": "tpu"}})


def test_inbox_equal_to_outbox_is_refused() -> None:
    """Results written into the inbox would be picked up again."""
    assert "folders.outbox: must differ from folders.inbox" in _error(
        {"folders": {"inbox": "x", "outbox": "x"}})


def test_outbox_inside_inbox_is_refused() -> None:
    """The recursive watch would see the results as new input."""
    assert "folders.outbox: must not be inside folders.inbox" in _error(
        {"folders": {"inbox": "/srv/in", "outbox": "/srv/in/out"}})


@pytest.mark.parametrize(("vad", "message"), [
    ({"long_method": "webrtc"}, "vad.long_method: expected one of pyannote, silero, got 'webrtc'"),
    ({"long_seconds": -1}, "vad.long_seconds: expected 0 or more, got -1"),
    ({"recheck_seconds": -0.5}, "vad.recheck_seconds: expected 0 or more, got -0.5"),
    ({"pad_seconds": -0.1}, "vad.pad_seconds: expected 0 or more, got -0.1"),
    ({"min_silence_seconds": 0}, "vad.min_silence_seconds: expected a number above 0 and at most 30.0, got 0"),
])
def test_the_long_recording_keys_are_checked_with_the_key_named(vad: dict[str, object], message: str) -> None:
    assert message in _error({"vad": vad})


def test_a_vad_step_beyond_the_window_is_refused() -> None:
    """pyannote's window is 5 s: a longer step would skip audio."""
    assert "vad.step_seconds: expected a number above 0 and at most 5" in _error({"vad": {"step_seconds": 6}})
    assert "vad.long_step_seconds: expected a number above 0 and at most 5" in _error(
        {"vad": {"long_step_seconds": 0}})


def test_unknown_output_format_is_refused() -> None:
    """Formats are those whisperx writes."""
    assert "outputs.formats" in _error({"outputs": {"formats": ["json", "docx"]}})


def test_relative_folders_resolve_against_the_config_file(tmp_path: Path) -> None:
    """A config in /x/conf/ with inbox: ../in means /x/in."""
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "t.yaml"
    path.write_text("folders: {inbox: ../in}\nmodel: {download_dir: models}\n")
    config = load_config(path)
    assert config.folders.inbox == tmp_path / "in"
    assert config.model.download_dir == tmp_path / "conf" / "models"


def test_config_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRANSCRIBED_CONFIG names the file when --config is not given."""
    path = tmp_path / "t.yaml"
    path.write_text("model: {beam_size: 1}\n")
    monkeypatch.setenv("TRANSCRIBED_CONFIG", str(path))
    assert load_config().model.beam_size == 1


def test_printed_config_loads_back_to_the_same(tmp_path: Path) -> None:
    """`transcribed config` output is itself a valid config."""
    config = load_config(REPO / "config" / "transcribed.yaml")
    again = tmp_path / "again.yaml"
    again.write_text(render_yaml(config))
    assert to_plain(load_config(again)) == to_plain(config)


@pytest.mark.parametrize(("section", "key", "value"), [
    ("log", "progress_seconds", -1), ("model", "idle_unload_seconds", 0),
    ("model", "idle_unload_seconds", -5)])
def test_durations_that_make_no_sense_are_refused_naming_the_key(section: str, key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_config({section: {key: value}})
