"""Using a trained model outside its experiment: the model file (model.pt), loading it as a
classifier that takes images as they come, and exporting it to TorchScript or ONNX.

Torch only; never Ray or Optuna.
"""
