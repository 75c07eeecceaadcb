"""Grids of trainings and evaluations: models x seeds (x recipes) x suites, resumable."""
