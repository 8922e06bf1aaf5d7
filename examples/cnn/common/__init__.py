"""自作の NumPy CNN 部品（『ゼロから作るDeep Learning』7 章の流儀、im2col による畳み込み）。

Hand-written NumPy layers for the convolutional katakana example. This folder is zipped together with
submit_katakana.py, exactly as a trainee's own ``common/`` would be: the scorer has no copy of it.
"""
