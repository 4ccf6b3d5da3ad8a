"""Scenario fixtures for the functional suite: loading and relative-date resolution."""
