"""Picture types from compressed packets, without decoding: the few header bits that say
whether a frame is I, P or B, for the two codecs ``read_clip`` reads (MPEG-4 Part 2, H.264).

What a decoder would report as ``frame.pict_type`` for each packet, so that readiness can be
decided from one demux pass (:mod:`cvpt.codec.window`). Anything these parsers do not fully
understand returns ``None`` ("cannot tell"), and the caller decodes instead: parameter sets
inside the stream (a new size may follow), several pictures in one packet, slices of
different types, Annex B H.264.
"""

from __future__ import annotations

# MPEG-4 Part 2 start codes (ISO/IEC 14496-2, 6.2.1): VOP, VOS, and the VOL range.
_VOP, _VOS = 0xB6, 0xB0
_VOL = range(0x20, 0x30)
# vop_coding_type: 0 I, 1 P, 2 B, 3 S (sprite; a decoder reports it as S, probe as "?")
_MPEG4_TYPES = "IPB?"
# H.264 slice_type % 5: P, B, I, SP, SI (7.4.3); SP and SI are "?" to probe as well
_H264_TYPES = "PBI??"
_H264_SLICES = (1, 5)  # non-IDR and IDR slice NAL units
_H264_SPS = (7, 15)  # (subset) sequence parameter sets: they carry the frame size


def mpeg4_type(data: bytes) -> str | None:
    """The picture type letter of one MPEG-4 Part 2 packet, or None when it holds no VOP,
    several (packed B-frames), or a VOS / VOL header (a new configuration, maybe a new
    size)."""
    types = []
    i = data.find(b"\0\0\1")
    while 0 <= i < len(data) - 4:
        code = data[i + 3]
        if code in _VOL or code == _VOS:
            return None
        if code == _VOP:
            types.append(_MPEG4_TYPES[data[i + 4] >> 6])
        i = data.find(b"\0\0\1", i + 3)
    return types[0] if len(types) == 1 else None


def h264_length_size(extradata: bytes | None) -> int | None:
    """Bytes of each NAL unit's length prefix of an ``avcC`` stream (mp4, mkv), or None for
    Annex B (start codes) or no extradata."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    return (extradata[4] & 3) + 1


def h264_type(data: bytes, length_size: int) -> str | None:
    """The picture type letter of one length-prefixed H.264 packet (all its slices of one
    type), or None when it carries a sequence parameter set (a new size may follow), slices of
    different types, no slice, or does not parse."""
    types = set()
    i = 0
    while i < len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        nal = data[i : i + n]
        i += n
        if not nal or len(nal) < n:
            return None
        kind = nal[0] & 0x1F
        if kind in _H264_SPS:
            return None
        if kind in _H264_SLICES:
            bits = _Bits(nal[1:16].replace(b"\0\0\3", b"\0\0"))  # emulation prevention
            bits.ue()  # first_mb_in_slice
            slice_type = bits.ue()
            if slice_type is None:
                return None
            types.add(_H264_TYPES[slice_type % 5])
    return types.pop() if len(types) == 1 else None


class _Bits:
    """Exp-Golomb reading from the start of a few bytes."""

    def __init__(self, data: bytes):
        self.value = int.from_bytes(data, "big")
        self.left = 8 * len(data)

    def ue(self) -> int | None:
        """One unsigned Exp-Golomb number, or None past the end."""
        zeros = 0
        while True:
            if self.left <= 0:
                return None
            if self._bit():
                break
            zeros += 1
        if self.left < zeros:
            return None
        rest = 0
        for _ in range(zeros):
            rest = rest << 1 | self._bit()
        return (1 << zeros) - 1 + rest

    def _bit(self) -> int:
        self.left -= 1
        return (self.value >> self.left) & 1


# NAL unit types of key pictures: H.264 IDR slices; HEVC IRAP pictures (BLA, IDR, CRA).
_H264_KEY_NALS = frozenset({5})
_HEVC_KEY_NALS = frozenset(range(16, 22))


def is_key_picture(data: bytes, codec: str, extradata: bytes | None = None) -> bool:
    """True when one packet of ``codec`` holds a key picture by its headers: an MPEG-4 Part 2
    I-VOP, an H.264 IDR slice, an HEVC IRAP picture. Reads the headers only, so a picture
    whose data is damaged past them is still told (what a container's flag may not say: the
    H.264 parser re-derives it from the slices). ``extradata``: the stream's (``avcC`` /
    ``hvcC``: NAL units length-prefixed; else start codes)."""
    if codec == "mpeg4":
        return mpeg4_type(data) == "I"
    if codec not in ("h264", "hevc"):
        return False
    if codec == "h264":
        kind, keys, size = (lambda b: b & 0x1F), _H264_KEY_NALS, h264_length_size(extradata)
    else:  # hvcC: the length size in byte 21
        hvcc = bool(extradata) and len(extradata) > 22 and extradata[0] == 1
        kind, keys = (lambda b: (b >> 1) & 0x3F), _HEVC_KEY_NALS
        size = (extradata[21] & 3) + 1 if hvcc else None
    return any(kind(nal) in keys for nal in _nal_heads(data, size))


def _nal_heads(data: bytes, length_size: int | None) -> list[int]:
    """The first byte of each NAL unit of a packet: length-prefixed by ``length_size`` bytes,
    or (None) after start codes."""
    heads = []
    if length_size:
        i = 0
        while i + length_size < len(data):
            n = int.from_bytes(data[i : i + length_size], "big")
            heads.append(data[i + length_size])
            i += length_size + max(n, 1)
        return heads
    i = data.find(b"\0\0\1")
    while 0 <= i < len(data) - 3:
        heads.append(data[i + 3])
        i = data.find(b"\0\0\1", i + 3)
    return heads
