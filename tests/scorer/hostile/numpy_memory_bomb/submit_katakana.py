import numpy as np


def predict(test_data):
    return np.ones((1 << 40,), dtype=np.uint8)  # a terabyte
