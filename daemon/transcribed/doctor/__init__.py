"""`transcribed doctor`: can the configured setup work here, on which device, and if not, why.

One line per check, ok / warn / fail, each with what to do: the NVIDIA driver, the GPU, CUDA as
torch and CTranslate2 see it, cuDNN, the settings `auto` resolves to, the model, the folders
(`checks`), the object store and its queue when that intake is on (`objectstore`), and a short
real transcription of a bundled clip in a child process (`sample`).
`warn` still works (the CPU instead of a GPU, a model still to download); `fail` cannot, and
makes the exit code 1. The report and its two renderings are `report`.
"""

from __future__ import annotations

import json
import sys

from .. import logs
from ..config import Config
from .checks import check_cuda, check_cudnn, check_driver, check_folders, check_model, check_settings
from .objectstore import check_objectstore
from .report import EXIT_NOT_READY, EXIT_READY, FAIL, LINES, OK, ORDER, WARN, Check, Report, as_dict, render
from .sample import SAMPLE, SAMPLE_TEXT, check_transcription

__all__ = ["EXIT_NOT_READY", "EXIT_READY", "FAIL", "OK", "ORDER", "SAMPLE", "SAMPLE_TEXT", "WARN",
           "Check", "Report", "as_dict", "diagnose", "render", "run_doctor"]


def run_doctor(config: Config, as_json: bool = False, sample: bool = True) -> int:
    """Check everything, print the report (text, or one JSON object), return the exit code."""
    logs.configure(config.log.format, "warning", stream=sys.stderr)  # stdout is the report's
    report = diagnose(config, sample=sample)
    print(json.dumps(as_dict(report), indent=2) if as_json else render(report))
    return EXIT_READY if report.ready else EXIT_NOT_READY


def diagnose(config: Config, sample: bool = True) -> Report:
    """Run every check against `config`, each on what the ones before it found.

    `sample=False` leaves out the sample transcription (a child process loading the model),
    reported as skipped: the other checks are quick and start no process, so unit tests use it.
    """
    from ..engine.environment import keep_libraries_offline_and_private

    keep_libraries_offline_and_private()
    report = Report(config=str(config.source) if config.source else "built-in defaults")
    gpus = check_driver(report, config)
    hardware = check_cuda(report, config, gpus)
    model = check_model(report, config)
    check_settings(report, config, hardware, model)
    check_cudnn(report)
    check_folders(report, config)
    check_objectstore(report, config)
    if sample:
        check_transcription(report, config, model)
    else:
        report.add("transcription", "Transcription", WARN, "skipped: not asked for (sample=False)",
                   "run the doctor without sample=False to transcribe the sample")
    report.checks.sort(key=lambda check: LINES.index(check.name))
    return report
