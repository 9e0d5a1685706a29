"""A model per route, library or sidecar, on the fake engine (its models are names with the sizes
of the real ones): a mixed queue grouped by the loaded model (and in arrival order without the
grouping), the budget keeping the resident set small, out-of-memory while loading backed off,
a sidecar choosing only among the config's models, and the reports naming what is loaded.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

from tests.support.consumer import make_config, make_consumer
from tests.support.daemon import DaemonProcess, Folders, status_records, wait_until
from tests.support.media import write_tone_wav
from transcribed.config import Config
from transcribed.consumer.loop import Consumer
from transcribed.engine.fake import FakeEngine
from transcribed.engine.models import MIB, WEIGHTS_MIB

#: Enough for one of tiny and large-v3 at a time (int8: half their float16 weights), not both.
ONE_AT_A_TIME = f"{(WEIGHTS_MIB['large-v3'] // 2 + 100) * MIB}"


def mixed_config(root: Path, **models: Any) -> Config:
    """Memos (the inbox's top level) with the default model, films with large-v3; nothing shared
    between files, so that each model call is one file's."""
    return make_config(root, models={"memory_budget": ONE_AT_A_TIME, **models},
                       routes={"films": {"model": {"name": "large-v3"}}},
                       packing={"enabled": False}, batching={"enabled": False})


def fake_for(config: Config, **script: Any) -> FakeEngine:
    engine = FakeEngine(**script).for_config(config, cpu_limit=64 * 2**30)
    engine.load()
    return engine


def run_until(consumer: Consumer, done: int, folder: Path) -> None:
    """Run the consumer's own loop until `done` files are in `folder`."""
    stop = threading.Event()
    loop = threading.Thread(target=consumer.run, args=(stop,), name="consumer")
    loop.start()
    try:
        wait_until(lambda: len(list(folder.rglob("*.wav"))) >= done, 60, f"{done} files done")
    finally:
        stop.set()
        consumer.wake.set()
        loop.join(timeout=30)


def drop_mixed(config: Config, pairs: int) -> None:
    """memo0, films/film0, memo1, films/film1, ...: the worst order for switching models."""
    (config.folders.inbox / "films").mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        write_tone_wav(config.folders.inbox / f"memo{i}.wav", 0.3)
        write_tone_wav(config.folders.inbox / "films" / f"film{i}.wav", 0.3)


def test_a_mixed_queue_runs_the_loaded_models_files_first(tmp_path: Path) -> None:
    """Four memos and four films waiting, alternating: with the grouping, the memos run on the
    loaded default model, then the films on large-v3: one switch instead of seven."""
    config = mixed_config(tmp_path)
    engine = fake_for(config)
    drop_mixed(config, 4)
    consumer = make_consumer(config, engine)
    run_until(consumer, 8, config.folders.done)
    assert engine.models_used == ["tiny.en"] * 4 + ["large-v3"] * 4
    assert engine.model_loads == ["large-v3"] and engine.model_unloads == ["tiny.en"]
    assert consumer.stats.models is not None and consumer.stats.models["switches"] == 1


def test_without_the_grouping_the_queue_runs_in_arrival_order(tmp_path: Path) -> None:
    """models.max_wait_seconds: 0: every change of model in the queue loads one."""
    config = mixed_config(tmp_path, max_wait_seconds=0)
    engine = fake_for(config)
    drop_mixed(config, 4)
    run_until(make_consumer(config, engine), 8, config.folders.done)
    assert engine.models_used == ["tiny.en", "large-v3"] * 4
    assert len(engine.model_loads) == 7


def test_models_that_fit_together_stay_together(tmp_path: Path) -> None:
    """A budget for both: large-v3 is loaded once, beside the default, and nothing leaves."""
    config = mixed_config(tmp_path, memory_budget="8 GiB", max_wait_seconds=0)
    engine = fake_for(config)
    drop_mixed(config, 3)
    run_until(make_consumer(config, engine), 6, config.folders.done)
    assert engine.model_loads == ["large-v3"] and engine.model_unloads == []


def test_a_model_that_does_not_fit_even_alone_runs_its_job_on_the_cpu_or_fails_it(tmp_path: Path) -> None:
    """Out of memory while loading with nothing left to evict: oom.fallback cpu runs the job on
    a CPU copy (its metadata says so), oom.fallback fail fails it as out_of_memory."""
    for fallback in ("cpu", "fail"):
        root = tmp_path / fallback
        config = make_config(root, routes={"films": {"model": {"name": "large-v3"}}}, oom={"fallback": fallback},
                             packing={"enabled": False})
        engine = fake_for(config, oom_loading=("large-v3",))
        (config.folders.inbox / "films").mkdir(parents=True)
        write_tone_wav(config.folders.inbox / "films" / "big.wav", 0.3)
        consumer = make_consumer(config, engine)
        run_until(consumer, 1, config.folders.done if fallback == "cpu" else config.folders.failed)
        if fallback == "cpu":
            meta = json.loads((config.folders.outbox / "films" / "big.json").read_text())["transcribed"]
            assert meta["device"] == "cpu" and meta["model"] == "large-v3"
            assert {"stage": "load", "fallback": "cpu"} in meta["oom_backoffs"]
        else:
            report = json.loads((config.folders.failed / "films" / "big.wav.error.json").read_text())
            assert report["error_kind"] == "out_of_memory" and "large-v3" in report["error"]


def daemon(folders: Folders, **fake: Any) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake)})


def test_a_daemon_states_its_budget_switches_models_and_says_which_are_loaded(folders: Folders) -> None:
    """The real daemon (fake engine): `models.budget` at start; a film loads large-v3 in place of
    the default (model.evicted, model.switched with its seconds); its JSON names its model; the
    status file names what is loaded; a sidecar may choose an offered model, not another."""
    folders.write_config(models={"memory_budget": ONE_AT_A_TIME, "choices": ["base"]},
                         routes={"films": {"model": {"name": "large-v3", "beam_size": 2}}},
                         packing={"enabled": False})
    with daemon(folders, model_load_seconds={"large-v3": 0.3}) as running:
        budget = running.wait_for("models.budget")
        (folders.inbox / "films").mkdir()
        write_tone_wav(folders.root / "film.wav", 0.5)
        shutil.move(folders.root / "film.wav", folders.inbox / "films" / "film.wav")
        switched = running.wait_for("model.switched", model="large-v3")
        running.wait_for("job.done", file="films/film.wav")
        for name, sidecar in (("chosen.wav", "model: {name: base}\n"), ("refused.wav", "model: {name: medium}\n")):
            (folders.inbox / f"{name}.yaml").write_text(sidecar)
            write_tone_wav(folders.root / name, 0.5)
            shutil.move(folders.root / name, folders.inbox / name)
        running.wait_for("job.done", file="chosen.wav")
        running.wait_for("job.failed", file="refused.wav")
        record = wait_until(lambda: next((r for r in status_records(folders.state)
                                          if r.get("models", {}).get("switches") == 2), None),
                            30, "the status file to name the loaded model")
    assert budget["budget_from"] == "models.memory_budget" and set(budget["models"]) == {"tiny.en", "large-v3", "base"}
    assert switched["evicted"] == ["tiny.en"] and switched["seconds"] >= 0.3
    film = json.loads((folders.outbox / "films" / "film.json").read_text())["transcribed"]
    assert film["model"] == "large-v3" and film["options"]["beam_size"] == 2
    assert "model_switch" in film["timings"]
    chosen = json.loads((folders.outbox / "chosen.json").read_text())["transcribed"]
    assert chosen["model"] == "base"
    report = json.loads((folders.failed / "refused.wav.error.json").read_text())
    assert report["error_kind"] == "bad_sidecar" and "not among the models" in report["error"]
    assert record["models"]["resident"] == ["base"]
