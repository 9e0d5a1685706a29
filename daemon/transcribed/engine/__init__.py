"""Engines: what turns decoded audio into a transcript. One Protocol, a real and a fake one."""

from __future__ import annotations

from .base import Engine, EngineSettings, Request

__all__ = ["Engine", "EngineSettings", "Request"]
