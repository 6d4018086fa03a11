"""Marts: `daily_active_users` and `show_popularity`, staged, audited and published to the warehouse."""
