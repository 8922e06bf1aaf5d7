"""The scoring engine's configuration, derived from the service's settings as a value.

One function so the workers' pre-flight and scoring runs and their start-up self-test use the very
same runtime, sandbox policy and limits — in production, none of them may fall back to an
unsandboxed run. Everything comes from :class:`app.settings.Settings`; the engine itself reads no
environment for the service.
"""

from __future__ import annotations

from app.settings import Settings
from scorer.disclosure import Disclosure
from scorer.pipeline import ScoringConfig
from scorer.runtime import find_runtime, find_tensorflow_runtime
from scorer.sandbox import SandboxConfig
from scorer.sandbox.types import Limits


def run_limits(settings: Settings) -> Limits:
    """The hidden-set run's limits: what the workers apply and what the upload page states."""
    return Limits().overridden(wall_seconds=settings.wall_seconds, memory_mb=settings.memory_mb, cpus=settings.cpus)


def scoring_config(settings: Settings) -> ScoringConfig:
    limits = run_limits(settings)
    return ScoringConfig(
        runtime=find_runtime(settings.runtime_python),
        tensorflow_runtime=find_tensorflow_runtime(settings.tensorflow_runtime_python),
        sandbox=SandboxConfig(
            mode=settings.sandbox_mode,
            allow_unsandboxed=settings.allow_unsandboxed,
            cgroup_mode=settings.sandbox_cgroup_mode,
            cgroup_parent=settings.sandbox_cgroup_parent,
        ),
        limits=limits,
        smoke_limits=Limits(wall_seconds=settings.smoke_wall_seconds),
        disclosure=Disclosure(settings.hidden_run_excerpt_bytes, settings.hidden_run_stored_log_bytes),
    )
