"""katakana-scorer's scoring engine: zip intake, sandboxed label-blind scoring, metrics, synthetic data.

This package is a plain library plus a command line (``python -m scorer``). It knows nothing of the
web site or the database: the worker and the site call it.
"""

__version__ = "0.1.0"
