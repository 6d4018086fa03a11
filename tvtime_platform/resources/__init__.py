"""Resources and IO managers: where data lives and which engine computes on it."""
