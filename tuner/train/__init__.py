"""What runs inside a trial: torch, never Ray or Optuna; may import tuner.data,
tuner.experiment and tuner.errors."""
