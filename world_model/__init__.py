"""Frozen V-JEPA 2 encoder, feature cache and action-conditioned predictor."""
# --- encoder and feature cache (issue 3) ---
from world_model.encoder import (
    ENCODER_CONFIGS,
    EncoderConfig,
    VideoViT,
    as_feature_map,
    build_encoder,
    vit_base,
    vit_giant,
    vit_gigantic,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from world_model.encoder_loading import encoder_identity, load_encoder, save_encoder
from world_model.frozen_encoder import FrozenEncoder
from world_model.preprocessing import frames_to_clips
# --- AC predictor and the world-model file (issue 5) ---
from world_model.model_file import WorldModel, load_world_model, save_world_model
from world_model.predictor import ACPredictor, PredictorConfig, build_predictor, load_predictor, normalize_reps
