"""The offline test models load in the libraries they are built for and do what the tests rely
on: an English-only and a multilingual Whisper, a tiny aligner, a tiny diarization pipeline.
(They load models, so they are not unit tests; the builders' file handling is in
tests/unit/test_support.py.)"""

import pytest

# Importing tests.support turns pyannote telemetry off before anything imports pyannote.
from tests.support import corpus, models

pytestmark = pytest.mark.e2e

RUSSIAN_CLIP = "multilingual/ru_deepspeech_sample.wav"
SHORT_ENGLISH_CLIP = "librispeech/1988-24833-0003.flac"
TWO_SPEAKER_5S_CLIP = "diarization/librispeech_stereo_2ch.wav"


@pytest.fixture
def shipped_punkt_only(monkeypatch):
    """Point NLTK at the shipped data folder alone, so a pass cannot come from another nltk_data."""
    import nltk.data

    monkeypatch.setattr(nltk.data, "path", [str(models.shipped_nltk_data())])


def test_bundled_tiny_en_is_an_english_only_ctranslate2_model():
    from faster_whisper import WhisperModel

    path = models.bundled_tiny_en()
    assert (path / "model.bin").is_file() and (path / "tokenizer.json").is_file()
    assert not WhisperModel(str(path), device="cpu", compute_type="int8").model.is_multilingual


def test_multilingual_base_loads_in_faster_whisper_and_is_multilingual():
    from faster_whisper import WhisperModel

    path = models.multilingual_base()
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
    assert model.model.is_multilingual
    assert "ru" in model.supported_languages


@pytest.mark.usefixtures("corpus")
def test_multilingual_base_detects_russian_in_whisperx():
    import whisperx

    pipe = whisperx.load_model(str(models.multilingual_base()), device="cpu", compute_type="int8", threads=2)
    audio = _decode(corpus.clip(RUSSIAN_CLIP).path)
    result = pipe.transcribe(audio, batch_size=4, language=None)
    assert result["language"] == "ru"
    assert result["segments"]


@pytest.mark.usefixtures("corpus")
def test_tiny_aligner_gives_word_times_in_whisperx_align(shipped_punkt_only):
    import whisperx

    clip = corpus.clip(SHORT_ENGLISH_CLIP)
    audio = _decode(clip.path)
    model, metadata = whisperx.load_align_model(
        language_code="en", device="cpu", model_name=str(models.tiny_aligner())
    )
    segment = {"start": 0.0, "end": clip.duration_s, "text": " Mr. Smith went home. He slept."}
    aligned = whisperx.align([segment], model, metadata, audio, "cpu")

    assert [s["text"].strip() for s in aligned["segments"]] == ["Mr. Smith went home.", "He slept."]
    words = [w for s in aligned["segments"] for w in s["words"]]
    assert [w["word"] for w in words] == ["Mr.", "Smith", "went", "home.", "He", "slept."]
    assert all(0.0 <= w["start"] <= w["end"] <= clip.duration_s for w in words)


def test_tiny_aligner_vocabulary_follows_the_alphabet():
    import whisperx

    _, metadata = whisperx.load_align_model(
        language_code="ru", device="cpu", model_name=str(models.tiny_aligner(models.RUSSIAN_ALPHABET))
    )
    assert set(models.RUSSIAN_ALPHABET) <= set(metadata["dictionary"])
    assert metadata["dictionary"]["<pad>"] == 0 and "|" in metadata["dictionary"]


@pytest.mark.usefixtures("corpus")
def test_tiny_diarization_pipeline_runs_offline_in_whisperx():
    from whisperx.diarize import DiarizationPipeline

    pipeline = DiarizationPipeline(model_name=str(models.tiny_diarization()), device="cpu")
    frame = pipeline(_decode(corpus.clip(TWO_SPEAKER_5S_CLIP).path), min_speakers=1, max_speakers=2)
    assert "speaker" in frame.columns and len(frame) > 0
    assert frame["speaker"].str.startswith("SPEAKER_").all()


def _decode(path):
    """16 kHz float32 mono samples, decoded in-process (whisperx.load_audio needs the ffmpeg CLI)."""
    from faster_whisper import decode_audio

    return decode_audio(str(path))
