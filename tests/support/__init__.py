"""Test support: offline model builders, the speech corpus and media file writers."""

import os

# pyannote 4 sends telemetry unless told not to; set it before anything imports pyannote.
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
