"""The compressed-domain video model: a frozen raw-video transformer fed I-frames, MVs and
residuals, tuned by one registered method (:mod:`cvpt.models.methods`).

Every method sees the same input (docs/design.md, *Model*): ``E_I`` = frozen patch embedding of the
I-frames, ``P_MV`` / ``P_R`` = learnable embeddings of the MVs / residuals, all on the same token
grid with the same positions, and every block runs on the three streams ``[P_MV, P_R, E_I]``
(Eq. 1). It builds on any backbone family through the contract of :mod:`cvpt.models.backbone`
(the ViT: one sequence of 3N tokens; Video Swin: the streams share each window). This module
owns what the methods share (the streams, pooling, freezing, saving); each method adds its
modules, the parameters it trains and its per-block hook (``cvpt info --all`` lists them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import ConfigError
from cvpt.models.backbone import VideoBackbone, check_video
from cvpt.models.hub import parse_hub_id, push_folder
from cvpt.models.identity import frozen_fingerprint
from cvpt.models.methods import TuningOptions, get_method, list_methods
from cvpt.models.prompts import PromptEmbed
from cvpt.models.registry import get_family, list_families
from cvpt.models.tuned import save_pretrained

METHODS = tuple(list_methods())  # the registered methods, in the order tables list them


def separate_stream_families() -> list[str]:
    """The registered families whose streams can attend each within itself."""
    return [f for f in list_families() if get_family(f).supports_separate_stream_attention]


def check_shared_options(backbone: VideoBackbone, options: TuningOptions) -> None:
    """:class:`ConfigError` for a shared option (:class:`TuningOptions`) this ``backbone``
    cannot take (each value's own type and range are checked when the options are made)."""
    if options.stream_attention == "separate" and not backbone.supports_separate_stream_attention:
        raise ConfigError(
            "stream_attention='separate' is an ablation of windowed backbones (families "
            f"{', '.join(separate_stream_families())}); on the {backbone.family} family all "
            "tokens attend to all (Eq. 1)"
        )


class CompressedVideoModel(nn.Module):
    """``model(iframes [B,3,T_I,H,W], mvs [B,2,T_P,H,W], residuals [B,3,T_P,H,W]) → logits``
    with T_P = ``clip.p_per_gop``·T_I, float32, normalised.

    ``method`` names a registered method (:func:`cvpt.models.methods.get_method`; the object
    is ``model.tuning``) and ``options`` is its options dataclass (``model.options``).
    ``clip`` (:class:`ClipSpec`, default the paper's: 4 GOPs × 3 P-frames, so T_I = 4 and
    T_P = 12) is the clip geometry the model is built for and carries (``model.clip``): its
    P-frames per GOP size the prompt embeddings, and whatever reads clips for it, measures it
    or exports it (:class:`cvpt.Predictor`, FLOPs, ``cvpt export``) reads ``model.clip``.
    The forward pass takes any T_I that tiles the backbone's tubelet (positions are a
    sinusoid table), but only ``clip.p_per_gop`` P-frames per I-frame. Raises ``ValueError``
    for a ``clip`` whose ``num_gops`` the tubelet does not divide, options out of range, or a
    backbone family the method does not support (naming both)."""

    def __init__(
        self,
        backbone: VideoBackbone,
        method: str,
        options: TuningOptions,
        clip: ClipSpec | None = None,
    ):
        super().__init__()
        tuning = get_method(method)  # ConfigError (a ValueError) naming the registered ones
        if not isinstance(options, tuning.options):
            raise TypeError(
                f"options of method {method!r} are a {tuning.options.__name__}, got "
                f"{type(options).__name__}"
            )
        check_shared_options(backbone, options)
        tuning.check(backbone, options)
        self.method, self.options, self.tuning = method, options, tuning
        self.sccp_layers = 0  # SCCP blocks (the cvpt method sets it)
        self.backbone = backbone
        self.clip = clip = clip if clip is not None else ClipSpec()
        # p_per_gop P-frames per GOP and `tubelet` GOPs per I-token → p_per_gop·tubelet P-frames
        # per prompt token
        tubelet, p, _ = backbone.patch_kernel
        if clip.num_gops % tubelet:
            raise ValueError(
                f"clip.num_gops={clip.num_gops}: the {backbone.family} backbone groups "
                f"{tubelet} I-frames (GOPs) per token, so a clip must have a multiple of {tubelet}"
            )
        self.p_per_token = clip.p_per_gop * tubelet
        d, rank = backbone.embed_dim, options.prompt_embed_rank
        motion = options.inputs == "all"
        self.mv_embed = PromptEmbed(2, d, p, self.p_per_token, rank) if motion else None
        self.res_embed = (
            PromptEmbed(3, d, p, self.p_per_token, rank)
            if motion and options.residual_prompt
            else None
        )
        self.frozen_dtype: torch.dtype | None = None  # see cast_frozen_weights
        # where the backbone came from (create_model), and what a saved model describes
        self.origin: dict = {}
        self.class_names: list[str] | None = None
        self.input_spec: dict | None = None
        tuning.build(self)
        self._freeze()

    # ------------------------------------------------------------------ tuning bookkeeping

    def _freeze(self) -> None:
        """Everything frozen but the head, the prompt embeddings (unless the method keeps them
        as initialised) and what the method tunes; everything trains for ``trains_backbone``."""
        everything = self.tuning.trains_backbone
        for p in self.parameters():
            p.requires_grad = everything
        if everything:
            return
        tuned: list[nn.Module] = self.backbone.head_modules()
        if self.tuning.tunes_prompt_embeddings:
            tuned += [m for m in (self.mv_embed, self.res_embed) if m is not None]
        for p in [p for m in tuned for p in m.parameters()] + self.tuning.tuned_parameters(self):
            p.requires_grad = True

    def cast_frozen_weights(self, dtype: torch.dtype = torch.bfloat16) -> int:
        """Store the frozen weights of the matrix products (Linear and Conv3d weights and
        biases, the attention's q/v biases) in ``dtype``; returns the bytes this frees
        (negative when it widens them).

        Meant for training under ``torch.autocast(dtype=dtype)``, which casts these weights to
        ``dtype`` at every use anyway: results are bit-identical, the frozen weights take half
        the memory, and the backward pass keeps no cast copies of them (CVPT on ViT-B, bf16:
        a train step's peak memory −23%, docs/benchmarks.md). LayerNorms and every tuned tensor
        stay float32. The model then runs only under that autocast (``forward`` says so
        otherwise); casting back to float32 keeps the rounded values.
        """
        self.frozen_fingerprint()  # of the weights as loaded, before they are rounded
        freed = 0
        for m in self.modules():
            if not isinstance(m, (nn.Linear, nn.Conv3d, *self.backbone.autocast_modules)):
                continue
            for p in m.parameters(recurse=False):
                if not p.requires_grad and p.dtype != dtype:
                    before = p.numel() * p.element_size()
                    p.data = p.data.to(dtype)
                    freed += before - p.numel() * p.element_size()
        dtypes = {p.dtype for p in self.parameters() if not p.requires_grad} - {torch.float32}
        self.frozen_dtype = next(iter(dtypes)) if dtypes else None
        return freed

    def _check_autocast(self, x: torch.Tensor) -> None:
        dtype, kind = self.frozen_dtype, x.device.type
        if dtype is not None and not (
            torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == dtype
        ):
            raise ValueError(
                f"this model's frozen weights are stored in {dtype} (cast_frozen_weights): run "
                f"it under torch.autocast({kind!r}, dtype={dtype}), or call "
                "cast_frozen_weights(torch.float32) first"
            )

    def train(self, mode: bool = True) -> CompressedVideoModel:
        """Frozen parts stay in eval mode while the model trains (no dropout/drop-path in them)."""
        super().train(mode)
        if mode:
            for m in self.modules():  # every subtree whose parameters are all frozen
                params = list(m.parameters())
                if params and not any(p.requires_grad for p in params):
                    m.eval()
        return self

    def set_grad_checkpointing(self, enable: bool | int = True) -> None:
        """Recompute the backbone blocks' activations in the backward pass (less memory, a
        slower step; ``docs/benchmarks.md`` measures both); an int k: the first k blocks."""
        self.backbone.set_grad_checkpointing(enable)

    def tunable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the tuned tensors: a per-task checkpoint."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_tunable_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`tunable_state_dict` saved; keys must match exactly."""
        own = dict(self.named_parameters())
        want = {n for n, p in own.items() if p.requires_grad}
        if set(sd) != want:
            missing, extra = sorted(want - set(sd)), sorted(set(sd) - want)
            raise ValueError(
                f"tunable tensors do not match this model ({self.method}): missing {missing[:5]},"
                f" unexpected {extra[:5]}"
            )
        with torch.no_grad():
            for n, v in sd.items():
                if own[n].shape != v.shape:
                    raise ValueError(f"{n}: saved {list(v.shape)}, model {list(own[n].shape)}")
                own[n].copy_(v)

    def frozen_fingerprint(self) -> str:
        """SHA-256 of the frozen backbone weights (computed once): what the tuned tensors were
        tuned on (:mod:`cvpt.models.identity`)."""
        return frozen_fingerprint(self)

    def save_pretrained(
        self,
        folder: str | Path,
        *,
        class_names: list[str] | None = None,
        input_spec: dict | None = None,
        overwrite: bool = False,
    ) -> Path:
        """A self-describing per-task folder (``config.json`` + ``model.safetensors`` with the
        tuned tensors), read back by :func:`cvpt.load_model`. An earlier save there is
        replaced; files that are not a cvpt tuned model's are refused (naming the file)
        unless ``overwrite``."""
        return save_pretrained(
            self, folder, class_names=class_names, input_spec=input_spec, overwrite=overwrite
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        class_names: list[str] | None = None,
        input_spec: dict | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str = "Upload a cvpt tuned model",
    ) -> str:
        """Upload what :meth:`save_pretrained` writes to the hub repository ``repo_id``
        (created when missing; ``cvpt[hub]`` and a write token needed) and return the
        commit's URL; ``cvpt.load_model(repo_id)`` reads it back. A backbone loaded from a
        file of this machine is only recorded by its path: loading then needs
        ``backbone_checkpoint=`` a copy of it (said in a warning); one from a hub id or a
        seeded random initialisation loads anywhere."""
        import tempfile

        source = (getattr(self, "origin", {}) or {}).get("backbone_checkpoint")
        if source is not None and parse_hub_id(source) is None:
            logging.getLogger("cvpt.models").warning(
                "%s: its backbone is the file %s of this machine; who loads it needs "
                "backbone_checkpoint= a copy of that file",
                repo_id,
                source,
            )
        with tempfile.TemporaryDirectory(prefix="cvpt-push-") as tmp:
            self.save_pretrained(tmp, class_names=class_names, input_spec=input_spec)
            return push_folder(
                tmp,
                repo_id,
                private=private,
                token=token,
                revision=revision,
                commit_message=commit_message,
            )

    def param_counts(self) -> dict[str, int]:
        """Total, tunable, and tunable without the prompt embeddings (the paper's convention)."""
        total = sum(p.numel() for p in self.parameters())
        tunable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        embeds = sum(
            p.numel()
            for m in (self.mv_embed, self.res_embed)
            if m is not None
            for p in m.parameters()
            if p.requires_grad
        )
        return {"total": total, "tunable": tunable, "tunable_without_embeddings": tunable - embeds}

    # ------------------------------------------------------------------ forward

    def check_inputs(self, iframes, mvs, residuals) -> None:
        # the prompt grid must tile the input exactly as the I-frame grid does, so sizes must be
        # multiples of the patch kernel even where the backbone alone would pad
        check_video(iframes, self.backbone.patch_kernel, 3, "iframes")
        t_i = iframes.shape[2]
        b, _, _, h, w = iframes.shape
        t_p = t_i * self.clip.p_per_gop
        expect = {"mvs": (mvs, 2), "residuals": (residuals, 3)}
        if self.res_embed is None and residuals is None:
            expect.pop("residuals")
        if self.mv_embed is None and mvs is None:
            expect.pop("mvs")
        for name, (x, c) in expect.items():
            if x is None or tuple(x.shape) != (b, c, t_p, h, w):
                got = None if x is None else list(x.shape)
                raise ValueError(
                    f"{name} must be [B, {c}, {t_p}, H, W] = {[b, c, t_p, h, w]} for iframes "
                    f"{list(iframes.shape)} (batch, channels, frames, height, width; "
                    f"{self.clip.p_per_gop} P-frames per I-frame: the model's clip.p_per_gop); "
                    f"got {got}"
                )

    def embed(self, iframes, mvs, residuals):
        """Token streams ``(E_I, P_MV, P_R)`` on the backbone's input grid (ViT: ``[B, N, D]``
        with positions added; Swin: ``[B, T, H, W, C]``); ``None`` for a stream the model does
        not have."""
        self.check_inputs(iframes, mvs, residuals)
        self._check_autocast(iframes)
        e = self.backbone.embed(iframes)
        p_mv = p_r = None
        if self.mv_embed is not None:
            p_mv = self.backbone.embed_prompt(self.mv_embed(mvs), e)
        if self.res_embed is not None:
            p_r = self.backbone.embed_prompt(self.res_embed(residuals), e)
        return e, p_mv, p_r

    @property
    def num_streams(self) -> int:
        """How many token streams of N tokens the blocks see (3, 2 or 1)."""
        return 1 + (self.mv_embed is not None) + (self.res_embed is not None)

    def unpack_streams(self, streams: list[torch.Tensor]):
        """``[P_MV, P_R, E_I]`` without the absent ones → ``(p_mv, p_r, e)`` with ``None``s."""
        streams = list(streams)
        p_mv = streams.pop(0) if self.mv_embed is not None else None
        p_r = streams.pop(0) if self.res_embed is not None else None
        return p_mv, p_r, streams.pop(0)

    @staticmethod
    def pack_streams(p_mv, p_r, e) -> list[torch.Tensor]:
        """``(p_mv, p_r, e)`` → the list ``[P_MV, P_R, E_I]`` without the ``None``s."""
        return [t for t in (p_mv, p_r, e) if t is not None]

    def forward_features(self, iframes, mvs=None, residuals=None) -> torch.Tensor:
        """Output tokens ``[B, S·N, D]`` in the order ``[P_MV, P_R, E_I]`` (S = 3; 2 without
        residual prompts; 1 with ``inputs='iframe'``); N tokens per stream after the backbone's
        last stage, D its width."""
        e, p_mv, p_r = self.embed(iframes, mvs, residuals)
        streams = self.pack_streams(p_mv, p_r, e)
        hook = self._before_block if self.tuning.before_block is not None else None
        if self.options.stream_attention == "separate":
            streams = self.backbone.forward_streams(streams, hook, joint=False)
        else:
            streams = self.backbone.forward_streams(streams, hook)
        return self.backbone.forward_tokens(self.tuning.after_blocks(self, streams))

    def _before_block(self, i: int, streams: list[torch.Tensor]) -> list[torch.Tensor]:
        """The backbone's hook before block ``i``: the method's."""
        return self.tuning.before_block(self, i, streams)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.options.pool == "iframe":
            n = tokens.shape[1] // self.num_streams
            tokens = tokens[:, -n:]
        return self.backbone.forward_head(tokens, pre_logits)

    def forward(self, iframes, mvs=None, residuals=None) -> torch.Tensor:
        return self.forward_head(self.forward_features(iframes, mvs, residuals))
