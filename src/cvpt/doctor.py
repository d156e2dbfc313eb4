"""``cvpt doctor``: is this machine able to run cvpt? Each check says what to do if it fails."""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    """Versions, codecs, and a real encode → decode → motion-vector round trip."""
    checks = [Check("python", True, platform.python_version())]
    try:
        import av

        ffmpeg = ".".join(map(str, av.library_versions.get("libavcodec", ())))
        checks.append(Check("PyAV", True, f"{av.__version__} (libavcodec {ffmpeg})"))
    except ImportError as e:
        checks.append(Check("PyAV", False, str(e), "pip install 'av==18.1.0'"))
        return checks
    checks.append(Check("numpy", True, np.__version__))
    try:
        import cv2

        checks.append(Check("opencv", True, f"{cv2.__version__}, {cv2.getNumThreads()} threads"))
    except ImportError as e:
        checks.append(Check("opencv", False, str(e), "pip install opencv-python-headless"))
    try:
        import torch

        checks.append(
            Check(
                "torch",
                True,
                f"{torch.__version__}, {torch.get_num_threads()} threads, "
                f"CUDA {'available' if torch.cuda.is_available() else 'not available'}",
            )
        )
    except ImportError as e:
        checks.append(Check("torch", False, str(e), "pip install torch==2.13.0"))

    fix_codec = "install PyAV from its PyPI wheel, which bundles an FFmpeg with these codecs"
    for name, mode, why in [
        ("mpeg4", "w", "cvpt prepare writes MPEG-4 Part 2"),
        ("mpeg4", "r", "read_clip decodes MPEG-4 Part 2"),
        ("h264", "r", "most source videos are H.264"),
        ("vp9", "r", "Something-Something v2 is VP9 webm"),
        ("libx264", "w", "optional: prepare --codec libx264"),
    ]:
        try:
            av.codec.Codec(name, mode)
            checks.append(
                Check(f"codec {name} ({'encode' if mode == 'w' else 'decode'})", True, why)
            )
        except Exception:
            optional = name == "libx264"
            checks.append(
                Check(
                    f"codec {name} ({'encode' if mode == 'w' else 'decode'})",
                    optional,
                    f"missing: {why}",
                    "" if optional else fix_codec,
                )
            )
    checks.append(_round_trip())
    return checks


def _round_trip() -> Check:
    """Encode a texture moving (3, −2) px/frame, read a clip, compare its MVs with the truth."""
    from cvpt.codec.encode import write_video
    from cvpt.codec.reader import read_clip
    from cvpt.data.generate import translating_texture

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "doctor.mp4"
            write_video(path, translating_texture(3, -2, frames=48, height=96, width=128))
            clip = read_clip(path, accumulate=False)
            inner = clip.mvs[:, 16:-16, 16:-16]
            exact = float(
                np.mean((np.abs(inner[..., 0] - 3) <= 0.5) & (np.abs(inner[..., 1] + 2) <= 0.5))
            )
        ok = exact >= 0.95
        return Check(
            "MV export round trip",
            ok,
            f"{exact:.1%} of interior motion vectors equal the truth (3, -2) px/frame",
            ""
            if ok
            else "motion-vector export is broken in this FFmpeg build; reinstall av==18.1.0",
        )
    except Exception as e:
        return Check(
            "MV export round trip",
            False,
            f"{type(e).__name__}: {e}",
            "reinstall av==18.1.0 (pip install --force-reinstall av==18.1.0)",
        )
