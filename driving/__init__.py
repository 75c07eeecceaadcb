"""The learned driver and its data: wiring, CfC/LTC cells, policies, episodes, training, evaluation.

``driving`` may import ``perception`` but never ``sim``: the two meet only in ``tools/``.
"""
