"""Evaluation: metrics on score matrices, an independent judge of generated images, and the benchmark runs
(`sweep`: classification and retrieval; `generate_run`: generation) with their records (`results`)."""
