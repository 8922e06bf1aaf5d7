"""The incremental similarity update at cohort scale: 100 and 300 trainees × 10 submissions, one core.

Seeds one cohort (bulk inserts, schema migrated by Alembic as in production) with 3,000 scored
submissions, each with 14,500 kept predictions and three file digests, and every pair of trainees in
``similarity_pairs``, then times what the worker does after each new result
(``worker.similarity.update_for_submission`` in its own transaction, committed): list the cohort's
scored submissions, read the predictions the process does not keep yet (the new one), count them into
the cohort's kept answers, leave the new one's trainee out (the reference: each image's answers, each
model's error rate and class preferences), compare (the copy index both ways), measure this trainee's
stored strongest pairs again, pick each other trainee's strongest pair, write the pairs. The first
update of a process (or of a cohort it no longer keeps) reads every prediction: timed apart, the kept
cohorts forgotten before each (``--cold``).

The predictions imitate real models: each image has a difficulty shared by every model and a class
it is most often mistaken for, so independent "models" agree on part of their mistakes as real ones
do (error agreement about 0.5–0.7), which keeps the pairs' updates realistic. Each seeded pair has
its strongest pair of submissions stored with copy-index figures measured on the whole cohort, as in
a live cohort between deadlines: the update weighs them against the new ones without measuring
them again, and rewrites only the pairs whose figures change.

The process is pinned to one CPU. Figures: the pure comparison (numpy only: from the kept answers, and
counting the cohort from scratch), and the whole update (database included), medians and maxima of
--repeat new results, as wall time and as this
process's CPU time (what one free core needs, whatever else the machine is doing; with PostgreSQL
the server's own CPU is not in it, its share shows in the wall time).

    .venv/bin/python bench/similarity.py [--trainees 100] [--per-trainee 10] [--repeat 11] [--cold 3]
                                         [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as the worker sets them (worker/__init__.py), before numpy loads

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _seed import T0, insert_cohort, insert_in_batches, insert_users, migrate, postgres, submission_row, table  # noqa: E402
from sqlalchemy import create_engine, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.models import (  # noqa: E402
    SimilarityPair,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    TestSet,
)
from app.settings import Settings  # noqa: E402
from scorer.classes import NUM_CLASSES, TEST_COUNTS  # noqa: E402
from scorer.similarity import Answers, Reference  # noqa: E402
from worker.similarity import forget_kept_cohorts, update_for_submission  # noqa: E402

BATCH = 500


class Models:
    """Prediction vectors that err where real models err: on hard images, towards a likely class."""

    def __init__(self, labels: np.ndarray, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.labels = labels
        self.difficulty = self.rng.beta(0.5, 4.0, size=len(labels))  # most images easy, a few hard
        offset = self.rng.integers(1, NUM_CLASSES, size=len(labels))
        self.likely_wrong = (labels + offset) % NUM_CLASSES  # the class each image is mistaken for

    def predictions(self, error_rate: float) -> np.ndarray:
        n = len(self.labels)
        p_wrong = np.clip(self.difficulty * error_rate / self.difficulty.mean(), 0, 1)
        wrong = self.rng.random(n) < p_wrong
        other = (self.labels + self.rng.integers(1, NUM_CLASSES, size=n)) % NUM_CLASSES
        guess = np.where(self.rng.random(n) < 0.6, self.likely_wrong, other)
        return np.where(wrong, guess, self.labels).astype(np.uint8)


def _sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def seed(url: str, labels_path: Path, models: Models, trainees: int, per_trainee: int) -> tuple[int, list[int]]:
    engine = create_engine(url)
    sub_t, pair_t, test_t, file_t = (table(m) for m in (Submission, SimilarityPair, TestSet, SubmissionFile))
    rng = np.random.default_rng(1)
    with engine.begin() as conn:
        cohort_id = insert_cohort(conn, "dl_bench_sim")
        testset_id = conn.execute(
            insert(test_t).returning(test_t.c.id),
            {"version": "bench", "data_path": "unused", "labels_path": str(labels_path), "sha256": "bench",
             "n_images": len(models.labels), "class_counts": list(TEST_COUNTS), "created_at": T0, "is_active": True},
        ).scalar_one()  # fmt: skip
        user_ids = insert_users(conn, trainees)

        def submissions() -> Iterator[dict[str, Any]]:
            for i, user_id in enumerate(user_ids):
                skill = rng.uniform(0.03, 0.15)
                for k in range(per_trainee):
                    yield submission_row(
                        user_id, cohort_id, T0, _sha("zip", i, k), testset_id=testset_id,
                        predictions=models.predictions(skill * (1 - 0.05 * k)).tobytes(),
                        file_hashes=[{"kind": "zip", "name": "", "sha256": _sha("zip", i, k)},
                                     {"kind": "weights", "name": "m/model.pkl", "sha256": _sha("w", i, k)},
                                     {"kind": "code", "name": "m/submit_katakana.py", "sha256": _sha("c", i)}],
                    )  # fmt: skip

        insert_in_batches(conn, sub_t, submissions(), BATCH)
        conn.execute(
            insert(file_t),
            [{"submission_id": r.id, "cohort_id": cohort_id, "user_id": r.user_id, "kind": h["kind"],
              "name": h["name"], "sha256": h["sha256"]}
             for r in conn.execute(select(sub_t.c.id, sub_t.c.user_id, sub_t.c.file_hashes))
             for h in r.file_hashes],
        )  # fmt: skip
        first_sub = {
            int(u): int(s)
            for u, s in conn.execute(
                select(sub_t.c.user_id, sub_t.c.id).where(sub_t.c.cohort_id == cohort_id).order_by(sub_t.c.id.desc())
            )
        }

        def pairs() -> Iterator[dict[str, Any]]:
            for a_index, a in enumerate(user_ids):
                for b in user_ids[a_index + 1 :]:
                    both = int(rng.integers(200, 900))
                    same = int(both * rng.uniform(0.5, 0.7))
                    yield {
                        "cohort_id": cohort_id, "user_a_id": a, "user_b_id": b, "testset_id": testset_id,
                        "submission_a_id": first_sub[a], "submission_b_id": first_sub[b], "both_wrong": both,
                        "same_wrong": same, "error_agreement": same / both, "agreement": 0.9, "shared_files": [],
                        "shared_count": 0, "updated_at": T0, "expected_same_wrong": same * 0.8,
                        "lift": float(rng.normal(0.2, 0.4)), "lift_se": 0.1, "same_wrong_easy": same // 4,
                        "reference_trainees": trainees - 2,
                    }  # fmt: skip

        insert_in_batches(conn, pair_t, pairs(), 5000)
    engine.dispose()
    return int(cohort_id), user_ids


def _new_result(
    session: Session, user_id: int, cohort_id: int, testset_id: int | None, predictions: np.ndarray, key: object
) -> int:
    with session.begin():
        row = Submission(
            user_id=user_id, cohort_id=cohort_id, created_at=T0, quota_day=T0.date(),
            status=SubmissionStatus.SUCCEEDED, original_filename="new.zip", zip_sha256=_sha("new", key),
            zip_size=1, storage_key="zips/none.zip", testset_id=testset_id, predictions=predictions.tobytes(),
            file_hashes=[{"kind": "zip", "name": "", "sha256": _sha("new", key)}],
        )  # fmt: skip
        session.add(row)
        session.flush()
        new_id = row.id
    session.expunge_all()
    return int(new_id)


def _timed_update(session: Session, new_id: int, settings: Settings) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    with session.begin():
        update_for_submission(session, new_id, settings, dt.datetime.now(dt.UTC))
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000


def measure(
    url: str, cohort_id: int, user_ids: list[int], models: Models, args: argparse.Namespace
) -> dict[str, list[float]]:
    engine = create_engine(url)
    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    times: dict[str, list[float]] = {
        name: [] for kind in ("kept", "scratch", "update", "cold") for name in (kind, f"{kind}_cpu")
    }
    forget_kept_cohorts()  # as a fresh process: the first update reads the whole cohort
    with Session(engine) as session:
        testset_id = session.scalar(select(TestSet.id).where(TestSet.version == "bench"))
        session.rollback()  # end the read's implicit transaction: each step below has its own
        news = []
        for r in range(args.repeat + 1):  # the first run warms the caches and is not counted
            user_id = user_ids[r % len(user_ids)]
            predictions = models.predictions(0.08)
            new_id = _new_result(session, user_id, cohort_id, testset_id, predictions, r)
            update, update_cpu = _timed_update(session, new_id, settings)
            news.append((user_id, predictions))
            if r:
                times["update"].append(update)
                times["update_cpu"].append(update_cpu)
        rows = session.execute(
            select(Submission.user_id, Submission.predictions)
            .where(Submission.cohort_id == cohort_id)
            .order_by(Submission.id)
        ).all()
        session.rollback()
        rows = rows[: len(rows) - len(news)]  # the cohort as seeded; the new results are added one by one
        # The pure comparison's own copy of the cohort, kept up to date as the worker's is.
        kept = Answers(models.labels)
        stack = np.frombuffer(b"".join(r.predictions for r in rows), dtype=np.uint8).reshape(len(rows), -1)
        kept.add(stack, np.array([r.user_id for r in rows]), np.arange(len(rows)))
        # The same comparisons again, numpy alone (apart: counting a cohort from scratch allocates
        # and frees hundreds of megabytes, which would slow what is timed after it).
        for r, (user_id, predictions) in enumerate(news):
            kept.add(predictions[None, :], np.array([user_id]), np.array([len(rows) + r]))
            started, cpu = time.perf_counter(), time.process_time()
            Reference.leaving_out(kept, user_id).compare_strongest(predictions)
            if r:
                times["kept"].append((time.perf_counter() - started) * 1000)
                times["kept_cpu"].append((time.process_time() - cpu) * 1000)
        for r, (user_id, predictions) in enumerate(news):
            others = kept.groups != user_id
            started, cpu = time.perf_counter(), time.process_time()
            Reference(models.labels, kept.stack[others], kept.groups[others]).compare_strongest(predictions)
            if r:
                times["scratch"].append((time.perf_counter() - started) * 1000)
                times["scratch_cpu"].append((time.process_time() - cpu) * 1000)
        for r in range(args.cold):  # a process that does not keep the cohort (yet): every prediction read
            forget_kept_cohorts()
            user_id = user_ids[(args.repeat + 1 + r) % len(user_ids)]
            new_id = _new_result(session, user_id, cohort_id, testset_id, models.predictions(0.08), ("cold", r))
            cold, cold_cpu = _timed_update(session, new_id, settings)
            times["cold"].append(cold)
            times["cold_cpu"].append(cold_cpu)
    engine.dispose()
    return times


def run(name: str, url: str, tmp: Path, args: argparse.Namespace) -> None:
    labels = np.repeat(np.arange(NUM_CLASSES), TEST_COUNTS)
    labels_path = tmp / f"labels-{name}.npy"
    np.save(labels_path, np.eye(NUM_CLASSES, dtype=np.float32)[labels])
    models = Models(labels)
    started = time.perf_counter()
    migrate(url)
    cohort_id, user_ids = seed(url, labels_path, models, args.trainees, args.per_trainee)
    print(f"\n{name}: {args.trainees} trainees × {args.per_trainee} submissions "
          f"({len(labels):,} predictions each) seeded in {time.perf_counter() - started:.1f} s")  # fmt: skip
    times = measure(url, cohort_id, user_ids, models, args)
    for label, key in (
        ("numpy, from the kept answers", "kept"),
        ("numpy, counted from scratch", "scratch"),
        ("whole update, committed", "update"),
        ("first update of a process", "cold"),
    ):
        wall, cpu = times[key], times[f"{key}_cpu"]
        if not wall:
            continue
        print(f"  {label:<30} wall median {statistics.median(wall):7.1f} ms  max {max(wall):7.1f} ms   "
              f"this process's CPU median {statistics.median(cpu):7.1f} ms  max {max(cpu):7.1f} ms")  # fmt: skip
    print(
        f"  load average during the run: {os.getloadavg()[0]:.1f} (the CPU time is what one free core needs; "
        "PostgreSQL's own CPU is not in it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trainees", type=int, default=100)
    parser.add_argument("--per-trainee", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--cold", type=int, default=3, help="updates timed in a process that keeps no cohort")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the issue asks
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as tmp:
        if args.only in (None, "sqlite"):
            run("SQLite", f"sqlite:///{tmp}/bench.sqlite3", Path(tmp), args)
        if args.only in (None, "postgresql"):
            with postgres() as url:
                run("PostgreSQL", url, Path(tmp), args)


if __name__ == "__main__":
    main()
