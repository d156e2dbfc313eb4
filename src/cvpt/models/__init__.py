"""Models: the backbone families (VideoMAE ViT, Video Swin), backbone weights loading, and
the compressed-domain model and its registered tuning methods (a trained model is loaded back
by :func:`cvpt.load_model`, :mod:`cvpt.loading`)."""

from cvpt.errors import CheckpointError
from cvpt.models.backbone import VideoBackbone
from cvpt.models.backbone_weights import load_backbone, save_backbone
from cvpt.models.compressed import METHODS, CompressedVideoModel
from cvpt.models.factory import create_model, list_models
from cvpt.models.identity import BackboneMismatchError
from cvpt.models.methods import TuningOptions, get_method, list_methods
from cvpt.models.registry import backbone_config, create_backbone, list_backbones
from cvpt.models.swin import SwinConfig, SwinTransformer3d
from cvpt.models.vit import VisionTransformer, ViTConfig

__all__ = [
    "METHODS",
    "BackboneMismatchError",
    "CheckpointError",
    "CompressedVideoModel",
    "SwinConfig",
    "SwinTransformer3d",
    "TuningOptions",
    "ViTConfig",
    "VideoBackbone",
    "VisionTransformer",
    "backbone_config",
    "create_backbone",
    "create_model",
    "get_method",
    "list_backbones",
    "list_methods",
    "list_models",
    "load_backbone",
    "save_backbone",
]
