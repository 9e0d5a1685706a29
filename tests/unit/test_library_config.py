"""The `libraries` section: paths relative to the config file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transcribed.config import load_config, parse_config
from transcribed.errors import ConfigError
from transcribed.library.job import library_routes


def _write(tmp_path: Path, **data: object) -> Path:
    path = tmp_path / "conf" / "transcribed.yaml"
    path.parent.mkdir(exist_ok=True)
    folders = {"inbox": "in", "outbox": "out", "done": "done", "failed": "failed", "state": "state"}
    path.write_text(yaml.safe_dump({"folders": folders, **data}))
    return path


def test_a_library_path_counts_from_the_config_files_folder(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, libraries=[
        {"path": "../media/movies", "languages": ["en"], "tag": "transcribed", "formats": ["srt", "vtt"]},
        {"path": str(tmp_path / "shows"), "languages": ["de", "en"], "check_streams": True,
         "extensions": [".MKV", "mp4"]}]))
    movies, shows = config.libraries
    assert movies.path == tmp_path / "media" / "movies"
    assert (movies.tag, movies.formats, shows.check_streams) == ("transcribed", ("srt", "vtt"), True)
    assert shows.path == tmp_path / "shows" and shows.languages == ("de", "en")
    assert (movies.extensions, shows.extensions) == (None, ("mkv", "mp4"))


@pytest.mark.parametrize(("path", "key"), [("in/movies", "folders.inbox"), ("state", "folders.state"),
                                           (".", "folders.inbox"), ("out", "folders.outbox")])
def test_a_library_overlapping_the_daemons_folders_is_refused(tmp_path: Path, path: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, libraries=[{"path": path}]))
    assert "libraries[0].path" in str(caught.value) and key in str(caught.value)


def test_two_libraries_one_inside_the_other_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"libraries\[1\].path: .* overlaps libraries\[0\].path"):
        load_config(_write(tmp_path, libraries=[{"path": "/media"}, {"path": "/media/movies"}]))


@pytest.mark.parametrize(("library", "message"), [
    ({}, r"libraries\[0\].path: expected the library's folder"),
    ({"path": "/m", "languages": []}, r"libraries\[0\].languages: expected at least one"),
    ({"path": "/m", "languages": ["en", "elvish"]}, r"libraries\[0\].languages\[1\]: unknown language 'elvish'"),
    ({"path": "/m", "formats": ["json"]}, r"libraries\[0\].formats: expected some of srt, vtt"),
    ({"path": "/m", "tag": "a.b"}, r"libraries\[0\].tag: expected one word"),
    ({"path": "/m", "langauges": ["en"]}, r"libraries\[0\].langauges: unknown key \(did you"),
    ({"path": "/m", "hooks_events": ["started"]}, r"libraries\[0\].hooks_events"),
    ({"path": "/m", "extensions": []}, r"libraries\[0\].extensions: expected at least one"),
])
def test_bad_library_values_name_their_key(library: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"libraries": [library]})


def test_a_library_is_a_route_over_its_absolute_folder(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, routes={"ru": {"language": "ru"}}, libraries=[
        {"path": "/media/movies", "languages": ["de"], "formats": ["vtt"], "initial_prompt": "Film."},
        {"path": "/media/shows", "languages": ["en", "de"]}]))
    routes = library_routes(config).routes
    assert routes["ru"].language == "ru"
    movies, shows = routes["/media/movies"], routes["/media/shows"]
    assert (movies.language, movies.formats, movies.initial_prompt) == ("de", ("vtt", "json"), "Film.")
    assert (shows.language, shows.formats) == (None, ("srt", "json"))  # several languages: detected
