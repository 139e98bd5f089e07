"""Model fixtures: a real tiny ONNX detector and the shipped baseline."""
