"""Driving in a simulator: one closed-loop episode, the parallel runner, and recording."""
