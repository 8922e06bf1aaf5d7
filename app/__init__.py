"""katakana-scorer's web site: accounts, uploads with the daily limit, results.

The site never scores anything itself: it checks an upload with the scoring engine's pre-flight,
records a ``queued`` submission and hands its id to the worker (``worker/``).
"""
