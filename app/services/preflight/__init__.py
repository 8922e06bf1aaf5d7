"""The pre-flight: the scoring engine's quick check of an uploaded zip, before a daily slot is spent.

One home for the stage, whose one name is *pre-flight* (``preflight`` in code):

- :mod:`.verdict`: what the pre-flight answered (``PreflightVerdict``) and the cache of verdicts by zip;
- :mod:`.gate`: one pre-flight at a time per trainee, and an hourly rate each;
- :mod:`.lifecycle`: a pre-flight from the upload to its verdict: start, claim, settle, confirm, expire;
- :mod:`.near_chance`: the question asked before an upload is spent on a zip that scored near chance;

The pre-flight itself runs on a pre-flight worker (``worker.tasks.preflight``), never in the web process.
"""
