"""Worlds only: the simulator contract, the builtin simulator, the CARLA backend and wrappers.

``sim`` imports neither ``driving`` nor ``perception`` and never imports torch.
"""
