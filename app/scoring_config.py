"""The scoring engine's configuration, derived from the service's settings as a value.

One function so the workers' pre-flight and scoring runs and their start-up self-test use the very
same runtime, sandbox policy and limits — in production, none of them may fall back to an
unsandboxed run. Everything comes from :class:`app.settings.Settings`; the engine itself reads no
environment for the service.
"""

from __future__ import annotations

import dataclasses

from app.settings import Settings
from scorer.pipeline import ScoringConfig
from scorer.runtime import find_runtime
from scorer.sandbox import SandboxConfig
from scorer.sandbox.types import Limits


def scoring_config(settings: Settings) -> ScoringConfig:
    limits = Limits()
    if settings.wall_seconds is not None:
        limits = dataclasses.replace(limits, wall_seconds=settings.wall_seconds)
    if settings.memory_mb is not None:
        limits = dataclasses.replace(limits, memory_bytes=settings.memory_mb * 1024**2)
    if settings.cpus is not None:
        limits = dataclasses.replace(limits, cpus=settings.cpus)
    return ScoringConfig(
        runtime=find_runtime(settings.runtime_python),
        sandbox=SandboxConfig(mode=settings.sandbox_mode, allow_unsandboxed=settings.allow_unsandboxed),
        limits=limits,
    )
