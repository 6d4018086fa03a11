"""Activity: `user_sessions` and `tracked_episodes`, their checks, and the schedule that re-checks the sessions."""
