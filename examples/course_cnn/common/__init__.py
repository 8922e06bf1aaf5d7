"""自作の NumPy CNN 部品（『ゼロから作るDeep Learning』6・7 章の流儀: im2col の畳み込み、Batch Normalization）。

Hand-written NumPy layers for the course-sized katakana example, written as the textbook writes them
(not tuned for speed): this is what a trainee's network costs the scoring workers. This folder is zipped
together with submit_katakana.py, exactly as a trainee's own ``common/`` would be.
"""
