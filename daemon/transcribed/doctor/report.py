"""The doctor's report: one `Check` per line, what they add up to, and how it is shown.

`render` is for people (one line per check, its advice below it once); `as_dict` is `--json`.
scripts/check-gpu reads the verdict line that `render` ends with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .. import __version__
from ..engine.base import EngineSettings

OK, WARN, FAIL = "ok", "warn", "fail"
EXIT_READY, EXIT_NOT_READY = 0, 1
#: The order of the report's lines: from the hardware up to the verdict's evidence.
ORDER = ("driver", "gpu", "torch_cuda", "ct2_cuda", "cudnn", "model", "folders", "device",
         "transcription")
#: Checks made only where their part is configured (the object-store intake), and where they go.
OPTIONAL = ("objectstore_store", "objectstore_queue")
LINES = (*ORDER[:ORDER.index("folders") + 1], *OPTIONAL, *ORDER[ORDER.index("folders") + 1:])


@dataclass
class Check:
    """One line of the report."""

    name: str
    title: str
    status: str
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every check, and what they add up to."""

    checks: list[Check] = field(default_factory=list)
    settings: EngineSettings | None = None
    config: str = "built-in defaults"

    @property
    def ready(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    def add(self, name: str, title: str, status: str, detail: str, advice: str = "",
            **data: Any) -> Check:
        check = Check(name, title, status, detail, advice, data)
        self.checks.append(check)
        return check


def render(report: Report) -> str:
    """The report for people: one line per check, advice indented below it."""
    label = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}
    width = max(len(c.title) for c in report.checks)
    lines = [f"transcribed doctor {__version__} (config: {report.config})", ""]
    given: set[str] = set()
    for check in report.checks:
        lines.append(f"  {label[check.status]}  {check.title:<{width}}  {check.detail}")
        if check.advice and check.status != OK and check.advice not in given:
            lines.append(f"        {'':<{width}}  -> {check.advice}")
            given.add(check.advice)  # the same advice once, under the first check it explains
    lines += ["", _verdict(report)]
    return "\n".join(lines)


def as_dict(report: Report) -> dict[str, Any]:
    """The report for machines (`--json`)."""
    settings = report.settings
    why = None
    if settings is not None:
        why = _why_cpu(report, settings) if settings.device == "cpu" else settings.reasons.get("device")
    return {
        "version": __version__, "config": report.config, "ready": report.ready,
        "exit_code": EXIT_READY if report.ready else EXIT_NOT_READY,
        "device": settings.device if settings else None,
        "why": why,
        "settings": asdict(settings) if settings else None,
        "checks": [asdict(check) for check in report.checks],
    }


def _verdict(report: Report) -> str:
    failed = [c.title for c in report.checks if c.status == FAIL]
    if failed:
        return f"NOT READY: {len(failed)} check(s) failed: {', '.join(failed)}. Exit code 1."
    settings = report.settings
    if settings is None:
        raise ValueError("a report without settings must hold the failed check that says why")
    if settings.device == "cuda":
        return f"READY: transcribes on the GPU ({settings.compute_type}, batch size {settings.batch_size})."
    return f"READY: transcribes on the CPU ({settings.compute_type}), because {_why_cpu(report, settings)}."


def _why_cpu(report: Report, settings: EngineSettings) -> str:
    """The root cause first: no driver explains everything after it."""
    reason = settings.reasons.get("device", "")
    if reason == "set in the config":
        return "model.device is cpu"
    driver = next((c for c in report.checks if c.name == "driver"), None)
    if driver is not None and driver.status != OK and "nvidia-smi not found" in driver.detail:
        cause = reason.removeprefix("no usable GPU: ")
        return f"there is no NVIDIA driver (nvidia-smi not found), so {cause}"
    return reason
