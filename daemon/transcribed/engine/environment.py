"""What the engine's libraries read from the environment: kept offline and private.

torch, pyannote, transformers and huggingface_hub read their switches from environment
variables when they are first imported, so these are set before that (by the service, the
doctor and the engine itself), and pyannote's telemetry is turned off once it is loaded.
"""

from __future__ import annotations

import os


def keep_libraries_offline_and_private() -> None:
    """Environment the libraries read at import: no telemetry, no tokenizer thread pools, and
    models downloaded over plain HTTP rather than Xet storage (hf_xet is installed, as a
    dependency of huggingface_hub): HTTP is the path the tests run against a local hub, the one
    that resumes a part with a Range request and grows the `.incomplete` file the progress events
    read, and the one every hub mirror serves. HF_HUB_DISABLE_XET=0 set by the user is kept."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


def disable_pyannote_telemetry() -> None:
    """pyannote 4 sends telemetry on every VAD call unless told not to (WHISPERX.md, trap 5)."""
    try:
        from pyannote.audio.telemetry import set_telemetry_metrics
    except ImportError:
        return
    set_telemetry_metrics(False)
