"""The Celery side of the service: scoring submissions, sending result emails, sweeping up after crashes.

Nothing outside this package imports it: the site sends work by task name through :mod:`app.queue`,
and everything here runs in a ``celery -A worker.celery_app worker`` process.
"""
