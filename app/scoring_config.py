"""The scoring engine's configuration, derived from the service's settings.

One function so the site's pre-flight, the worker's scoring runs and its start-up self-test use the
very same runtime, sandbox policy and limits — in production, none of them may fall back to an
unsandboxed run.
"""

from __future__ import annotations

from app.settings import Settings
from scorer.disclosure import Disclosure
from scorer.pipeline import ScoringConfig
from scorer.runtime import find_runtime
from scorer.sandbox import SandboxConfig


def scoring_config(settings: Settings) -> ScoringConfig:
    # from_env still reads the limit overrides (KATAKANA_WALL_SECONDS, _MEMORY_MB, _CPUS); the
    # sandbox policy comes from Settings, whose allow_unsandboxed defaults to False.
    return ScoringConfig.from_env(
        runtime=find_runtime(settings.runtime_python),
        sandbox=SandboxConfig(
            mode=settings.sandbox_mode,
            allow_unsandboxed=settings.allow_unsandboxed,
            cgroup_mode=settings.sandbox_cgroup_mode,
            cgroup_parent=settings.sandbox_cgroup_parent,
        ),
        disclosure=Disclosure(settings.hidden_run_excerpt_bytes, settings.hidden_run_stored_log_bytes),
    )
