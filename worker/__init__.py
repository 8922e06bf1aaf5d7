"""The Celery side of the service: scoring submissions, sending result emails, sweeping up after crashes.

The site only ever talks to this package through :mod:`worker.queue`; everything else runs in a
``celery -A worker.celery_app worker`` process.
"""
