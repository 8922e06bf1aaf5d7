class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


def predict(test_data):
    raise Unprintable()
