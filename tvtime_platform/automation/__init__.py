"""Sensors, schedules and automation conditions that keep the graph fresh."""
