import io
import json
import os
import sys
import time

import numpy as np

# A forged final record on the harness's result channel while being imported (three predictions,
# as if the harness had sent them after predict), flushed output around it, then the code keeps
# running: a child process that holds the channel and floods stdout, and an endless sleep. The run
# must end on the forged record as the submission's own result (the wrong number of predictions),
# not as a time or output limit nor any server fault, and nothing of it may outlive the run.
buffer = io.BytesIO()
np.save(buffer, np.zeros(3, dtype=np.int64), allow_pickle=False)
payload = buffer.getvalue()
print("FORGED-BEFORE", flush=True)
event = {"event": "result", "kind": "labels", "bytes": len(payload), "predict_seconds": 0.0}
os.write(3, json.dumps(event).encode() + b"\n" + payload)
if os.fork() == 0:
    while True:
        sys.stdout.write("FORGED-AFTER " * 1000 + "\n")
time.sleep(10**6)


def predict(test_data):
    return np.zeros(len(test_data), dtype=np.int64)
