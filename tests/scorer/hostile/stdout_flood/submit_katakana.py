def predict(test_data):
    line = "spam " * 200
    while True:
        print(line)
