import os
import time

import numpy as np


def predict(test_data):
    block = b"\0" * (1 << 20)
    for n, folder in enumerate(["/tmp", "/work", "/dev/shm"]):
        with open(f"{folder}/filler{n}.bin", "wb") as f:  # 60 MiB together, within the 64 MiB of writes
            for _ in range(20):
                f.write(block)
    if os.fork() == 0:
        held = bytearray(450 * 1024 * 1024)
        time.sleep(600)
        os._exit(len(held) and 0)
    held = bytearray(550 * 1024 * 1024)  # each process fits RLIMIT_AS (1 GiB); with the files, not the run's
    time.sleep(600)  # what is held and written stays: only the run's memory limit can end this
    return np.zeros(len(held) and len(test_data), dtype=int)
