"""Data-quality rules as asset checks, one module per guarded table (the old quality subDAGs)."""
