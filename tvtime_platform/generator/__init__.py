"""Realistic generated data for the platform: a show catalog and hourly landing files of app events."""
