"""``python -m scorer``: the trainee's local checker and the admin's tools.

    dataset  --out DIR [--seed N] [--polarity P] [--dtype D]
                                           write the synthetic katakana set (four .npy files); by
                                           default in the course's format: dark on light, float32
    check    ZIP [--sample F] [--json] [--runtime R]
                                           pre-flight, exactly as the site runs it before an upload
    run      ZIP --test-data F --test-labels F [--json] [--full-log] [--runtime R]
                                           full sandboxed scoring, exactly as the worker runs it:
                                           the log is cut to the excerpt the site shows unless
                                           --full-log
    selftest [--runtime R]                 hostile probes against the sandbox, in each installed runtime
                                           (TensorFlow's with its libraries loaded); non-zero if any
                                           gets through
    runtime  [--json]                      the runtimes (NumPy; TensorFlow + Keras if installed) with
                                           their Python and library versions

``check`` and ``run`` choose the runtime as the service does, from what the code imports (tensorflow
or keras: the TensorFlow runtime); ``--runtime numpy|tensorflow`` forces one.

Options before the command: ``--lang ja|en`` (default: the terminal's locale, LC_ALL / LC_MESSAGES /
LANG, read by :func:`main` only), ``--runtime-python``, ``--tensorflow-runtime-python``,
``--sandbox-mode``, ``--wall-seconds``, ``--memory-mb``, ``--cpus``: the engine is configured from
these values and reads no environment.

A trainee without the hidden set runs ``run`` against their own train files and sees what the
server will do. Exit status: 0 accepted/succeeded, 1 refused/failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import locale
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scorer.errors import Lang
from scorer.report import CheckReport, ScoreReport


def lang_from_locale(names: Sequence[str]) -> Lang:
    """Japanese when the first locale name that is set is Japanese (as LC_ALL overrides LANG)."""
    first = next((name for name in names if name), "")
    return "ja" if first.lower().startswith("ja") else "en"


def _terminal_lang() -> Lang:
    """The terminal's language: the one environment read in ``scorer``, made by :func:`main` alone.

    The library below takes the language as a value (``--lang``); only the outermost entry point,
    where a trainee types the command, may guess it from the locale.
    """
    names = [os.environ.get(k, "") for k in ("LC_ALL", "LC_MESSAGES", "LANG")]
    return lang_from_locale([*names, locale.getlocale()[0] or ""])


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _print_error_block(report: CheckReport | ScoreReport, lang: Lang) -> None:
    if report.error is not None:
        print(f"[{report.error.code.value}] {report.error.message(lang)}")
    if report.log.strip():
        print("--- log ---")
        print(report.log.rstrip())


def _print_notices(report: CheckReport | ScoreReport, lang: Lang) -> None:
    for notice in report.notices:
        print(f"note: {notice.ja if lang == 'ja' else notice.en}")


def _cmd_dataset(args: argparse.Namespace) -> int:
    from scorer.dataset import DataFormat, write_dataset

    paths = write_dataset(Path(args.out), seed=args.seed, fmt=DataFormat(args.polarity, args.dtype))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    """The engine's configuration from the command line, as a value: the engine reads no environment."""
    from scorer.pipeline import ScoringConfig
    from scorer.sandbox import SandboxConfig
    from scorer.sandbox.types import Limits

    limits = Limits().overridden(wall_seconds=args.wall_seconds, memory_mb=args.memory_mb, cpus=args.cpus)
    # A laptop without bubblewrap falls back to a plain subprocess, loudly; the service never does.
    sandbox = SandboxConfig(mode=args.sandbox_mode, allow_unsandboxed=True)
    runtimes = _runtimes(args)
    return ScoringConfig(runtime=runtimes.numpy, tensorflow_runtime=runtimes.tensorflow, sandbox=sandbox, limits=limits)


def _runtimes(args: argparse.Namespace) -> Any:
    """Both runtimes as set up (scripts/setup.sh) or named; a trainee's own interpreter stands in for
    either when it has the libraries."""
    from scorer.runtime import Runtimes, find_runtime, find_tensorflow_runtime

    numpy = find_runtime(args.runtime_python, cache_dir=_cache_dir())
    tensorflow = find_tensorflow_runtime(args.tensorflow_runtime_python, cache_dir=_cache_dir(), own_interpreter=True)
    return Runtimes(numpy, tensorflow)


def _runtime_choice(args: argparse.Namespace, *, refuse_missing: bool) -> Any:
    """As the service chooses (from the imports; for ``check``, a missing runtime is a refusal), or
    the runtime ``--runtime`` names."""
    from scorer.runtime import RuntimeName
    from scorer.runtime_choice import RuntimeChoice

    return RuntimeChoice(refuse_missing=refuse_missing, forced=RuntimeName(args.runtime) if args.runtime else None)


def _cached_smoke_sample() -> Path | None:
    """The synthetic smoke images (2 per class), generated once and kept in the cache: generating
    them takes longer than the rest of a check's own work. None (generate each time) if the cache
    cannot be written. The name follows the generator's source, so a changed generator is used."""
    import hashlib
    import tempfile

    sources = sorted((Path(__file__).parent / "dataset").glob("*.py"))
    try:
        digest = hashlib.sha256(b"".join(source.read_bytes() for source in sources)).hexdigest()[:16]
        path = _cache_dir() / f"smoke-sample-{digest}.npy"
        if path.is_file():
            return path
        import numpy as np

        from scorer.dataset import sample_images
        from scorer.smoke import SMOKE_PER_CLASS

        images, _ = sample_images(per_class=SMOKE_PER_CLASS)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
            np.save(f, images, allow_pickle=False)
        os.replace(f.name, path)
        return path
    except OSError:
        return None


def _cache_dir() -> Path:
    """Where the command line keeps the runtime probe's answer between invocations (XDG cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "katakana-scorer"


def _cmd_check(args: argparse.Namespace) -> int:
    from scorer.pipeline import check_submission

    if args.sample_labels and not args.sample:
        print("--sample-labels needs --sample (the images they label)", file=sys.stderr)
        return 2
    report = check_submission(
        Path(args.zip),
        config=_config(args),
        sample_data=Path(args.sample) if args.sample else _cached_smoke_sample(),
        sample_labels=args.sample_labels and Path(args.sample_labels),
        runtime=_runtime_choice(args, refuse_missing=True),
    )
    if args.json:
        _print_json(report.to_json())
    else:
        _print_notices(report, args.lang)
        if report.smoke is not None:
            s = report.smoke
            print(f"smoke accuracy: {s.accuracy:.2f} ({s.correct}/{s.total})")
            if s.near_chance():
                from scorer.smoke import near_chance_text

                print(f"note: {near_chance_text(args.lang, s)}")
        if report.runtime:
            print(f"runtime: {report.runtime}")
        if report.ok:
            print("OK: 提出できます / ready to submit" + (f" ({report.entry})" if report.entry else ""))
        else:
            print("REFUSED: 提出できません / not accepted")
            _print_error_block(report, args.lang)
    return 0 if report.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from scorer.pipeline import score_submission

    config = _config(args)
    if args.full_log:  # local debugging on one's own data: nothing hidden to protect
        config = dataclasses.replace(config, disclosure=dataclasses.replace(config.disclosure, excerpt_bytes=None))
    report = score_submission(
        Path(args.zip),
        test_data=Path(args.test_data),
        test_labels=Path(args.test_labels),
        config=config,
        runtime=_runtime_choice(args, refuse_missing=False),
    )
    if args.json:
        _print_json(report.to_json())
        return 0 if report.status == "succeeded" else 1
    _print_notices(report, args.lang)
    if report.status == "succeeded" and report.metrics is not None:
        m = report.metrics
        print(f"Test accuracy: {m.accuracy:.4f}  ({m.correct}/{m.total})")
        print(f"Macro accuracy: {m.macro_accuracy:.4f}")
        if m.loss is not None:
            print(f"Test loss: {m.loss:.4f}")
        for c in m.per_class:
            acc = "-" if c.accuracy is None else f"{c.accuracy:.4f}"
            print(f"  {c.class_id:2d} {c.label}  {acc}  ({c.correct}/{c.total})")
        print(f"runtime: {report.runtime.get('name', '?')}")
        print(f"duration: {report.duration_s:.2f} s, peak memory: {report.peak_memory_mb} MiB")
        return 0
    print("FAILED: 採点できませんでした / scoring failed")
    _print_error_block(report, args.lang)
    return 1


def _cmd_selftest(args: argparse.Namespace) -> int:
    from scorer.pipeline import ScoringConfig
    from scorer.runtime import RuntimeName
    from scorer.sandbox.selftest import format_report, run_selftest

    config: ScoringConfig = _config(args)
    runtimes = config.runtimes.installed()
    if args.runtime:
        runtimes = tuple(r for r in runtimes if r.name is RuntimeName(args.runtime))
        if not runtimes:
            print(f"the {RuntimeName(args.runtime).label} runtime is not installed (scripts/setup.sh builds it)")
            return 1
    ok = True
    for runtime in runtimes:  # the same probes in each runtime a submission may run in
        print(f"--- {runtime.name.value} ({runtime.name.label}): {runtime.python}")
        report = run_selftest(config.sandbox, runtime)
        print(format_report(report))
        ok = ok and report.ok
    return 0 if ok else 1


def _cmd_runtime(args: argparse.Namespace) -> int:
    from scorer.runtime import RuntimeName

    runtimes = _runtimes(args)
    listed: dict[str, Any] = {}
    for name in RuntimeName:
        runtime = runtimes.get(name)
        if runtime is None:
            listed[name.value] = None
            continue
        listed[name.value] = {"python_path": str(runtime.python), **runtime.info().versions()}
    if args.json:
        # The NumPy runtime's versions stay at the top level, as before there were two runtimes.
        _print_json({**(listed["numpy"] or {}), "runtimes": listed})
        return 0
    for key, entry in listed.items():
        label = RuntimeName(key).label
        if entry is None:
            print(f"{key} ({label}): not installed (scripts/setup.sh builds it)")
            continue
        default = " — the reference, used unless the code imports tensorflow or keras" if key == "numpy" else ""
        print(f"{key} ({label}): {entry['python_path']}{default}")
        for library, version in entry.items():
            if library != "python_path":
                print(f"  {library} {version}")
    return 0


def build_parser(default_lang: Lang = "en") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scorer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lang", choices=["ja", "en"], default=default_lang, help="language of messages (default: from the locale)"
    )
    parser.add_argument("--runtime-python", help="the Python that runs submissions (default: the reference runtime)")
    parser.add_argument(
        "--tensorflow-runtime-python",
        help="the Python that runs submissions importing tensorflow or keras (default: the TensorFlow runtime)",
    )
    parser.add_argument("--sandbox-mode", choices=["auto", "bwrap", "unsandboxed"], default="auto")
    parser.add_argument("--wall-seconds", type=float, help="time limit of a run (default: 600)")
    parser.add_argument("--memory-mb", type=int, help="memory limit of a run (default: 4096)")
    parser.add_argument("--cpus", type=int, help="BLAS/OpenMP threads of a run (default: 1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="write the synthetic katakana data set")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--polarity",
        choices=["dark-on-light", "light-on-dark"],
        default="dark-on-light",
        help="dark-on-light: the course's format (ink about 0, paper 255); light-on-dark: like MNIST",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "uint8"],
        default="float32",
        help="float32: the course's format (whole numbers 0.0-255.0); uint8: a quarter of the size",
    )
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser("check", help="pre-flight a submission zip")
    p.add_argument("zip")
    p.add_argument("--sample", help="a .npy of images (N, 1, 28, 28) for the smoke run")
    p.add_argument(
        "--sample-labels",
        help="their one-hot labels (train_label.npy): 2 images per class are run and scored outside the sandbox",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--runtime", choices=["numpy", "tensorflow"], help="run in this runtime (default: from the imports)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="score a submission zip in the sandbox")
    p.add_argument("zip")
    p.add_argument("--test-data", required=True)
    p.add_argument("--test-labels", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--full-log",
        action="store_true",
        help="show the whole log; by default it is cut to the excerpt the site shows for the hidden set",
    )
    p.add_argument("--runtime", choices=["numpy", "tensorflow"], help="run in this runtime (default: from the imports)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("selftest", help="probe the sandbox with hostile code, in each installed runtime")
    p.add_argument("--runtime", choices=["numpy", "tensorflow"], help="probe in this runtime only")
    p.set_defaults(func=_cmd_selftest)

    p = sub.add_parser("runtime", help="show the runtimes and their versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_runtime)
    return parser


def main(argv: list[str] | None = None, *, default_lang: Lang | None = None) -> int:
    """The command line (``python -m scorer``, ``katakana-scorer``); ``default_lang`` None: the locale's."""
    args = build_parser(_terminal_lang() if default_lang is None else default_lang).parse_args(argv)
    result: int = args.func(args)
    sys.stdout.flush()
    return result
