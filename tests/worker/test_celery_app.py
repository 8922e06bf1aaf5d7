"""Each queue's delivery options come from one table (worker/celery_app.py), and what runs trainee
code is never handed out again after it lost its worker process (tested live in test_lost.py)."""

from __future__ import annotations

from app.queue import QUEUES, SANDBOXED_QUEUES
from worker.celery_app import DELIVERIES, app


def test_every_task_takes_its_options_from_the_table_and_no_global_default_hides_one() -> None:
    app.loader.import_default_modules()  # the task modules, as a worker imports them
    tasks = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert set(tasks) == set(DELIVERIES)
    for name, delivery in DELIVERIES.items():
        assert {key: getattr(tasks[name], key) for key in delivery.options} == delivery.options, name
        assert tasks[name].ignore_result  # the database row is the result
        assert app.amqp.router.route({}, name)["queue"].name == delivery.queue
    assert {delivery.queue for delivery in DELIVERIES.values()} == set(QUEUES)  # one task per queue
    # A task left out of the table gets Celery's defaults, not a global that was meant for another.
    assert not app.conf.task_acks_late and not app.conf.task_reject_on_worker_lost


def test_a_task_that_runs_trainee_code_is_not_delivered_again_when_its_process_is_lost() -> None:
    sandboxed = [delivery.options for delivery in DELIVERIES.values() if delivery.queue in SANDBOXED_QUEUES]
    assert len(sandboxed) == len(SANDBOXED_QUEUES)
    for options in sandboxed:
        assert options["acks_late"] and not options["reject_on_worker_lost"]
        assert options["time_limit"] > options["soft_time_limit"] > 0
