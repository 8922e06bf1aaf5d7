"""Celery tasks. Each is thin: it names the work and its delivery options; the logic lives beside it."""
