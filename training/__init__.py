"""Training: data loading, fine-tuning, ONNX export and evaluation (needs the ``train`` extra)."""
