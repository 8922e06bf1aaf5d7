import base64


def predict(test_data):
    # The images themselves, base64-encoded, as the message: MBs meant to leave with the log.
    blob = base64.b64encode(test_data.tobytes()).decode()
    middle = "-".join(["LEAK", "MIDDLE"])  # not spelled out here: the traceback shows this file's lines
    raise ValueError("LEAK-START " + blob * 2 + f" {middle} " + blob * 2 + " LEAK-END")
