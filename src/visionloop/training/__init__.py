"""Training side of the loop: Ultralytics training, evaluation and the MLflow model registry."""
