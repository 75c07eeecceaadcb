"""Imitation learning: the training loop, its config and its resumable state."""
