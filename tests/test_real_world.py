"""Real-world inputs give the right values or a clear error, never silently wrong data.

One test (or more) per kind, each on a generated file with a known answer: lone I-frame GOPs,
full-range and BT.709 colour, display rotation, variable frame rates, truncated files, several
video streams. (Split-file encodings are in tests/test_splits.py; the read_clip sweep over
frame counts is tests/test_read_clip_sweep.py.)
"""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

import cvpt
from conftest import concatenate, write_raw
from cvpt.cli.main import main
from cvpt.codec.prepare import prepare
from cvpt.codec.reader import count_gops
from cvpt.codec.sampling import view_start_gops
from cvpt.data.generate import moving_scene

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")


def _decoded_rgb(path) -> list[np.ndarray]:
    """Every frame of ``path`` as RGB, converted with its own colour tags (what a player shows)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# --- 1. a GOP that is a lone I-frame --------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 13, 25, 37])
def test_lone_iframe_gop_slots_are_zero(tmp_path, frames):
    path = cvpt.write_video(tmp_path / "v.mp4", moving_scene(frames=frames, height=64, width=64))
    for accumulate in (True, False):
        clip = cvpt.read_clip(path, accumulate=accumulate)
        lone = (clip.positions == 0).reshape(-1)
        assert lone.any()  # the last GOP (frame 12k) is sampled
        assert not clip.mvs[lone].any() and not clip.residuals[lone].any()
        assert np.isfinite(clip.mvs).all() and np.abs(clip.residuals).max() <= 255
    if frames == 13:  # the example: GOPs [0, 1, 1, 1], slots 3-11 zero
        clip = cvpt.read_clip(path)
        np.testing.assert_array_equal(clip.gop_indices, [0, 1, 1, 1])
        assert not clip.mvs[3:].any() and not clip.residuals[3:].any()


# --- 2. colour range and matrix -------------------------------------------------------------

# Four greys and four colours, each a 32×32 patch (2 rows × 4 columns).
GREYS = [(10,) * 3, (40,) * 3, (180,) * 3, (240,) * 3]
LEVELS = np.array([*GREYS, (200, 40, 40), (40, 180, 60), (50, 60, 200), (230, 180, 140)], float)


def _patches_frames() -> np.ndarray:
    frames = np.zeros((24, 64, 128, 3), np.uint8)
    for k, colour in enumerate(LEVELS):
        r, c = divmod(k, 4)
        frames[:, r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32] = colour
    return frames


def _patch_means(img: np.ndarray) -> np.ndarray:
    """Mean RGB of each patch's interior (away from chroma-subsampled edges)."""
    return np.array(
        [
            img[r * 32 + 8 : r * 32 + 24, c * 32 + 8 : c * 32 + 24].reshape(-1, 3).mean(0)
            for r, c in (divmod(k, 4) for k in range(len(LEVELS)))
        ]
    )


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "tags"),
    [
        ("yuvj_h264.mp4", "libx264", "yuvj420p", {"color_range": "JPEG"}),
        ("pc_h264.mkv", "libx264", "yuv420p", {"color_range": "JPEG"}),
        ("camera.avi", "mjpeg", "yuvj420p", {"color_range": "JPEG"}),
        ("bt709.mp4", "libx264", "yuv420p", {"colorspace": "ITU709"}),
        ("pc_bt709.mkv", "libx264", "yuv420p", {"color_range": "JPEG", "colorspace": "ITU709"}),
    ],
)
def test_colour_range_and_matrix_survive_prepare(tmp_path, name, codec, pix_fmt, tags):
    src = write_raw(tmp_path / name, _patches_frames(), codec, pix_fmt, **tags)
    shown = _patch_means(_decoded_rgb(src)[0])  # what a player shows of the source
    assert np.abs(shown - LEVELS).max() <= 3.5
    info = cvpt.probe(src)
    assert (info.color_range == "pc") == ("color_range" in tags)
    assert (info.colorspace == "bt709") == ("colorspace" in tags)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    got = _patch_means(cvpt.read_clip(res.dst, num_gops=1).iframes[0])
    # before the fix: greys off by up to 17 levels (range), colours by up to 35 (matrix)
    assert np.abs(got - shown).max() <= 4.5, (got - shown).round(1)
    assert np.abs(got - LEVELS).max() <= 6


def test_full_range_h264_is_read_with_its_range(tmp_path):
    # a GOP-12 H.264 file is read as it is: read_clip converts with the stream's own range
    src = write_raw(
        tmp_path / "pc12.mp4",
        _patches_frames(),
        "libx264",
        "yuvj420p",
        color_range="JPEG",
        **{"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"},
    )
    got = _patch_means(cvpt.read_clip(src, num_gops=1).iframes[0])
    assert np.abs(got - LEVELS).max() <= 6


# --- 3. display rotation --------------------------------------------------------------------


def _marked_frames() -> np.ndarray:
    """48×64 frames, black with a white top-left block and a grey top-right block."""
    frames = np.zeros((24, 48, 64, 3), np.uint8)
    frames[:, :16, :16] = 255
    frames[:, :16, -16:] = 120
    return frames


@pytest.mark.parametrize(
    ("rotation", "hflip", "upright"),
    [
        (90, False, lambda a: np.rot90(a, 1)),
        (180, False, lambda a: np.rot90(a, 2)),
        (270, False, lambda a: np.rot90(a, 3)),
        (-90, False, lambda a: np.rot90(a, -1)),
        (0, True, lambda a: a[:, ::-1]),
    ],
)
def test_display_rotation_is_applied(tmp_path, rotation, hflip, upright):
    frames = _marked_frames()
    src = write_raw(tmp_path / "phone.mp4", frames, "libx264", rotation=rotation, hflip=hflip)
    info = cvpt.probe(src)
    assert (info.rotation % 360, info.mirrored) == ((rotation % 360) if not hflip else 180, hflip)
    assert any("rotated" in p for p in info.layout_problems())
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert not cvpt.probe(res.dst).layout_problems()
    want = upright(frames[0])
    got = cvpt.read_clip(res.dst, num_gops=1).iframes[0]
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).mean() < 4
    # the short side is the displayed one: 48 → 256 whichever way the frame turns
    res = cvpt.reencode(src, tmp_path / "out256.mp4")
    assert min(res.width, res.height) == 256
    assert (res.width > res.height) == (want.shape[1] > want.shape[0])


def test_read_clip_refuses_a_rotated_gop12_file(tmp_path):
    src = write_raw(
        tmp_path / "rot.mp4",
        moving_scene(frames=48, height=48, width=64),
        "libx264",
        rotation=90,
        **{"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"},
    )
    with pytest.raises(cvpt.UnpreparedVideoError, match=r"rot\.mp4.*rotated 90"):
        cvpt.read_clip(src)


# --- 4. variable frame rate -----------------------------------------------------------------


def _vfr_source(path, **kw):
    """60 frames at 30 fps, then 40 at 10 fps (6 s); a 8×8 block moves right at 16 px/s."""
    times = [Fraction(k, 30) for k in range(60)] + [2 + Fraction(k, 10) for k in range(40)]
    frames = np.zeros((len(times), 32, 128, 3), np.uint8)
    for k, t in enumerate(times):
        x = round(16 * t)
        frames[k, 12:20, x : x + 8] = 255
    tb = Fraction(1, 1000)
    write_raw(path, frames, "libx264", pts=[int(t / tb) for t in times], time_base=tb, **kw)
    return path


def _block_x(img: np.ndarray) -> float:
    cols = img[..., 0].astype(float).sum(0)
    return float((cols * np.arange(len(cols))).sum() / cols.sum()) - 3.5


@pytest.mark.parametrize("name", ["vfr.mkv", "vfr.mp4"])
def test_variable_frame_rate_is_resampled_keeping_duration(tmp_path, name):
    src = _vfr_source(tmp_path / name)
    info = cvpt.probe(src)
    assert not info.constant_rate and abs(info.duration_s - 6.0) < 0.01
    assert "its frame rate is variable" in info.layout_problems()
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.fps, res.frames, res.constant_rate) == (30.0, 180, False)
    out = cvpt.probe(res.dst)
    assert out.constant_rate and out.frames == 180 and abs(out.duration_s - 6.0) < 1e-6
    # frame k shows the scene at k/30 s: at most one source frame (0.1 s = 1.6 px) behind
    for k, img in enumerate(_decoded_rgb(res.dst)):
        assert -0.5 <= 16 * k / 30 - _block_x(img) <= 1.6 + 0.5, k


@pytest.mark.parametrize("name", ["vfr12.mkv", "vfr12.mp4"])  # packet index / header path
def test_read_clip_refuses_a_variable_frame_rate_gop12_file(tmp_path, name):
    src = _vfr_source(
        tmp_path / name,
        **{"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"},
    )
    with pytest.raises(cvpt.UnpreparedVideoError, match=rf"{name}.*variable"):
        cvpt.read_clip(src)


def test_a_timestamp_jump_is_not_an_hour_of_repeated_frames(tmp_path):
    tb = Fraction(1, 1000)
    pts = [round(k * 1000 / 30) for k in range(30)] + [3_600_000 + k * 33 for k in range(30)]
    frames = moving_scene(frames=60, height=32, width=32)
    src = write_raw(tmp_path / "jump.mkv", frames, "libx264", pts=pts, time_base=tb)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert res.frames == 60 and res.damage.startswith(
        "timestamps jump forward more than 10 s at frame 30"
    )


def _timed(path, times_ms: list[int], codec: str = "libx264", header_rate=None):
    """A block moving 32 px/s, one frame at each time (ms); ``header_rate``: the rate the
    header names (None: none, as a browser's MediaRecorder writes)."""
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=header_rate or 30)
        s.width, s.height, s.pix_fmt = 128, 32, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        if header_rate is None:
            s.codec_context.framerate = Fraction(0)  # no frame rate in the header
        for t in times_ms:
            img = np.zeros((32, 128, 3), np.uint8)
            img[12:20, round(32 * t / 1000) : round(32 * t / 1000) + 8] = 255
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = t, tb
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.mark.parametrize(
    ("times_ms", "fps"),
    [
        ([round(k * 1001 / 60) for k in range(60)], 60000 / 1001),  # 59.94 fps
        ([1000 * k for k in range(6)], 1.0),  # a 1 fps time-lapse
    ],
)
def test_a_header_rate_the_frames_do_not_have_loses_no_frame(tmp_path, times_ms, fps):
    # the header says 24 fps, the frames are on another constant grid: every frame is kept
    src = _timed(tmp_path / "lying.mkv", times_ms, header_rate=24)
    info = cvpt.probe(src)
    assert info.constant_rate and info.fps == pytest.approx(fps)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    # before: resampled at 24 fps (59.94 → 24: 60% of the frames dropped; 1 → 24: repeated)
    assert res.fps == pytest.approx(fps) and res.frames in (len(times_ms), len(times_ms) + 1)


def test_a_round_rate_is_kept_round(tmp_path):
    # 59.94 fps in mkv (millisecond times): FFmpeg reads the rate as 19001/317; 60000/1001 fits
    # every frame too and is the rate (before: 19001/317, the output's time base with it)
    ntsc = Fraction(60000, 1001)
    times = [round(k * 1001 / 60) for k in range(120)]
    src = _timed(tmp_path / "f5994.mkv", times, header_rate=ntsc)
    with av.open(str(src)) as c:
        assert c.streams.video[0].guessed_rate != ntsc
    assert cvpt.probe(src).fps == float(ntsc)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.fps, res.frames) == (float(ntsc), 120)


def test_a_browser_recording_is_resampled_at_its_typical_rate(tmp_path):
    # ~30 fps with millisecond jitter and stalls, no rate in the header (MediaRecorder webm):
    # FFmpeg guesses 59.94 fps, which would show every frame twice
    rng = np.random.default_rng(0)
    steps = rng.choice([33, 34, 33, 50, 67], size=89, p=[0.4, 0.3, 0.2, 0.06, 0.04])
    times = [0, *np.cumsum(steps).tolist()]
    src = _timed(tmp_path / "recording.webm", times, codec="libvpx")
    info = cvpt.probe(src)
    assert not info.constant_rate and info.fps == pytest.approx(30, rel=0.002)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert res.fps == pytest.approx(30, rel=0.002)
    assert abs(res.frames / res.fps - (times[-1] + 33) / 1000) < 0.05  # the duration is kept
    assert res.frames < 1.2 * len(times)  # one slot per frame, a repeat per stall


@pytest.mark.parametrize(("name", "codec"), [("x264_b.avi", "libx264"), ("xvid_b.avi", "mpeg4")])
def test_b_frames_in_avi_keep_their_order(tmp_path, name, codec):
    # AVI stores no pts: with H.264 B-frames FFmpeg hands each decoded frame another packet's
    # made-up pts, out of order. Before: 78 frames written for 75, a frame dropped and one
    # repeated every few frames, the block up to 4 frames behind
    frames = np.zeros((75, 32, 192, 3), np.uint8)
    for k in range(75):
        frames[k, 12:20, 2 * k : 2 * k + 8] = 255
    src = write_raw(tmp_path / name, frames, codec, rate=25, bf="2")
    info = cvpt.probe(src)
    assert (info.frames, info.constant_rate, info.fps) == (75, True, 25.0)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert res.frames == 75
    left = [int(np.argmax(img[16, :, 0] > 128)) for img in _decoded_rgb(res.dst)]
    assert left == [2 * k for k in range(75)]


def test_constant_rate_sources_keep_every_frame(videos, tmp_path):
    res = cvpt.reencode(videos["odd"], tmp_path / "odd.mp4", short_side=None)  # mkv, 40 frames
    assert (res.frames, res.constant_rate, res.damage) == (40, True, "")


# --- 5. truncated files ---------------------------------------------------------------------


def _cut(src, dst, fraction: float):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("fraction", [0.3, 0.55, 0.9])
def test_truncated_faststart_source_is_listed_as_damaged(tmp_path, fraction):
    whole = write_raw(
        tmp_path / "whole.mp4",
        moving_scene(frames=240, height=48, width=64),
        "libx264",
        container_options={"movflags": "+faststart"},
    )
    (tmp_path / "src").mkdir()
    cut = _cut(whole, tmp_path / "src" / "cut.mp4", fraction)
    report = prepare(tmp_path / "src", tmp_path / "dst", progress=False)
    assert report.done == 1 and len(report.damaged_sources) == 1
    damaged = report.damaged_sources[0]
    assert damaged["src"] == str(cut) and "truncated" in damaged["reason"]
    assert "of 240" in damaged["frames"]
    saved = json.loads((tmp_path / "dst" / "prepare-report.json").read_text())
    assert saved["damaged_sources"] == report.damaged_sources
    info = cvpt.probe(cut)
    assert info.header_frames == 240 and info.frames < 240 and "truncated" in info.damage
    assert cvpt.probe(tmp_path / "dst" / "cut.mp4").frames == info.frames


@pytest.mark.parametrize(
    ("movflags", "fraction", "why"),
    [("", 0.5, "is missing"), ("", 0.98, "is cut short"), ("+faststart", 0.02, "is cut short")],
)
def test_an_mp4_without_its_index_says_so(tmp_path, movflags, fraction, why):
    # before: "FFmpeg cannot open it as a media file (Invalid data found ...)"
    whole = write_raw(
        tmp_path / "whole.mp4",
        moving_scene(frames=120, height=48, width=64),
        "libx264",
        container_options={"movflags": movflags} if movflags else None,
    )
    cut = _cut(whole, tmp_path / "cut.mp4", fraction)
    for read in (cvpt.probe, cvpt.read_clip, count_gops):
        with pytest.raises(cvpt.CorruptVideoError, match=rf"cut\.mp4: .*moov box\) {why}"):
            read(cut)
    assert cvpt.probe(whole).frames == 120


def test_truncated_mkv_source_is_listed_as_damaged(tmp_path):
    scene = moving_scene(frames=240, height=48, width=64)
    whole = write_raw(tmp_path / "whole.mkv", scene, "libx264")
    assert cvpt.probe(whole).damage == ""
    cut = _cut(whole, tmp_path / "cut.mkv", 0.55)
    res = cvpt.reencode(cut, tmp_path / "out.mp4")
    assert "truncated" in res.damage and res.frames < 200


def test_damaged_bytes_inside_an_mkv_are_reported(tmp_path):
    # the Matroska demuxer skips damaged bytes to the next cluster without an error: before,
    # 51 of 120 frames vanished, prepare filled the hole with a frozen frame and said nothing
    scene = moving_scene(frames=120, height=48, width=64, seed=6)
    whole = write_raw(tmp_path / "whole.mkv", scene, "libx264")
    data = bytearray(whole.read_bytes())
    a = len(data) // 2
    data[a : a + len(data) // 50] = (
        np.random.default_rng(1).integers(0, 256, len(data) // 50, np.uint8).tobytes()
    )
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    info = cvpt.probe(bad)
    assert info.frames < 120 and info.damage.startswith("damaged:")
    res = cvpt.reencode(bad, tmp_path / "out.mp4", short_side=None)
    assert res.damage == info.damage
    assert cvpt.probe(whole).damage == ""


def test_an_mkv_cut_a_few_frames_short_is_truncated(tmp_path):
    # the track's own DURATION tag, not the file's (which audio may outlast), is compared
    whole = write_raw(
        tmp_path / "whole.mkv", moving_scene(frames=120, height=48, width=64), "libx264"
    )
    cut = _cut(whole, tmp_path / "cut.mkv", 0.98)
    info = cvpt.probe(cut)
    assert 110 < info.frames < 120 and "truncated" in info.damage


def test_truncated_prepared_file(tmp_path):
    whole = write_raw(
        tmp_path / "whole.mp4",
        moving_scene(frames=240, height=48, width=64),
        "mpeg4",
        container_options={"movflags": "+faststart"},
        g="12",
        bf="0",
        sc_threshold="1000000000",
    )
    assert not cvpt.probe(whole).layout_problems() and count_gops(whole) == 20
    cut = _cut(whole, tmp_path / "cut.mp4", 0.55)
    info = cvpt.probe(cut)
    assert any("truncated" in p for p in info.layout_problems())
    gops = count_gops(cut)
    assert 0 < gops <= -(-info.frames // 12) < 20  # what is there, not the header's 20
    for start in view_start_gops(gops, 4, 5):  # multi-view testing reads every view
        clip = cvpt.read_clip(cut, start_gop=start)
        assert clip.gop_indices.max() < gops


# --- 6. several video streams ---------------------------------------------------------------


def _two_streams(path, fmt: str, cover_disposition: bool):
    """A 32×32 one-frame still as the first video stream (cover art with ``cover_disposition``),
    the footage (48 frames) second."""
    footage = moving_scene(frames=48, height=48, width=64, seed=2)
    with av.open(str(path), "w", format=fmt) as c:
        still = c.add_stream("mjpeg", rate=30)
        still.width, still.height, still.pix_fmt = 32, 32, "yuvj420p"
        if cover_disposition:
            still.disposition = av.stream.Disposition.attached_pic
        video = c.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"crf": "10"}
        picture = np.full((32, 32, 3), 200, np.uint8)
        vf = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")
        vf.pts = 0
        for p in [*still.encode(vf), *still.encode(None)]:
            c.mux(p)
        for k, f in enumerate(footage):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            vf.pts = k
            for p in video.encode(vf):
                c.mux(p)
        for p in video.encode(None):
            c.mux(p)
    return path, footage


@pytest.mark.parametrize(
    ("name", "fmt", "cover"),
    [("still.mp4", "mp4", False), ("still.mkv", "matroska", False), ("cover.mp4", "mp4", True)],
)
def test_the_footage_stream_is_read(tmp_path, name, fmt, cover):
    src, footage = _two_streams(tmp_path / name, fmt, cover)
    info = cvpt.probe(src)
    # (mp4 stores cover art after the footage; the other two files have the still first)
    assert len(info.streams) == 2 and info.stream_index == (0 if cover else 1)
    assert info.streams[info.stream_index]["codec"] == "h264"
    assert (info.frames, info.width, info.height) == (48, 64, 48)
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.frames, res.width, res.height) == (48, 64, 48)
    clip = cvpt.read_clip(res.dst)
    want = footage[clip.gop_indices * 12].astype(int)
    assert np.abs(clip.iframes.astype(int) - want).mean() < 8


def test_probe_json_reports_what_a_user_needs(tmp_path, capsys):
    src, _ = _two_streams(tmp_path / "still.mp4", "mp4", False)
    assert main(["probe", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("rotation", "color_range", "constant_rate", "streams", "stream_index"):
        assert key in out
    assert (out["frames"], out["header_frames"], out["stream_index"]) == (48, 48, 1)
    assert [s["frames"] for s in out["streams"]] == [1, 48]
    assert main(["probe", str(src)]) == 0
    assert "<- read" in capsys.readouterr().out


def test_cover_art_is_never_the_footage_even_when_larger():
    from types import SimpleNamespace

    from cvpt.codec.container import footage_stream

    def stream(index, frames, size, disposition=0):
        cc = SimpleNamespace(width=size[0], height=size[1])
        kw = dict(index=index, frames=frames, disposition=disposition)
        return SimpleNamespace(codec_context=cc, **kw)

    cover = stream(0, 1, (600, 600), int(av.stream.Disposition.attached_pic))
    footage = stream(1, 1, (64, 48))  # a one-frame video: the tie on frames goes by size...
    container = SimpleNamespace(streams=SimpleNamespace(video=[cover, footage]))
    assert footage_stream(container, "x.mp4") is footage  # ...among footage streams only
    thumb = stream(0, 1, (64, 48))
    container.streams.video = [thumb, stream(1, 48, (64, 48))]
    assert footage_stream(container, "x.mp4").index == 1  # the most frames


# --- 5b. what is not damage: an edit list, a late first frame --------------------------------


def _cut_with_edit_list(src, dst, first_key: int, cut_at: int):
    """Remux ``src`` as ``ffmpeg -ss … -c copy`` does: from the key frame before the cut, the
    cut point at time 0, the frames before it at negative times (an mp4 edit list hides them)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        shift = round(cut_at / s.average_rate / s.time_base)
        for k, p in enumerate(p for p in inp.demux(s) if p.size):
            if k >= first_key:
                p.pts, p.dts, p.stream = p.pts - shift, p.dts - shift, o
                out.mux(p)
    return dst


@pytest.mark.parametrize("name", ["cut.mp4", "cut.mov"])
def test_an_edit_list_is_not_truncation(tmp_path, name):
    scene = moving_scene(frames=48, height=48, width=64, seed=5)
    x264 = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"}
    whole = write_raw(tmp_path / "whole.mp4", scene, "libx264", **x264)
    cut = _cut_with_edit_list(whole, tmp_path / name, first_key=12, cut_at=17)
    info = cvpt.probe(cut)
    # before: "truncated: its header lists 36 frames, 31 decode" for the 5 hidden frames
    assert (info.frames, info.header_frames, info.damage) == (31, 31, "")
    assert info.streams[0]["frames"] == 31  # the stream list says the same
    res = cvpt.reencode(cut, tmp_path / "out.mp4", short_side=None)
    assert (res.frames, res.damage) == (31, "")
    first = _decoded_rgb(res.dst)[0].astype(int)
    assert np.abs(first - scene[17]).mean() < np.abs(first - scene[12]).mean() / 2


@pytest.mark.parametrize("name", ["late.mkv", "late.webm"])
def test_a_late_first_frame_is_not_truncation(tmp_path, name):
    # Matroska's duration is the file's end time: a 2 s video from 5 s says 7 s
    tb = Fraction(1, 1000)
    codec = "libvpx-vp9" if name.endswith("webm") else "libx264"
    scene = moving_scene(frames=60, height=32, width=32)
    src = write_raw(
        tmp_path / name,
        scene,
        codec,
        pts=[5000 + round(k * 1000 / 30) for k in range(60)],
        time_base=tb,
    )
    assert cvpt.probe(src).damage == ""  # before: "truncated: its header says 7.00 s, ..."
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.frames, res.damage) == (60, "")
    cut = _cut(src, tmp_path / f"cut_{name}", 0.5)  # a real truncation is still seen
    assert "truncated" in cvpt.probe(cut).damage


# --- the file named is the file read ----------------------------------------------------------


def test_predict_reads_the_named_file_not_an_mp4_beside_it(tmp_path):
    from types import SimpleNamespace

    from cvpt.predictor import load_views, prepared

    # clip.mkv is readable as it is (GOP-12 H.264), dark; clip.mp4 beside it is bright. Before:
    # the dataset's prepared-twin rule made `cvpt predict clip.mkv` classify clip.mp4
    x264 = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"}
    dark = write_raw(
        tmp_path / "clip.mkv", np.full((24, 48, 64, 3), 30, np.uint8), "libx264", **x264
    )
    cvpt.write_video(tmp_path / "clip.mp4", np.full((24, 48, 64, 3), 220, np.uint8))
    model = SimpleNamespace(
        input_spec={"size": 32, "short_side": 48, "mv_clip": 20.0}, class_names=["a"], clip=None
    )
    with prepared(dark, 48) as path:
        assert path == dark
        iframes = load_views(path, model)["iframes"]
    grey = iframes.float().mean() * 0.225 + 0.45  # undo ImageNet normalisation, about
    assert abs(grey * 255 - 30) < 15


# --- a frame size that changes mid-stream ------------------------------------------------------


def test_probe_reports_a_frame_size_that_changes(tmp_path):
    # a WebRTC-style recording: VP8 at 64x48, then 96x32 from frame 24 (key frames carry the
    # size). Before: probe gave the last frame's size, prepare wrote the first's, nothing said so
    parts = []
    for k, (w, h) in enumerate([(64, 48), (96, 32)]):
        frames = np.full((24, h, w, 3), 40 + 160 * k, np.uint8)
        parts.append(write_raw(tmp_path / f"part{k}.webm", frames, "libvpx"))
    src = concatenate(tmp_path / "recording.webm", parts, 800)
    info = cvpt.probe(src)
    assert (info.width, info.height, info.size_changes) == (64, 48, ["96x32 from frame 24"])
    assert any("frame size changes" in p for p in info.layout_problems())
    res = cvpt.reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.width, res.height, res.frames) == (64, 48, 48)
