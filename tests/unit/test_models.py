"""Several Whisper models: which model a file runs with (route, library, sidecar), the catalogue
of models a config names, the budget, and the resident set that keeps within it (on the fake
engine: no model is loaded here)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from structlog.testing import capture_logs

from transcribed.config import parse_config, resolve_paths
from transcribed.config.models import ModelChoice, ModelOptions, choose_model
from transcribed.engine.base import EngineSettings
from transcribed.engine.catalogue import (
    CPU_RESERVE_BYTES,
    MODEL_OVERHEAD_BYTES,
    Catalogue,
    memory_budget,
    multilingual_by_vocabulary,
)
from transcribed.engine.fake import FakeEngine
from transcribed.engine.hardware import GIB, HEADROOM_BYTES, Hardware
from transcribed.engine.models import MIB, WEIGHTS_MIB
from transcribed.engine.resident import ModelDoesNotFit, ResidentModels
from transcribed.errors import ConfigError
from transcribed.transcription.options import effective_options

TINY, BASE, LARGE, MEDIUM = (ModelChoice(n) for n in ("tiny", "base", "large-v3", "medium"))


def estimate(name: str, compute_type: str = "int8") -> int:
    weights = WEIGHTS_MIB[name] * MIB
    return (weights // 2 if compute_type.startswith("int8") else weights) + MODEL_OVERHEAD_BYTES


def fake_with(models: list[ModelChoice], budget: int, **script: object) -> FakeEngine:
    """A fake engine whose catalogue holds `models` (the first the default), sized by their names."""
    settings = {m: EngineSettings(m.name, "", "fake", "cuda", 0, "int8", 4, 1) for m in models}
    engine = FakeEngine(settings=settings[models[0]], **script)  # type: ignore[arg-type]
    engine.catalogue = Catalogue(models[0], settings, budget_bytes=budget, budget_reason="test")
    engine.load()
    return engine


class TestWhichModel:
    """A file runs with its route's (or library's) model, its sidecar's over that, else the daemon's."""

    CONFIG = parse_config({
        "model": {"name": "tiny.en", "compute_type": "int8", "beam_size": 5},
        "routes": {"films": {"model": {"name": "large-v3"}},
                   "fast": {"model": {"beam_size": 1}},
                   "films/archive": {"model": {"compute_type": "int8_float16"}}},
        "models": {"choices": ["base"]},
    })

    def test_a_route_names_its_model_and_gets_its_own_compute_type(self) -> None:
        films = effective_options(self.CONFIG, PurePosixPath("films/a.mkv"), None)
        assert (films.model, films.beam_size) == (ModelChoice("large-v3"), 5)

    def test_a_route_may_change_the_beam_alone(self) -> None:
        fast = effective_options(self.CONFIG, PurePosixPath("fast/memo.m4a"), None)
        assert (fast.model, fast.beam_size) == (ModelChoice("tiny.en", "int8"), 1)

    def test_the_deepest_route_names_the_compute_type_of_the_model_above(self) -> None:
        """films/archive says only compute_type: its model is still films' (its deepest route's)."""
        archive = effective_options(self.CONFIG, PurePosixPath("films/archive/a.mkv"), None)
        assert archive.model == ModelChoice("tiny.en", "int8_float16")

    def test_a_sidecar_overrides_the_route(self) -> None:
        assert choose_model(ModelChoice("tiny.en", "int8"), 5, [ModelOptions(name="large-v3"),
                                                                ModelOptions(name="base", beam_size=2)]) \
            == (ModelChoice("base"), 2)

    def test_every_model_the_config_names_is_in_it_with_the_key_that_names_it(self) -> None:
        assert self.CONFIG.named_models() == {
            ModelChoice("tiny.en", "int8"): "model.name", ModelChoice("large-v3"): "routes.films.model",
            ModelChoice("tiny.en", "int8_float16"): "routes.films/archive.model",
            ModelChoice("base"): "models.choices[0]"}

    def test_a_model_folder_counts_from_the_config_file(self, tmp_path: Path) -> None:
        (tmp_path / "models" / "mine").mkdir(parents=True)
        config = resolve_paths(parse_config({"routes": {"x": {"model": {"name": "./models/mine"}}}}), tmp_path)
        assert config.routes["x"].model == ModelOptions(name=str(tmp_path / "models" / "mine"))

    @pytest.mark.parametrize(("data", "message"), [
        ({"routes": {"a": {"model": {"beam_size": 0}}}}, "routes.a.model.beam_size: expected a positive"),
        ({"routes": {"a": {"model": {"compute_type": "fp8"}}}}, "routes.a.model.compute_type: expected one of"),
        ({"routes": {"a": {"model": "large-v3"}}}, "routes.a.model: expected a mapping"),
        ({"models": {"memory_budget": "lots"}}, "models.memory_budget: expected bytes or a size"),
        ({"models": {"max_wait_seconds": -1}}, "models.max_wait_seconds: expected 0 or more"),
    ])
    def test_bad_values_are_refused_naming_the_key(self, data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_config(data)


class TestTheCatalogue:
    """What each model is expected to take, and the budget the daemon states at start."""

    def test_the_estimate_follows_the_weights_and_the_compute_type(self) -> None:
        engine = fake_with([ModelChoice("large-v3"), ModelChoice("large-v3", "float16")], budget=10 * GIB)
        assert engine.catalogue.estimate(ModelChoice("large-v3")) == estimate("large-v3")
        float16 = dataclass_replace(engine.catalogue.settings[ModelChoice("large-v3", "float16")], "float16")
        engine.catalogue.settings[ModelChoice("large-v3", "float16")] = float16
        assert engine.catalogue.estimate(ModelChoice("large-v3", "float16")) == estimate("large-v3", "float16")

    def test_auto_on_a_gpu_is_what_is_free_less_headroom_and_batches(self) -> None:
        config = parse_config({"routes": {"a": {"model": {"name": "large-v3"}}}})
        catalogue = fake_with([ModelChoice("tiny.en"), LARGE], budget=0).catalogue
        budget, why = memory_budget(config, catalogue, Hardware(free_bytes=12 * GIB), cpu_limit=64 * GIB)
        assert budget < 12 * GIB - HEADROOM_BYTES and "free on the GPU at start" in why

    def test_auto_on_the_cpu_is_the_memory_limit_less_a_reserve(self) -> None:
        config = parse_config({})
        catalogue = Catalogue.single(EngineSettings("tiny", "", "fake", "cpu", 0, "int8", 4, 1))
        assert memory_budget(config, catalogue, Hardware(), cpu_limit=16 * GIB)[0] == 16 * GIB - CPU_RESERVE_BYTES

    def test_a_set_budget_is_never_below_the_default_model(self) -> None:
        config = parse_config({"models": {"memory_budget": "1 MB"}})
        catalogue = Catalogue.single(EngineSettings("tiny", "", "fake", "cpu", 0, "int8", 4, 1))
        assert memory_budget(config, catalogue, Hardware(), cpu_limit=GIB) == (estimate("tiny"), "models.memory_budget")

    def test_english_only_is_read_from_the_vocabulary(self, tmp_path: Path) -> None:
        """CTranslate2's own rule: 51864 tokens is English-only, more is multilingual."""
        (tmp_path / "en").mkdir()
        (tmp_path / "en" / "vocabulary.txt").write_text("x\n" * 51864)
        (tmp_path / "multi").mkdir()
        (tmp_path / "multi" / "vocabulary.json").write_text(json.dumps(["x"] * 51865))
        assert multilingual_by_vocabulary(tmp_path / "en") is False
        assert multilingual_by_vocabulary(tmp_path / "multi") is True
        assert multilingual_by_vocabulary(tmp_path) is None


def dataclass_replace(settings: EngineSettings, compute_type: str) -> EngineSettings:
    import dataclasses

    return dataclasses.replace(settings, compute_type=compute_type)


class TestTheResidentSet:
    """Models kept loaded within the budget, the least recently used leaving first."""

    def test_a_model_that_fits_beside_the_others_evicts_nothing(self) -> None:
        engine = fake_with([TINY, BASE], budget=estimate("tiny") + estimate("base"))
        resident = ResidentModels(engine)
        switch = resident.ensure(BASE)
        assert switch is not None and switch.evicted == [] and engine.loaded_models() == [TINY, BASE]
        assert resident.ensure(BASE) is None and resident.ensure(None) is None

    def test_the_least_recently_used_leaves_for_a_model_that_needs_room(self) -> None:
        clock = [0.0]
        engine = fake_with([TINY, BASE, MEDIUM], budget=estimate("tiny") + estimate("base") + 1)
        resident = ResidentModels(engine, clock=lambda: clock[0])
        for model in (BASE, TINY):  # tiny used last
            clock[0] += 1
            resident.ensure(model)
        clock[0] += 1
        with capture_logs() as logged:
            switch = resident.ensure(MEDIUM)
        assert switch is not None and switch.evicted == [BASE, TINY]  # medium needs both gone
        assert engine.loaded_models() == [MEDIUM] and engine.model_unloads == ["base", "tiny"]
        switched = next(e for e in logged if e["event"] == "model.switched")
        assert switched["evicted"] == ["base", "tiny"] and switched["resident"] == ["medium"]
        clock[0] += 1
        resident.ensure(TINY)
        assert engine.loaded_models() == [MEDIUM, TINY] or engine.loaded_models() == [TINY]

    def test_out_of_memory_while_loading_evicts_another_and_tries_again(self) -> None:
        """The estimate said it fits; loading ran out of memory beside another model: that one
        leaves (engine.oom_backoff, stage load) and the load is tried again."""
        engine = fake_with([TINY, BASE], budget=10 * GIB, oom_loading_beside=("base",))
        with capture_logs() as logged:
            switch = ResidentModels(engine).ensure(BASE)
        assert switch is not None and switch.evicted == [TINY] and engine.loaded_models() == [BASE]
        backoff = next(e for e in logged if e["event"] == "engine.oom_backoff")
        assert (backoff["stage"], backoff["model"], backoff["evicted"]) == ("load", "base", "tiny")

    def test_a_model_that_does_not_fit_alone_says_so(self) -> None:
        engine = fake_with([TINY, LARGE], budget=10 * GIB, oom_loading=("large-v3",))
        with pytest.raises(ModelDoesNotFit, match="large-v3 ran out of memory while loading"):
            ResidentModels(engine).ensure(LARGE)
        assert engine.loaded_models() == [], "every other model left to make room"

    def test_a_lost_gpu_while_loading_is_a_lost_gpu(self) -> None:
        from transcribed.errors import GpuLost

        engine = fake_with([TINY, BASE], budget=10 * GIB)

        def lost(model: ModelChoice) -> None:
            raise RuntimeError("CUDA failed with error unknown error")

        engine.load_model = lost  # type: ignore[method-assign]
        with pytest.raises(GpuLost):
            ResidentModels(engine).ensure(BASE)

    def test_the_reports_know_what_is_loaded(self) -> None:
        seen: list[dict] = []
        engine = fake_with([TINY, BASE], budget=estimate("tiny"))
        resident = ResidentModels(engine, on_change=lambda r: seen.append(r.describe()))
        resident.ensure(BASE)
        assert seen[0]["resident"] == ["tiny"] and seen[-1]["resident"] == ["base"]
        assert seen[-1]["switches"] == 1 and seen[-1]["budget_bytes"] == estimate("tiny")


class TestWaitingFilesThatUseALoadedModelGoFirst:
    """The inbox offers the files whose model is loaded first (consumer/model_order.py), until the
    oldest file has waited `models.max_wait_seconds`: then arrival order rules, so none waits for ever."""

    def setup(self, tmp_path: Path, max_wait: float) -> tuple[object, object, list[float]]:
        from tests.support.consumer import make_config
        from tests.support.media import write_tone_wav
        from transcribed.consumer.model_order import ModelOrder
        from transcribed.intake.arrivals import Arrivals
        from transcribed.intake.source import InboxSource
        from transcribed.operations.stats import Stats
        from transcribed.spool.folder import WorkFolder

        config = make_config(tmp_path, model={"name": "tiny"}, models={"max_wait_seconds": max_wait},
                             routes={"films": {"model": {"name": "large-v3"}}})
        engine = fake_with([ModelChoice("tiny"), LARGE], budget=estimate("large-v3"))
        spool = WorkFolder(config)
        spool.prepare()
        clock = [0.0]
        inbox = InboxSource(config, spool, Arrivals(0.0), Stats(), clock=lambda: clock[0])
        for name in ("films/movie.wav", "memo1.wav", "memo2.wav", "memo3.wav"):  # in this order
            (config.folders.inbox / name).parent.mkdir(parents=True, exist_ok=True)
            write_tone_wav(config.folders.inbox / name, 0.2)
        return inbox, ModelOrder(config, ResidentModels(engine)), clock

    def test_a_film_waits_behind_memos_the_loaded_model_runs_until_its_bound(self, tmp_path: Path) -> None:
        inbox, order, clock = self.setup(tmp_path, max_wait=600)
        first = inbox.claim(1, order)  # type: ignore[attr-defined]
        assert [str(job.relpath) for job in first] == ["memo1.wav"]
        clock[0] = 599.0
        assert [str(job.relpath) for job in inbox.claim(1, order)] == ["memo2.wav"]  # type: ignore[attr-defined]
        clock[0] = 600.0  # the film has waited its bound: it goes next
        assert [str(job.relpath) for job in inbox.claim(1, order)] == ["films/movie.wav"]  # type: ignore[attr-defined]

    def test_without_a_preference_the_oldest_goes_first(self, tmp_path: Path) -> None:
        inbox, order, _clock = self.setup(tmp_path, max_wait=600)
        assert [str(job.relpath) for job in inbox.claim(2)] == ["films/movie.wav", "memo1.wav"]  # type: ignore[attr-defined]

    def test_a_sidecar_that_names_the_loaded_model_lets_its_file_go_first(self, tmp_path: Path) -> None:
        inbox, order, _clock = self.setup(tmp_path, max_wait=600)
        (tmp_path / "inbox" / "films" / "movie.wav.yaml").write_text("model: {name: tiny}\n")
        assert order.model_of(PurePosixPath("films/movie.wav"), tmp_path / "inbox" / "films" / "movie.wav") \
            == ModelChoice("tiny")  # type: ignore[attr-defined]
        assert [str(job.relpath) for job in inbox.claim(1, order)] == ["films/movie.wav"]  # type: ignore[attr-defined]
