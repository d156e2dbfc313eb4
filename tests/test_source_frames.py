"""Every source frame right or reported (issue 21): non-square pixels, damage the decoder
conceals, a stream cut mid-GOP, frame rates from 0.5 to 5000 fps, interlaced frames; and a
property-style sweep over those source properties checking two invariants on each generated
source: what ``reencode`` writes shows what a player shows (geometry within 3%, every source
frame present in order or reported) and ``probe`` says what it saw.

Sources are tiny: each frame carries its number as the position of a bright bar (two fields
per frame where the source is interlaced), so which source frame an output frame shows is
measured, not assumed.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import cvpt
from cvpt import predictor
from cvpt.cli.main import main
from cvpt.codec.encode import reencode, write_video
from cvpt.codec.prepare import prepare
from cvpt.codec.sampling import ClipSpec
from cvpt.data.dataset import read_views
from cvpt.data.transforms import ClipTransform
from cvpt.errors import CorruptVideoError, EmptyVideoError, EncodeError, UnpreparedVideoError

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")

H, W = 48, 96  # display size of a source (its stored width is W / sample aspect)
BAR0, BAR_STEP = 6.0, 1.0  # bar centre of field t: BAR0 + BAR_STEP * t (display pixels)
GOP12 = {"g": "12", "bf": "0"}
X264_GOP12 = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0"}


def _field(t: float, width: int = W) -> np.ndarray:
    """``float32 [H, width]`` luma of field time ``t`` (display geometry squeezed to
    ``width``): a dark background with a soft bright bar at :func:`_bar_at` ``t``."""
    x = (np.arange(width, dtype=np.float32) + 0.5) * (W / width)
    bar = 200 * np.exp(-(((x - (BAR0 + BAR_STEP * t)) / 2.0) ** 2))
    return np.broadcast_to(40 + bar, (H, width)).astype(np.float32)


def _frames(n: int, sar: Fraction = Fraction(1), fields: str = "") -> np.ndarray:
    """``uint8 [n, H, W / sar, 3]``: frame k shows the bar at time k (progressive), or is
    woven from fields 2k and 2k+1 (``fields`` "tt": field 2k on the even rows; "bb": odd)."""
    width = 2 * round(W / sar / 2)
    out = np.empty((n, H, width, 3), np.uint8)
    for k in range(n):
        if not fields:
            y = _field(2 * k, width)
        else:
            first, second = _field(2 * k, width), _field(2 * k + 1, width)
            y = np.empty_like(first)
            rows = (0, 1) if fields == "tt" else (1, 0)
            y[rows[0] :: 2], y[rows[1] :: 2] = first[rows[0] :: 2], second[rows[1] :: 2]
        out[k] = np.clip(y, 0, 255).astype(np.uint8)[..., None]
    return out


def _bar_positions(path: Path) -> tuple[list[float], tuple[int, int]]:
    """The bar's centre in each decoded frame of ``path``, in display pixels of ``W``, and the
    frame size."""
    out, size = [], (0, 0)
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            y = f.to_ndarray(format="gray").astype(np.float32)
            size = (f.width, f.height)
            col = np.clip(y.mean(0) - 60, 0, None)
            x = (np.arange(f.width) + 0.5) * (W / f.width)
            out.append(float((col * x).sum() / col.sum()))
    return out, size


def _comb(path: Path) -> list[float]:
    """Each frame's mean |2·row − the rows above and below| of the luma: a woven frame's
    comb (0 for the bar's frames when progressive: their rows are alike)."""
    with av.open(str(path)) as c:
        ys = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]
    return [float(np.abs(2 * y[1:-1] - y[:-2] - y[2:]).mean()) for y in ys]


def _write(path: Path, frames: np.ndarray, codec: str, *, rate: Fraction, sar=Fraction(1),
           fields: str = "", opts: dict | None = None) -> Path:  # fmt: skip
    """Encode ``frames`` with pixels of shape ``sar``, flagged interlaced in field order
    ``fields`` ("tt"/"bb", "" progressive), one frame per tick of 1/``rate``."""
    opts = dict(opts or (X264_GOP12 if codec == "libx264" else GOP12))
    if fields and codec == "libx264":
        opts["x264-params"] += f":interlaced=1:{'tff' if fields == 'tt' else 'bff'}=1"
    elif fields:
        opts["flags"] = "+ilme+ildct"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = 1 / rate
        s.codec_context.sample_aspect_ratio = sar
        s.options = opts
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, 1 / rate
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _remux(src: Path, dst: Path, drop: int = 0) -> Path:
    """``src``'s packets into ``dst`` (another container), the first ``drop`` left out (a cut
    mid-GOP)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for k, p in enumerate(p for p in i.demux(video=0) if p.size):
            if k >= drop:
                p.stream = s
                o.mux(p)
    return dst


def _damage(src: Path, dst: Path, packet: int) -> Path:
    """``src`` with random bytes over the second half of its ``packet``-th video packet (in
    file order): damage in the pictures' data, which a decoder conceals or refuses."""
    with av.open(str(src)) as c:
        pos, size = [(p.pos, p.size) for p in c.demux(video=0) if p.size][packet]
    data = bytearray(src.read_bytes())
    data[pos + size // 2 : pos + size] = np.random.default_rng(0).bytes(size - size // 2)
    dst.write_bytes(bytes(data))
    return dst


# --- 1. non-square pixels ---------------------------------------------------------------------


def _disc_source(path: Path, codec: str, sar: Fraction) -> Path:
    """A disc of radius 16 (display pixels) centred in a 96x48 display, stored ``W / sar``
    wide (as an anamorphic camera stores it)."""
    disc = np.full((H, W), 40, np.uint8)
    cv2.circle(disc, (W // 2, H // 2), 16, 220, -1, lineType=cv2.LINE_AA)
    stored = cv2.resize(disc, (2 * round(W / sar / 2), H), interpolation=cv2.INTER_AREA)
    frames = np.repeat(np.repeat(stored[None, ..., None], 3, 3), 24, 0)
    return _write(path, frames, codec, rate=Fraction(25), sar=sar)


def _disc_shape(path: Path) -> float:
    """Width over height of the bright disc in the first frame of ``path``."""
    with av.open(str(path)) as c:
        y = next(c.decode(video=0)).to_ndarray(format="gray").astype(np.float32)
    m = np.clip((y - 40) / 180, 0, 1)
    return float(m.sum(0).max() / m.sum(1).max())  # widest row over tallest column


@pytest.mark.parametrize(
    "codec, ext, sar",
    [
        ("libx264", "mp4", Fraction(4, 3)),  # anamorphic: 72x48 stored, shown 96x48
        ("mpeg4", "avi", Fraction(12, 11)),  # PAL-pixel XviD: 88x48 stored
        ("libx264", "mkv", Fraction(2, 3)),  # tall pixels: 144x48 stored
    ],
)
def test_non_square_pixels_are_written_square_at_the_display_aspect(tmp_path, codec, ext, sar):
    src = _disc_source(tmp_path / f"src.{ext}", codec, sar)
    info = cvpt.probe(src)
    assert (info.sample_aspect, info.display_aspect) == (
        f"{sar.numerator}:{sar.denominator}",
        "2:1",
    )
    assert any("not square" in p for p in info.layout_problems())
    res = reencode(src, tmp_path / "out.mp4", short_side=48)
    assert res.sample_aspect == info.sample_aspect
    assert (res.width, res.height) == (96, 48)  # as a player shows it
    assert abs(_disc_shape(res.dst) - 1) < 0.03  # round, not squeezed
    out = cvpt.probe(res.dst)
    assert out.sample_aspect == "1:1" and not out.layout_problems()


def test_a_prepared_layout_file_with_non_square_pixels_is_not_ready(tmp_path, capsys):
    src = _disc_source(tmp_path / "anamorphic.mp4", "mpeg4", Fraction(12, 11))  # I+11P, GOP 12
    assert main(["probe", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["sample_aspect"], out["display_aspect"], out["ready"]) == ("12:11", "2:1", False)
    assert any("not square" in p for p in out["problems"])
    assert main(["probe", str(src)]) == 0
    assert "sample aspect 12:11, shown at 2:1" in capsys.readouterr().out
    with pytest.raises(UnpreparedVideoError, match=r"anamorphic\.mp4.*sample aspect 12:11"):
        cvpt.read_clip(src)


def test_predict_windows_of_an_anamorphic_source_equal_its_whole_reencode(monkeypatch, tmp_path):
    src = _disc_source(tmp_path / "src.mp4", "libx264", Fraction(4, 3))
    tr = ClipTransform(size=32, short_side=48, crops=1)
    whole = reencode(src, tmp_path / "whole.mp4", short_side=48)
    want = read_views(whole.dst, tr, 1)

    def refuse(*_a, **_k):
        raise AssertionError("fell back to re-encoding the whole file")

    monkeypatch.setattr(predictor, "_reencoded", refuse)
    got = predictor.source_views(src, tr, 1)
    assert all(torch.equal(got[k], want[k]) for k in want)


# --- 3. damage the decoder conceals -----------------------------------------------------------


def test_concealed_damage_is_reported_and_read_clip_refuses_it(tmp_path):
    frames = _frames(36)
    whole = _write(tmp_path / "whole.mp4", frames, "libx264", rate=Fraction(25))
    bad = _damage(whole, tmp_path / "bad.mp4", 15)  # a P-frame of the second GOP
    info = cvpt.probe(bad)
    assert info.frames == 36 and info.corrupt_frames >= 1
    assert "concealed" in info.damage and "frame 15" in info.damage
    assert any("concealed" in p for p in info.layout_problems())
    report = prepare(bad, tmp_path / "out", progress=False, short_side=48)
    [entry] = report.damaged_sources
    assert entry["corrupt_frames"] == info.corrupt_frames and "concealed" in entry["reason"]

    # a damaged file in cvpt's own layout: its damaged GOP is refused, naming file and frame
    prepared = write_video(tmp_path / "prepared.mp4", frames)
    broken = _damage(prepared, tmp_path / "broken.mp4", 15)
    assert cvpt.probe(broken).corrupt_frames >= 1
    with pytest.raises(CorruptVideoError, match=r"broken\.mp4: frame 3 of GOP 1 is damaged"):
        cvpt.read_clip(broken, start_gop=1)
    clip = cvpt.read_clip(broken, start_gop=0, spec=ClipSpec(num_gops=1))  # GOP 0 is whole
    assert clip.iframes.shape[0] == 1


@pytest.mark.parametrize("codec, ext", [("mpeg4", "avi"), ("libx264", "mkv"), ("libx264", "mp4")])
def test_a_source_with_no_frame_free_of_damage_is_refused(tmp_path, codec, ext):
    """One GOP whose key frame is damaged: every frame shows concealed damage, so nothing of
    the video is left to prepare; refused naming the file (a partly damaged one is prepared
    and reported, above)."""
    whole = _write(tmp_path / f"whole.{ext}", _frames(12), codec, rate=Fraction(25))
    bad = _damage(whole, tmp_path / f"bad.{ext}", 0)
    report = prepare(bad, tmp_path / "prepared", progress=False)
    assert report.failed == 1 and not (tmp_path / "prepared" / "bad.mp4").exists()
    try:
        concealed = cvpt.probe(bad).corrupt_frames
    except EmptyVideoError:  # x264's: the key picture does not decode at all
        assert "no decodable" in report.failures[0]["reason"]
        return
    assert concealed >= 1 and "free of damage" in report.failures[0]["reason"]
    with pytest.raises(CorruptVideoError, match=rf"bad\.{ext}: none of its \d+ decoded frame"):
        reencode(bad, tmp_path / "out.mp4", short_side=None)


def _random_bytes_cases() -> list[tuple[bytes, bytes]]:
    """(container magic, seed) pairs: random data behind each container's first bytes, and the
    one seed known to pass FFmpeg's probe as a raw H.263 stream behind "RIFF" (one frame,
    flagged corrupt: once prepared as a video)."""
    magics = [b"RIFF", b"\x1a\x45\xdf\xa3", b"\x00\x00\x00\x18ftypisom", b"OggS", b""]
    return [(m, s) for m in magics for s in range(6)] + [(b"RIFF", 12320)]


@pytest.mark.parametrize("magic, seed", _random_bytes_cases())
def test_random_bytes_named_as_a_video_are_never_prepared(tmp_path, magic, seed):
    src = tmp_path / "src"
    src.mkdir()
    (src / "noise.avi").write_bytes(magic + np.random.default_rng(seed).bytes(2000))
    report = prepare(src, tmp_path / "dst", progress=False)
    assert (report.done, report.failed) == (0, 1), report
    assert report.failures[0]["src"].endswith("noise.avi") and report.failures[0]["reason"]
    assert not list((tmp_path / "dst").rglob("*.mp4"))


# --- 4. a stream cut mid-GOP ------------------------------------------------------------------


@pytest.mark.parametrize("codec, ext", [("mpeg4", "avi"), ("libx264", "mkv")])
def test_frames_before_the_first_key_frame_are_dropped_and_counted(tmp_path, codec, ext):
    whole = _write(tmp_path / f"whole.{ext}", _frames(36), codec, rate=Fraction(25))
    cut = _remux(whole, tmp_path / f"cut.{ext}", drop=5)  # starts on P-frame 5 of GOP 0
    info = cvpt.probe(cut)
    assert (info.leading_frames, info.frames, info.pict_types[0]) == (7, 24, "I")
    assert "7 frame(s) before its first key frame dropped" in info.damage
    report = prepare(cut, tmp_path / "out", progress=False, short_side=48)
    [entry] = report.damaged_sources
    assert entry["dropped_before_key_frame"] == 7
    bars, _ = _bar_positions(next((tmp_path / "out").rglob("*.mp4")))
    # no grey picture: output frame k is source frame 12 + k
    assert np.allclose(bars, [BAR0 + BAR_STEP * 2 * (12 + k) for k in range(24)], atol=0.5)


# --- 5. frame rates from 0.5 to 5000 ----------------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(1, 2), Fraction(1200), Fraction(2000), Fraction(5000)])
@pytest.mark.parametrize("ext", ["mp4", "mkv"])  # mkv: millisecond times, several per tick
def test_every_frame_is_kept_at_any_rate(tmp_path, fps, ext):
    src = _write(tmp_path / "src.mp4", _frames(30), "libx264", rate=fps)
    if ext != "mp4":
        src = _remux(src, tmp_path / f"src.{ext}")
    info = cvpt.probe(src)
    assert (info.frames, info.fps, info.constant_rate) == (30, float(fps), True)
    res = reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.frames, res.fps) == (30, float(fps))
    bars, _ = _bar_positions(res.dst)
    assert np.allclose(bars, [BAR0 + BAR_STEP * 2 * k for k in range(30)], atol=0.5)


# --- 6. interlaced sources --------------------------------------------------------------------


@pytest.mark.parametrize("codec, ext, fields", [("libx264", "mkv", "tt"), ("libx264", "mp4", "bb"),
                                                ("mpeg4", "avi", "tt")])  # fmt: skip
def test_interlaced_frames_are_deinterlaced(tmp_path, codec, ext, fields):
    frames = _frames(24, fields=fields)
    src = _write(tmp_path / f"src.{ext}", frames, codec, rate=Fraction(25), fields=fields)
    info = cvpt.probe(src)
    assert info.interlaced_frames == 24
    assert info.field_order == {"libx264": fields, "mpeg4": info.field_order}[codec]
    assert any("interlaced" in p for p in info.layout_problems())
    res = reencode(src, tmp_path / "out.mp4", short_side=None)
    assert (res.frames, res.interlaced_frames) == (24, 24)
    # the source is combed (a vertical bar: progressive frames have no comb at all), the
    # output is not
    assert min(_comb(src)) > 5 and max(_comb(res.dst)) < 0.05 * min(_comb(src))
    assert not cvpt.probe(res.dst).interlaced_frames


def test_prepare_reports_the_sources_it_deinterlaced(tmp_path):
    """The report lists each deinterlaced source with its count and field order; a progressive
    one is not listed."""
    from cvpt.codec.prepare import prepare

    (tmp_path / "src").mkdir()
    _write(tmp_path / "src" / "woven.mkv", _frames(12, fields="bb"), "libx264",
           rate=Fraction(25), fields="bb")  # fmt: skip
    _write(tmp_path / "src" / "plain.mkv", _frames(12), "libx264", rate=Fraction(25))
    report = prepare(tmp_path / "src", tmp_path / "dst", short_side=None, progress=False)
    assert report.deinterlaced_sources == [
        {"src": str(tmp_path / "src" / "woven.mkv"), "interlaced_frames": 12, "field_order": "bb"}
    ]


# --- the sweep --------------------------------------------------------------------------------

SARS = [Fraction(1), Fraction(4, 3), Fraction(12, 11), Fraction(8, 9)]
FIELDS = ["", "tt", "bb"]
RATES = [Fraction(1, 2), Fraction(25), Fraction(30000, 1001), Fraction(1200), Fraction(5000)]
LAYOUTS = [("libx264", "mp4"), ("libx264", "mkv"), ("mpeg4", "avi"), ("mpeg4", "mkv")]
STARTS = ["I", "P"]
DAMAGE = ["", "P-frame bytes"]


def _sweep_cases(count: int, seed: int = 21) -> list[tuple]:
    """``count`` source property combinations, each value of each property at least once."""
    rng = random.Random(seed)
    props = [SARS, FIELDS, RATES, LAYOUTS, STARTS, DAMAGE]
    cases = [tuple(p[i % len(p)] for p in props) for i in range(max(map(len, props)))]
    cases += [tuple(rng.choice(p) for p in props) for _ in range(count - len(cases))]
    return [c for c in cases if not (c[3][1] == "avi" and c[2] > 1000)]  # AVI can't time it


@pytest.mark.parametrize("sar, fields, fps, layout, start, damage", _sweep_cases(24))
def test_source_property_sweep(tmp_path, sar, fields, fps, layout, start, damage):
    codec, ext = layout
    n, drop = 30, 4 if start == "P" else 0
    whole = _write(tmp_path / "whole.mp4" if ext != "avi" else tmp_path / "whole.avi",
                   _frames(n, sar, fields), codec, rate=fps, sar=sar, fields=fields)  # fmt: skip
    src = _remux(whole, tmp_path / f"src.{ext}", drop=drop)
    if damage:
        src = _damage(src, tmp_path / f"damaged.{ext}", 15 - drop)
    leading = 12 - drop if drop else 0  # frames before the key frame at 12
    first = drop + leading  # the source frame output frame 0 shows
    shown = n - first

    # probe says what it saw
    info = cvpt.probe(src)
    stored_w = 2 * round(W / sar / 2)
    assert info.sample_aspect == f"{sar.numerator}:{sar.denominator}"
    assert Fraction(info.display_aspect.replace(":", "/")) == Fraction(stored_w) * sar / H
    assert bool(info.interlaced_frames) == bool(fields)
    if fields and codec == "libx264":
        assert info.field_order == fields
    # damage: concealed (flagged corrupt), or a frame that does not decode (x264's, often)
    lost = shown - info.frames
    reported = info.corrupt_frames > 0 or (lost == 1 and "damaged packet" in info.damage)
    assert (
        info.leading_frames == leading
        and reported == bool(damage)
        and lost == int(lost and reported)
    )
    if sar != 1 or fields or leading or damage:
        assert info.layout_problems()
    res = reencode(src, tmp_path / "out.mp4", short_side=None)
    assert ("concealed" in res.damage or "damaged packet" in res.damage) == bool(damage)
    assert ("before its first key frame" in res.damage) == bool(leading)
    assert res.leading_frames == leading
    if lost:  # a frame that does not decode leaves a gap in the times: reported, not timed
        return
    assert abs(info.fps / float(fps) - 1) < 1e-3 and info.constant_rate

    # what reencode writes shows what a player shows
    assert res.frames == shown  # every source instant (or reported, above)
    assert abs(res.width / res.height / (stored_w * sar / H) - 1) < 0.03  # geometry
    bars, _ = _bar_positions(res.dst)
    # source frame first + k; interlaced, either of its fields (2k, 2k + 1): the one bwdif
    # keeps is the first in the order the frame is flagged with (mpeg4's: bottom)
    half = 0.5 if fields else 0
    want = [BAR0 + BAR_STEP * (2 * (first + k) + half) for k in range(shown)]
    # frames showing concealed damage (up to the next key frame) are reported, not measured
    clean = [k for k in range(shown) if not damage or not 15 <= first + k < 24]
    assert np.allclose(np.take(bars, clean), np.take(want, clean), atol=0.6 + half * BAR_STEP)
    if fields:  # (the source's comb is 5 to 10)
        assert max(np.take(_comb(res.dst), clean)) < 1


# --- round 2: timestamps that go back, open GOPs, a damaged first key frame, intra refresh ---


def _retimed(src: Path, dst: Path, pts_of) -> Path:
    """``src``'s packets into ``dst``, packet ``k`` given the time ``pts_of(k, pts)``."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for k, p in enumerate(p for p in i.demux(video=0) if p.size):
            p.stream, p.pts, p.dts = s, pts_of(k, p.pts), k  # (no B-frames: decode order)
            o.mux(p)
    return dst


def _shown(path: Path) -> list[int]:
    """The source frame (by its bar) each decoded frame of ``path`` shows."""
    return [round((x - BAR0) / (2 * BAR_STEP)) for x in _bar_positions(path)[0]]


def _back_in_time(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A 24-frame 25 fps source whose timestamps go back (``kind``), and what probe and
    reencode must say of it."""
    frames = _frames(24)
    if kind == "cat":  # two recordings joined with `cat`: both start at the same time
        a = _write(tmp_path / "a.ts", frames[:12], "libx264", rate=Fraction(25))
        b = _write(tmp_path / "b.ts", frames[12:], "libx264", rate=Fraction(25))
        (tmp_path / "src.ts").write_bytes(a.read_bytes() + b.read_bytes())
        return tmp_path / "src.ts", "timestamps restart at frame 12"
    base = _write(tmp_path / "base.mkv", frames, "libx264", rate=Fraction(25))
    once = "out of order or at a repeated time (frame 10)"
    pts_of, said = {
        "reset": (lambda k, t: t - 460 if k >= 12 else t, "timestamps restart at frame 12"),
        "back": (lambda k, t: 120 if k == 10 else t, once),  # one frame's time 7 frames back
        "repeat": (lambda k, t: 360 if k == 10 else t, once),  # frame 9's time again
        "swap": (lambda k, t: {5: 240, 6: 200}.get(k, t), once.replace("10", "6")),
    }[kind]
    return _retimed(base, tmp_path / "src.mkv", pts_of), said


@pytest.mark.parametrize("kind", ["cat", "reset", "back", "repeat", "swap"])
def test_timestamps_that_go_back_keep_every_frame_and_are_reported(tmp_path, kind):
    src, said = _back_in_time(tmp_path, kind)
    info = cvpt.probe(src)
    assert info.frames == 24 and said in info.damage and info.layout_problems()
    assert info.fps == 25  # two timelines interleaved are not one 50 fps grid
    res = reencode(src, tmp_path / "out.mp4", short_side=None)
    assert said in res.damage
    shown = _shown(res.dst)
    # every source frame, in order (a frame out of place may leave a repeat behind it)
    assert [k for i, k in enumerate(shown) if not i or k != shown[i - 1]] == list(range(24))
    assert len(shown) <= 24 + 2


def test_an_open_gop_cut_before_its_key_frame_counts_every_frame(tmp_path):
    opts = {"x264-params": "keyint=12:min-keyint=12:open-gop=1:bframes=2:scenecut=0"}
    whole = _write(tmp_path / "whole.mkv", _frames(30), "libx264", rate=Fraction(25), opts=opts)
    cut = _remux(whole, tmp_path / "cut.mkv", drop=3)  # 27 packets; the I-frame shows frame 12
    info = cvpt.probe(cut)
    # the B-frames before the I-frame (display order) referencing the GOP cut off: dropped
    assert (info.frames, info.leading_frames) == (18, 9)
    res = reencode(cut, tmp_path / "out.mp4", short_side=None)
    assert res.leading_frames == 9 and _shown(res.dst) == list(range(12, 30))


@pytest.mark.parametrize("codec, ext", [("libx264", "mkv"), ("mpeg4", "avi")])
def test_a_damaged_first_key_frame_is_damage_not_a_cut(tmp_path, codec, ext):
    whole = _write(tmp_path / f"whole.{ext}", _frames(24), codec, rate=Fraction(25))
    with av.open(str(whole)) as c:
        pos, size = next((p.pos, p.size) for p in c.demux(video=0) if p.size)
    data = bytearray(whole.read_bytes())
    data[pos + size // 3 : pos + size] = bytes(size - size // 3)  # the picture data zeroed
    bad = tmp_path / f"bad.{ext}"
    bad.write_bytes(bytes(data))
    info = cvpt.probe(bad)
    said = "the first key frame (packet 0) does not decode; 12 frame(s) up to the next key"
    if info.corrupt_frames:  # concealed instead (MPEG-4 may): reported as such
        assert "concealed" in info.damage and info.frames == 24
        return
    assert said in info.damage and "mid-GOP" not in info.damage and info.leading_frames == 0
    res = reencode(bad, tmp_path / "out.mp4", short_side=None)
    assert said in res.damage and _shown(res.dst) == list(range(12, 24))


def test_an_intra_refresh_stream_cut_mid_stream_keeps_what_the_decoder_recovers(tmp_path):
    opts = {"x264-params": "keyint=12:intra-refresh=1:bframes=0:scenecut=0"}
    whole = _write(tmp_path / "whole.mkv", _frames(30), "libx264", rate=Fraction(25), opts=opts)
    cut = _remux(whole, tmp_path / "cut.mkv", drop=5)  # no IDR after the cut
    info = cvpt.probe(cut)
    # FFmpeg's decoder puts out frames from its recovery point on (16: the refresh done)
    assert (info.frames, info.leading_frames, info.corrupt_frames) == (14, 11, 0)
    res = reencode(cut, tmp_path / "out.mp4", short_side=None)
    assert _shown(res.dst) == list(range(16, 30))


@pytest.mark.parametrize("ext, codec", [("mkv", "libx264"), ("mp4", "mpeg4")])
def test_a_rate_below_one_frame_per_1000_s_is_refused_not_repeated(tmp_path, ext, codec):
    src = _write(tmp_path / f"src.{ext}", _frames(6), codec, rate=Fraction(1, 2000))
    assert cvpt.probe(src).fps == 1 / 2000
    with pytest.raises(EncodeError, match=r"src\.\w+: .*one every 2000 s.*0\.001 to 65535 fps"):
        reencode(src, tmp_path / "out.mp4", short_side=None)
