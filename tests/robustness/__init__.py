"""Shared fixtures of the robustness, kill and property tests (tiny datasets, encoders, models)."""
