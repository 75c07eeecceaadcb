"""Seeing inside the network: neuron layouts, panels, video, saliency replay, TensorBoard."""
