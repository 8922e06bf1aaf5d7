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
from scorer.sandbox.types import Limits, MiB

# What a run in the TensorFlow runtime needs: importing TensorFlow maps about 1.5 GB of address space
# (RLIMIT_AS counts it) before the trainee's model is loaded. Below this, every Keras run would end
# before the harness answered, as a fault of the server's (the upload refunded, nobody scored), so a
# worker configured that way refuses to start instead.
TENSORFLOW_MIN_MEMORY_MB = 2048


def run_limits(settings: Settings) -> Limits:
    """The hidden-set run's limits: what the workers apply and what the upload page states."""
    return Limits().overridden(wall_seconds=settings.wall_seconds, memory_mb=settings.memory_mb, cpus=settings.cpus)


def scoring_config(settings: Settings) -> ScoringConfig:
    limits = run_limits(settings)
    tensorflow_runtime = find_tensorflow_runtime(settings.tensorflow_runtime_python)
    if tensorflow_runtime is not None and limits.memory_bytes < TENSORFLOW_MIN_MEMORY_MB * MiB:
        raise ValueError(
            f"KATAKANA_MEMORY_MB={limits.memory_bytes // MiB} is too little for the TensorFlow runtime "
            f"({tensorflow_runtime.python}): a run there needs at least {TENSORFLOW_MIN_MEMORY_MB} MB. Raise "
            "KATAKANA_MEMORY_MB, or remove the TensorFlow runtime from this host (Keras submissions are then "
            "refused at the pre-flight, nothing spent)."
        )
    return ScoringConfig(
        runtime=find_runtime(settings.runtime_python),
        tensorflow_runtime=tensorflow_runtime,
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
