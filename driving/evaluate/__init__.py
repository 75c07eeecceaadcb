"""Closed-loop evaluation: suites, metrics, the evaluation run, reports, comparison over seeds."""
