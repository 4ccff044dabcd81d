"""What runs inside a trial: torch, never Ray; may import tuner.data and tuner.experiment
file names."""
