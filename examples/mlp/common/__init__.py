"""自作の NumPy ニューラルネットワーク部品（『ゼロから作るDeep Learning』の流儀）。

Hand-written NumPy layers for the fully connected katakana example. This folder is zipped together with
submit_katakana.py, exactly as a trainee's own ``common/`` would be: the scorer has no copy of it.
"""
