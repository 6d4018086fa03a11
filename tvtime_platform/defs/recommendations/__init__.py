"""Recommendations: the interaction matrix, the factors trained on it, and the published recommendations."""
