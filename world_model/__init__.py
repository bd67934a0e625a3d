"""Frozen V-JEPA 2 encoder, feature cache and action-conditioned predictor."""
