"""The transformations, as SQL over table expressions: one definition each, free of Dagster, easy to test."""
