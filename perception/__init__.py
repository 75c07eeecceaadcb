"""Pixels to features: camera preprocessing, the conv head, augmentation and saliency.

``perception`` imports neither ``driving`` nor ``sim``.
"""
