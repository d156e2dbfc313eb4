"""Official split files as small classes: which videos, which labels, per subset.

Every class answers ``classes`` (index → name) and ``samples(subset)`` → list of
:class:`Sample` (a path relative to the dataset root, as the annotation writes it, and a
0-based label). Files are read as a text editor saved them (:func:`read_annotation`: a UTF-8
byte-order mark, UTF-16, CRLF); a line that does not parse is an error naming the file and
the line. Nothing here touches a video.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from cvpt.codec.container import VIDEO_EXTENSIONS
from cvpt.errors import DataError, MissingFileError
from cvpt.formats import Format
from cvpt.io import walk_files

# an optional dataset.json beside a list dataset's lists ({"flip": false}; cvpt synth writes it)
DATASET_OPTIONS = Format("cvpt-dataset-options", 1)


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root, as the annotation names it
    label: int  # 0-based


def read_annotation(path: Path) -> str:
    """The text of an annotation file, whatever a text editor saved: UTF-8 with or without a
    byte-order mark (Windows editors add one), UTF-16 with its mark or without (told by its
    zero bytes), CRLF, LF or CR line ends. Invisible format characters (a mark in the middle of
    files joined with ``cat``, zero-width spaces and direction marks pasted from a web page)
    are removed: a path that holds one prints like the file on disk and never matches it.
    Raises MissingFileError or DataError naming the file (e.g. another encoding)."""
    if not path.is_file():
        raise MissingFileError(f"{path}: annotation file not found")
    raw = path.read_bytes()
    encoding = "utf-8-sig"
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    elif len(raw) >= 2 and len(raw) % 2 == 0 and b"\0" in raw:  # UTF-16 without its mark
        odd_zeros, even_zeros = raw[1::2].count(0), raw[0::2].count(0)
        if max(odd_zeros, even_zeros) >= len(raw) // 4:
            encoding = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    return text if text.isascii() else _INVISIBLE.sub("", text)


# The invisible format characters (Unicode category Cf) that text editors and web pages put in
# text: soft hyphen, zero-width spaces and joiners, direction marks and embeddings, word
# joiners, byte-order marks.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of the non-empty lines, without line ends or surrounding spaces."""
    lines = read_annotation(path).splitlines()
    return [(k, ln.strip()) for k, ln in enumerate(lines, 1) if ln.strip()]


def _read_json(path: Path):
    try:
        return json.loads(read_annotation(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def _bad_line(path: Path, k: int, line: str, expected: str) -> DataError:
    return DataError(f"{path}, line {k}: expected {expected}, got {line!r}")


class UCF101Splits:
    """UCF-101 ``ucfTrainTestlist``: ``classInd.txt`` (1-based), ``trainlist0K.txt``
    (``path label``), ``testlist0K.txt`` (path only: the label is the folder's class).

    Paths are used as listed: the folder ``HandstandPushups/`` holds ``v_HandStandPushups_*``
    files, so a file name is never rebuilt from its class name.
    """

    subsets = ("train", "test")

    def __init__(self, annotations: str | Path, split: int = 1):
        if split not in (1, 2, 3):
            raise DataError(f"UCF-101 has splits 1, 2, 3; got {split}")
        self.dir, self.split = Path(annotations), split
        self.classes: list[str] = []
        path = self.dir / "classInd.txt"
        for k, ln in _lines(path):
            parts = ln.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise _bad_line(path, k, ln, "'index name'")
            if int(parts[0]) != len(self.classes) + 1:
                raise DataError(f"{path}, line {k}: index {parts[0]} out of order")
            self.classes.append(parts[1])
        self._index = {c: i for i, c in enumerate(self.classes)}

    def samples(self, subset: str) -> list[Sample]:
        name = {"train": "trainlist", "test": "testlist"}.get(subset)
        if name is None:
            raise DataError(f"UCF-101 subsets are {self.subsets}; got {subset!r}")
        path = self.dir / f"{name}{self.split:02d}.txt"
        out = []
        for k, ln in _lines(path):
            parts = ln.split()
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
                raise _bad_line(path, k, ln, "'path' or 'path label'")
            folder = parts[0].split("/")[0]
            if folder not in self._index:
                raise DataError(f"{path}, line {k}: unknown class folder {folder!r} in {ln!r}")
            label = self._index[folder]
            if len(parts) > 1 and int(parts[1]) - 1 != label:
                raise DataError(
                    f"{path}, line {k}: label {parts[1]} disagrees with the folder in {ln!r}"
                )
            out.append(Sample(parts[0], label))
        return out


class HMDB51Splits:
    """HMDB-51 ``testTrainMulti_7030_splits``: ``<class>_test_split<k>.txt``, lines
    ``<video>.avi <tag>`` with tag 1 = train, 2 = test, 0 = unused. Classes are indexed in the
    order of their sorted *names* (``kick`` before ``kick_ball``), not of the sorted file names
    (where ``kick_ball_test_split1.txt`` comes first)."""

    subsets = ("train", "test")
    _FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")

    def __init__(self, annotations: str | Path, split: int = 1):
        if split not in (1, 2, 3):
            raise DataError(f"HMDB-51 has splits 1, 2, 3; got {split}")
        self.dir, self.split = Path(annotations), split
        files = {}
        for p in self.dir.glob(f"*_test_split{split}.txt"):
            m = self._FILE.match(p.name)
            if m:
                files[m["cls"]] = p
        if not files:
            raise MissingFileError(f"{self.dir}: no *_test_split{split}.txt files")
        self.classes = sorted(files)
        self._files = files

    def samples(self, subset: str) -> list[Sample]:
        tag = {"train": "1", "test": "2"}.get(subset)
        if tag is None:
            raise DataError(f"HMDB-51 subsets are {self.subsets}; got {subset!r}")
        out = []
        for label, cls in enumerate(self.classes):
            path = self._files[cls]
            for k, ln in _lines(path):
                parts = ln.split()
                if len(parts) != 2:
                    raise _bad_line(path, k, ln, "'video tag'")
                video, t = parts
                if t == tag:
                    out.append(Sample(f"{cls}/{video}", label))
        return out


class SSv2Splits:
    """Something-Something v2: ``something-something-v2-labels.json`` (template → id) and
    ``something-something-v2-{train,validation}.json`` (``id``, ``template`` with
    ``[something]`` placeholders); videos are ``<id>.webm``. Labels depend on left/right, so
    training must not flip (``flips = False``)."""

    subsets = ("train", "validation")
    flips = False

    def __init__(self, annotations: str | Path, split: int = 1):
        self.dir = Path(annotations)
        labels = _read_json(self.dir / "something-something-v2-labels.json")
        self.classes = [""] * len(labels)
        for template, idx in labels.items():
            self.classes[int(idx)] = template
        self._ids = {t: int(i) for t, i in labels.items()}

    def samples(self, subset: str) -> list[Sample]:
        if subset not in self.subsets:
            raise DataError(f"SSv2 subsets are {self.subsets}; got {subset!r}")
        path = self.dir / f"something-something-v2-{subset}.json"
        out = []
        for item in _read_json(path):
            template = item["template"].replace("[", "").replace("]", "")
            if template not in self._ids:
                raise DataError(f"{path}: video {item['id']}: unknown template {template!r}")
            out.append(Sample(f"{item['id']}.webm", self._ids[template]))
        return out


LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv")


@dataclass(frozen=True)
class ListEntry:
    """One entry of a list file (:func:`read_list`): ``path`` as listed, ``label`` the text of
    its trailing label (None when it has none), ``line`` its line number (1-based) and
    ``text`` that line; ``whole``: the entry read as one path without a label (the whole line
    unless the path was quoted), which ``cvpt predict`` takes when a file has that name."""

    line: int
    text: str
    path: str
    label: str | None
    whole: str


def read_list(path: str | Path, comments: list[tuple[int, str]] | None = None) -> list[ListEntry]:
    """The entries of a video list: ``path`` or ``path label`` per line, the one reader of
    ``list`` datasets and of ``cvpt predict`` lists. The rules (docs/training.md, "List files"):

    - a ``.csv`` file is read by CSV rules (what ``csv.writer`` writes): fields separated by
      commas, a field in double quotes may hold commas, quotes (doubled) and ``#``; the first
      field is the path, the second the label. A row without quotes is its path, then its label
      after the last comma (so a path holding commas needs no quotes when a label follows); a
      row without a comma outside quotes is read as a line of a text list (below);
    - any other list is text: the label is what follows the last space, tab or comma, when
      that is not itself a video file name (``take 2/clip 3.mp4`` has no label), and the path
      is what comes before it; a path starting with a double quote is read to its closing
      quote as a CSV field (``"a, b.mp4" 3``, ``"#1.mp4" 0``; ``""`` for a quote in it);
    - ``#`` starts a comment only as a line's first character (after spaces) in a text list;
      a ``#`` anywhere else belongs to the path (``take #2/clip#3.mp4``); a CSV file has no
      comments;
    - a CSV's first row is a header, and skipped, when it names no video file and has no class
      number (``path,label``);
    - blank lines are skipped; spaces around a path or a label are not part of it; the file
      is read as a text editor saved it (:func:`read_annotation`).

    ``comments``, when given, receives ``(line number, text)`` of every comment line. Raises
    :class:`DataError` naming the file and the line of a row it cannot split."""
    path = Path(path)
    is_csv = path.suffix.lower() == ".csv"
    out = []
    for k, line in enumerate(read_annotation(path).splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#") and not is_csv:
            if comments is not None:
                comments.append((k, text))
            continue
        entry = _csv_entry(path, k, text) if is_csv else _text_entry(path, k, text)
        if is_csv and not out and _is_header(entry):  # `path,label` as pandas writes it
            continue
        out.append(entry)
    return out


def _is_header(entry: ListEntry) -> bool:
    """A CSV's first row naming its columns (``path,label``, ``video,class``): no video file
    name, and no class number where a label goes."""
    return not _is_video_name(entry.path) and not (entry.label or "").isdigit()


def _entry(k: int, text: str, path: str, label: str | None, whole: str) -> ListEntry:
    path, label = path.strip(), (label or "").strip() or None
    if label is not None and _is_video_name(label):  # a path holding a separator, no label
        path, label = whole.strip(), None
    return ListEntry(k, text, path, label, whole.strip() if label is not None else path)


def _csv_entry(list_path: Path, k: int, text: str) -> ListEntry:
    import csv

    fields = next(csv.reader([text], skipinitialspace=True))
    if len(fields) < 2:  # no comma outside quotes
        return _text_entry(list_path, k, text)
    if '"' not in text:
        path, label = text.rsplit(",", 1)
        return _entry(k, text, path, label, text)
    if len(fields) > 2:
        raise _bad_line(list_path, k, text, "'path,label' (a quoted path, then one label)")
    return _entry(k, text, fields[0], fields[1], fields[0])


def _text_entry(list_path: Path, k: int, text: str) -> ListEntry:
    if text.startswith('"'):  # a quoted path: to its closing quote, "" for a quote
        i, chars = 1, []
        while True:
            j = text.find('"', i)
            if j < 0:
                raise _bad_line(list_path, k, text, "a closing double quote")
            chars.append(text[i:j])
            if not text.startswith('"', j + 1):
                break
            chars.append('"')
            i = j + 2
        rest = text[j + 1 :]
        if rest and not (rest[0].isspace() or rest[0] == ","):
            raise _bad_line(
                list_path,
                k,
                text,
                "a space, a tab or a comma after the quoted path (a path that starts with a "
                'double quote is written in double quotes, "" for each quote in it)',
            )
        path = "".join(chars)
        return _entry(k, text, path, rest.strip().removeprefix(","), path)
    m = _TRAILING_LABEL.fullmatch(text)
    if m is None:
        return _entry(k, text, text, None, text)
    return _entry(k, text, m["path"], m["label"], text)


# a path, then spaces, tabs or commas, then a label holding none of them
_TRAILING_LABEL = re.compile(r"(?P<path>.*?)[\s,]+(?P<label>[^\s,]+)")


def _is_list_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in LIST_SUFFIXES


def _is_video_name(token: str) -> bool:
    return Path(token).suffix.lower() in VIDEO_EXTENSIONS


class ListSplits:
    """A generic list (VideoMAE / mmaction2 style): one ``path label`` per line, separated by a
    space, a tab or a comma (the rules, quotes and comments: :func:`read_list`); ``annotations``
    is a folder with ``<subset>.txt`` / ``.csv`` / ``.lst`` / ``.list`` files,
    or one file (its subset is its stem). Class names are the label numbers, or the names in an
    optional ``classes.json`` (a list) beside the lists; an optional ``dataset.json`` with
    ``{"flip": false}`` says that training must not flip (labels that name directions)."""

    def __init__(self, annotations: str | Path, split: int = 1):
        p = Path(annotations)
        files = [p] if p.is_file() else sorted(f for f in p.glob("*") if _is_list_file(f))
        if not files:
            raise MissingFileError(f"{p}: no list files ({', '.join(LIST_SUFFIXES)})")
        self._files = {f.stem: f for f in files}
        self.subsets = tuple(self._files)
        self._samples = {sub: self._read(f) for sub, f in self._files.items()}  # warns once
        labels = {s.label for sub in self.subsets for s in self._samples[sub]}
        self.classes = [str(i) for i in range(max(labels) + 1)] if labels else []
        folder = p if p.is_dir() else p.parent
        if (folder / "classes.json").exists():
            names = _read_json(folder / "classes.json")
            if not isinstance(names, list) or len(names) < len(self.classes):
                raise DataError(
                    f"{folder / 'classes.json'}: expected a list of at least "
                    f"{len(self.classes)} class names"
                )
            self.classes = [str(n) for n in names]
        if (folder / "dataset.json").exists():
            options = _read_json(folder / "dataset.json")
            self.flips = bool(
                DATASET_OPTIONS.upgrade(options, folder / "dataset.json").get("flip", True)
            )

    def samples(self, subset: str) -> list[Sample]:
        if subset not in self._files:
            raise DataError(f"subsets are {self.subsets}; got {subset!r}")
        return list(self._samples[subset])

    @staticmethod
    def _read(path: Path) -> list[Sample]:
        out = []
        comments: list[tuple[int, str]] = []
        for e in read_list(path, comments):
            if e.label is not None and not e.label.isdigit():
                raise DataError(
                    f"{path}, line {e.line}: the label {e.label!r} is not a class number; a "
                    "list gives each video's class as a number (0, 1, …) and the class names, "
                    "in that order, in a classes.json list beside it (docs/training.md, "
                    f"'List files'); got {e.text!r}"
                )
            if e.label is None:
                raise _bad_line(path, e.line, e.text, "'path label'")
            out.append(Sample(e.path, int(e.label)))
        for k, text in comments:  # '#take 1.mp4 3' is a comment, though it reads as an entry
            with contextlib.suppress(DataError):
                e = _text_entry(path, k, text)
                if e.label is not None and e.label.isdigit() and _is_video_name(e.path):
                    warnings.warn(
                        f"{path}, line {k}: {text!r} is read as a comment (it starts with '#'); "
                        "if it lists a video, write its path in double quotes",
                        stacklevel=4,
                    )
        return out


class FolderSplits:
    """Folder per class: ``root/<subset>/<class>/<video>`` when subset folders exist, else
    ``root/<class>/<video>`` as one subset ``all``. Classes are the sorted folder names.
    Linked folders are followed (:func:`cvpt.io.walk_files`); a link that is not (a loop, a
    link to nothing) is warned about.

    Raises :class:`DataError` where a label would silently be another one: a class folder
    that is a link to nothing (an unmounted disk: the class would vanish and every later
    class's label shift), and a video reached under two classes (a class linked to the
    dataset folder, to another class, or a link inside one class to another)."""

    def __init__(self, annotations: str | Path, split: int = 1):
        self.root = Path(annotations)
        if not self.root.is_dir():
            raise MissingFileError(f"{self.root}: not a folder")
        subdirs = [d.name for d in self.root.iterdir() if d.is_dir()]
        nested = {"train", "val", "validation", "test"} & set(subdirs)
        self.subsets = tuple(sorted(nested)) if nested else ("all",)
        class_dirs = set()
        for s in self.subsets:
            for d in (self.root / s if nested else self.root).iterdir():
                if d.is_dir():
                    class_dirs.add(d.name)
                elif d.is_symlink() and not d.exists():
                    raise DataError(
                        f"{d}: a link to {os.readlink(d)}, which does not exist; were it a "
                        "class folder (a disk not mounted?), the class would be missing and "
                        "every later class's label shifted: mount it, or remove the link"
                    )
        self.classes = sorted(class_dirs)

    def samples(self, subset: str) -> list[Sample]:
        if subset not in self.subsets:
            raise DataError(f"subsets are {self.subsets}; got {subset!r}")
        base = self.root if subset == "all" else self.root / subset
        out = []
        seen: dict[str, Sample] = {}  # real path of each video → where it was first found
        for label, cls in enumerate(self.classes):
            folder = base / cls
            if folder.is_dir():  # through linked folders (cvpt.io.walk_files)
                walk = walk_files(folder, lambda f: f.suffix.lower() in VIDEO_EXTENSIONS)
                for f in walk.files:
                    sample = Sample(f.relative_to(self.root).as_posix(), label)
                    first = seen.setdefault(os.path.realpath(f), sample)
                    if first.label != label:
                        raise DataError(
                            f"{self.root}: {first.path} (class {self.classes[first.label]}) "
                            f"and {sample.path} (class {cls}) are the same video under two "
                            "classes: a linked folder leads from one class into another (or "
                            "to the dataset folder); remove the link"
                        )
                    out.append(sample)
                for f, why in walk.not_followed:
                    warnings.warn(f"{f}: {why}; not followed", stacklevel=2)
        return out


DATASETS = {
    "ucf101": UCF101Splits,
    "hmdb51": HMDB51Splits,
    "ssv2": SSv2Splits,
    "list": ListSplits,
    "folder": FolderSplits,
}


def open_splits(dataset: str, annotations: str | Path, split: int = 1):
    """The split parser for ``dataset`` (one of :data:`DATASETS`)."""
    if dataset not in DATASETS:
        raise DataError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    return DATASETS[dataset](annotations, split)


def resolve_video(root: str | Path, rel: str, *, twins: bool = True) -> Path | None:
    """The file of a listed video under ``root``: its prepared ``.mp4`` twin if there is one
    (``cvpt prepare`` mirrors trees and renames every output ``.mp4``), else the file as
    listed; with ``twins=False`` only the file as listed (a video named on purpose, as
    ``cvpt predict`` does, is read even when an ``.mp4`` of the same name sits beside it).
    None if neither exists."""
    listed = Path(root) / rel
    for candidate in (listed.with_suffix(".mp4"), listed) if twins else (listed,):
        if candidate.is_file():
            return candidate
    return None


def check_dataset(dataset: str, root: str | Path, annotations: str | Path, split: int = 1):
    """Per subset: ``(listed, found, missing paths)``."""
    splits = open_splits(dataset, annotations, split)
    report = {}
    for subset in splits.subsets:
        samples = splits.samples(subset)
        missing = [s.path for s in samples if resolve_video(root, s.path) is None]
        report[subset] = (len(samples), len(samples) - len(missing), missing)
    return report
