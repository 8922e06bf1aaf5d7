import os


def predict(test_data):
    # A result event whose size is not a number: the parent's parser must not raise on it.
    os.write(3, b'{"event": "result", "kind": "labels", "bytes": "lots", "predict_seconds": "soon"}\n')
    os._exit(0)
