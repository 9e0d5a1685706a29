"""Checks that the test-support builders, corpus helpers and media writers give what they claim
(without loading a model: the models themselves are checked in tests/e2e/test_support_models.py)."""

import os
import shutil
import threading
import time

import pytest

# Importing tests.support turns pyannote telemetry off before anything imports pyannote.
from tests.support import corpus, media, models, threads

RUSSIAN_CLIP = "multilingual/ru_deepspeech_sample.wav"
SHORT_ENGLISH_CLIP = "librispeech/1988-24833-0003.flac"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


@pytest.fixture
def shipped_punkt_only(monkeypatch):
    """Point NLTK at the shipped data folder alone, so a pass cannot come from another nltk_data."""
    import nltk.data

    monkeypatch.setattr(nltk.data, "path", [str(models.shipped_nltk_data())])


# --- shipped NLTK punkt_tab -------------------------------------------------------------------


def test_punkt_tab_has_the_four_files_nltk_reads():
    english = models.shipped_nltk_data() / "tokenizers" / "punkt_tab" / "english"
    assert sorted(p.name for p in english.iterdir()) == sorted(PUNKT_FILES)


def test_abbreviations_are_lowercase_without_final_dot():
    lines = (models.shipped_nltk_data() / "tokenizers/punkt_tab/english/abbrev_types.txt").read_text().splitlines()
    assert {"mr", "mrs", "dr", "e.g", "i.e", "etc"} <= set(lines)
    assert all(line and line == line.lower().strip() and not line.endswith(".") for line in lines)


def test_whisperx_punkt_name_loads_and_keeps_mr_in_the_sentence(shipped_punkt_only):
    from nltk.data import load as nltk_load  # the loader whisperx.alignment calls

    splitter = nltk_load("tokenizers/punkt_tab/english.pickle", cache=False)
    assert splitter.tokenize("Mr. Smith went home. He slept.") == ["Mr. Smith went home.", "He slept."]


# --- model builders' cache ---------------------------------------------------------------------------


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSCRIBED_TEST_CACHE", str(tmp_path))
    assert models.cache_root() == tmp_path


def test_cached_build_runs_once_and_leaves_no_staging_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSCRIBED_TEST_CACHE", str(tmp_path))
    builds = []

    def build(out):
        builds.append(out)
        (out / "weights").write_text("w")

    first = models.cached_build("thing-r1", build)
    again = models.cached_build("thing-r1", build)
    assert first == again == tmp_path / "thing-r1"
    assert len(builds) == 1 and (first / "weights").read_text() == "w"
    assert os.listdir(tmp_path) == ["thing-r1"]


def test_builders_racing_for_one_key_all_get_the_one_complete_copy_that_won(monkeypatch, tmp_path):
    """Several test processes may build the same model at once (pytest-xdist, two checkouts):
    here four threads all build before any renames, and each must get the same complete copy,
    with no staging folder left behind."""
    monkeypatch.setenv("TRANSCRIBED_TEST_CACHE", str(tmp_path))
    racers = 4
    all_building = threading.Barrier(racers, timeout=10)
    results, errors = [], []

    def build(out):
        (out / "weights").write_text(f"by {threading.get_ident()}")
        all_building.wait()  # nobody renames before everyone has a staged copy
        (out / "done").write_text("complete")

    def racer():
        try:
            results.append(models.cached_build("thing-r1", build))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert errors == [] and results == [tmp_path / "thing-r1"] * racers
    assert sorted(p.name for p in results[0].iterdir()) == ["done", "weights"]
    assert os.listdir(tmp_path) == ["thing-r1"]


# --- corpus and scoring -----------------------------------------------------------------------


@pytest.mark.usefixtures("corpus")
def test_clips_filter_by_language_duration_speakers_and_set():
    assert all(c.language == "ru" for c in corpus.clips(language="ru"))
    assert corpus.clip(RUSSIAN_CLIP) in corpus.clips(language="ru")
    assert all(c.duration_s <= 3.0 for c in corpus.clips(max_duration=3.0))
    assert all(c.speakers == 1 for c in corpus.clips())
    assert all(c.set_name == "ljspeech" for c in corpus.clips(sets={"ljspeech"}))
    assert all(c.path.is_file() and c.reference for c in corpus.clips(speakers=None))


@pytest.mark.usefixtures("corpus")
def test_multi_speaker_references_lose_their_speaker_labels():
    clip = corpus.clip("diarization/pyannote_sample.wav")
    labels = {line.split(":", 1)[0] for line in clip.path.with_suffix(".txt").read_text().splitlines() if line}
    assert clip.speakers == 2 and clip.rttm is not None and clip.rttm.is_file()
    assert not any(f"{label}:" in clip.reference for label in labels)


@pytest.mark.usefixtures("corpus")
@pytest.mark.parametrize("language", ["en", "de", "ru", "zh", "ja"])
def test_word_error_rate_is_zero_for_the_same_words_and_positive_otherwise(language):
    reference = corpus.clips(language=language, speakers=None)[0].reference
    restyled = f"{reference.upper()}!"  # case and punctuation differ, words do not
    assert corpus.word_error_rate(reference, restyled, language) == 0.0
    assert corpus.word_error_rate(reference, reference[: len(reference) // 2], language) > 0.0


def test_english_normaliser_is_whispers():
    assert corpus.normalise("Mr. Smith, it's TWENTY-ONE!", "en") == corpus.normalise("mister smith it is 21", "en")


# --- media writers ----------------------------------------------------------------------------


def test_wav_writers_give_the_requested_durations(tmp_path):
    assert media.decoded_seconds(media.write_silence_wav(tmp_path / "s.wav", 3.0)) == pytest.approx(3.0, abs=0.01)
    assert media.decoded_seconds(media.write_tone_wav(tmp_path / "t.wav", 2.0)) == pytest.approx(2.0, abs=0.01)


@pytest.mark.usefixtures("corpus")
def test_mp3_of_speech_decodes_fully_and_a_truncated_copy_partially(tmp_path):
    source = corpus.clip(SHORT_ENGLISH_CLIP)
    mp3 = media.write_mp3(tmp_path / "speech.mp3", source.path)
    assert media.decoded_seconds(mp3) == pytest.approx(source.duration_s, abs=0.1)

    cut = shutil.copy(mp3, tmp_path / "cut.mp3")
    media.truncate(cut, 0.4)
    assert 0.2 * source.duration_s < media.decoded_seconds(cut) < 0.6 * source.duration_s  # no error


@pytest.mark.usefixtures("corpus")
def test_m4a_truncation_fails_without_faststart_and_is_partial_with_it(tmp_path):
    source = corpus.clip(SHORT_ENGLISH_CLIP)
    plain = media.write_m4a(tmp_path / "plain.m4a", source.path)
    fast = media.write_m4a(tmp_path / "fast.m4a", source.path, faststart=True)
    assert media.decoded_seconds(plain) == pytest.approx(source.duration_s, abs=0.2)

    media.truncate(plain, 0.5)
    media.truncate(fast, 0.5)
    with pytest.raises(ValueError):  # av.error.InvalidDataError: the moov index was cut off
        media.decoded_seconds(plain)
    assert 0.0 < media.decoded_seconds(fast) < source.duration_s


def test_video_without_audio_raises_index_error(tmp_path):
    video = media.write_video_without_audio(tmp_path / "v.mp4")
    assert video.stat().st_size > 0
    with pytest.raises(IndexError):
        media.decoded_seconds(video)


@pytest.mark.parametrize(
    "write",
    [
        lambda d: media.write_random_bytes(d / "noise.mp3", 20000),
        lambda d: media.write_text_as(d / "notes.wav"),
        lambda d: media.write_random_bytes(d / "empty.wav", 0),
    ],
    ids=["random-bytes", "text", "empty"],
)
def test_non_audio_files_fail_to_decode(tmp_path, write):
    with pytest.raises(ValueError):  # av.error.InvalidDataError subclasses ValueError
        media.decoded_seconds(write(tmp_path))


def test_truncated_wav_with_only_a_header_decodes_to_nothing(tmp_path):
    wav = media.write_silence_wav(tmp_path / "s.wav", 1.0)
    media.truncate(wav, 44 / wav.stat().st_size)  # the 44-byte RIFF header alone
    assert media.decoded_seconds(wav) == 0.0


def test_copy_slowly_grows_one_file_over_time_and_ends_identical(tmp_path):
    source = media.write_tone_wav(tmp_path / "src.wav", 2.0)
    target = tmp_path / "dst.wav"
    copier = threading.Thread(target=media.copy_slowly, args=(source, target, 0.6, 4))
    started = time.monotonic()
    copier.start()
    sizes = set()
    while copier.is_alive():
        if target.exists():
            sizes.add(target.stat().st_size)
        time.sleep(0.02)
    copier.join()

    assert time.monotonic() - started >= 0.6
    assert len(sizes - {source.stat().st_size}) >= 2  # partial sizes were visible during the copy
    assert target.read_bytes() == source.read_bytes()




# --- the thread check (tests/conftest.py) -----------------------------------------------------


def test_a_thread_still_blocked_after_the_grace_is_reported_with_its_target():
    before = set(threading.enumerate())
    release = threading.Event()

    def blocked_until_released():
        release.wait(30)

    stuck = threading.Thread(target=blocked_until_released, name="stuck", daemon=True)
    stuck.start()
    try:
        started = time.monotonic()
        left = threads.threads_left_running(before, grace=0.2)
        assert left == [stuck] and time.monotonic() - started >= 0.2
        assert threads.describe(left) == ("stuck (test_a_thread_still_blocked_after_the_grace_is_"
                                          "reported_with_its_target.<locals>.blocked_until_released)")
    finally:
        release.set()
        stuck.join(5)


def test_a_thread_that_ends_within_the_grace_and_a_lifelong_one_are_not_reported():
    before = set(threading.enumerate())
    ending = threading.Thread(target=time.sleep, args=(0.2,), name="ending")
    release = threading.Event()
    lifelong_name = threads.LIFELONG_THREADS[0][0]
    lifelong = threading.Thread(target=release.wait, args=(30,), name=lifelong_name, daemon=True)
    ending.start()
    lifelong.start()
    try:
        assert threads.threads_left_running(before, grace=5) == []
        assert not ending.is_alive()
    finally:
        release.set()
        lifelong.join(5)
