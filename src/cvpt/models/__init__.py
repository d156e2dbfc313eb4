"""Models: the backbone families (VideoMAE ViT, Video Swin), checkpoint loading, and the
compressed-domain model and its registered tuning methods."""

from cvpt.models.backbone import VideoBackbone
from cvpt.models.checkpoint import CheckpointError, load_backbone, save_backbone
from cvpt.models.compressed import METHODS, CompressedVideoModel
from cvpt.models.factory import create_model, list_models
from cvpt.models.methods import TuningOptions, get_method, list_methods
from cvpt.models.pretrained import BackboneMismatchError, load_model
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
    "load_model",
    "save_backbone",
]
