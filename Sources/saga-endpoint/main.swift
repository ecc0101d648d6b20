print("saga-endpoint")
