import time


def predict(test_data):
    time.sleep(10**6)
