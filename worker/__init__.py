"""The Celery side of the service: scoring submissions, sending result emails, sweeping up after crashes.

Nothing outside this package imports it: the site sends work by task name through :mod:`app.queue`,
and everything here runs in a ``celery -A worker.celery_app worker`` process.
"""

import os

# A worker runs one task at a time, and its own numpy work (the similarity update) is small matrix
# products: BLAS threads would only spin on the cores the sandbox and the other workers need (they
# doubled the update's CPU time). Set before anything loads numpy; an operator's own value wins.
# The sandbox sets its own (scorer.sandbox.bwrap).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
