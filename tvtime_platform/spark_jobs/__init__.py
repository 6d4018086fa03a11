"""Scripts submitted to Spark (`spark-submit` locally, steps on EMR); each runs without the platform installed."""
