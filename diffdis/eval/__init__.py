"""Evaluation: metrics on score matrices and an independent judge of generated images."""
