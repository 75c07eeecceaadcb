"""Thin command lines where the simulator and the learned driver meet."""
