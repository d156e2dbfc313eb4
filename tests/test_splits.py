"""The real official split files (tests/data/splits, provenance in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvpt.cli.main import main
from cvpt.data.splits import (
    FolderSplits,
    HMDB51Splits,
    ListSplits,
    SSv2Splits,
    UCF101Splits,
    resolve_video,
)

SPLITS = Path(__file__).parent / "data" / "splits"


@pytest.mark.parametrize(
    ("k", "train", "test"), [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)]
)
def test_ucf101_official_counts(k, train, test):
    s = UCF101Splits(SPLITS / "ucf101", k)
    assert len(s.classes) == 101 and s.classes[0] == "ApplyEyeMakeup"
    tr, te = s.samples("train"), s.samples("test")
    assert (len(tr), len(te)) == (train, test)
    assert not {x.path for x in tr} & {x.path for x in te}
    assert {x.label for x in tr} == set(range(101))


def test_ucf101_files_are_crlf_and_still_parse():
    raw = (SPLITS / "ucf101" / "trainlist01.txt").read_bytes()
    assert b"\r\n" in raw
    assert not any("\r" in x.path for x in UCF101Splits(SPLITS / "ucf101").samples("train"))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hmdb51_official_counts_and_class_order(k):
    s = HMDB51Splits(SPLITS / "hmdb51", k)
    assert len(s.classes) == 51
    assert (len(s.samples("train")), len(s.samples("test"))) == (3570, 1530)
    # sorted names, not sorted file names: kick before kick_ball, climb before climb_stairs
    assert s.classes.index("kick") + 1 == s.classes.index("kick_ball")
    assert s.classes.index("climb") + 1 == s.classes.index("climb_stairs")
    assert sorted(p.name for p in (SPLITS / "hmdb51").glob("kick*_split1.txt"))[0].startswith(
        "kick_ball"
    )


def test_ssv2_labels_and_validation():
    s = SSv2Splits(SPLITS / "ssv2")
    assert len(s.classes) == 174 and s.classes[0] == "Approaching something with your camera"
    val = s.samples("validation")
    assert len(val) == 24_777 and {x.label for x in val} == set(range(174))
    assert val[0].path.endswith(".webm")
    assert s.flips is False
    with pytest.raises(FileNotFoundError, match=r"train\.json"):
        s.samples("train")  # not shipped with the project


def test_handstandpushups_quirk_against_a_fake_tree(tmp_path):
    s = UCF101Splits(SPLITS / "ucf101", 1)
    root = tmp_path / "UCF-101"
    wanted = [x for x in s.samples("train") + s.samples("test") if x.path.startswith("Handstand")]
    for x in wanted:  # the real names: folder HandstandPushups, files v_HandStandPushups_*
        (root / x.path).parent.mkdir(parents=True, exist_ok=True)
        (root / x.path).touch()
    assert any("v_HandStandPushups_" in x.path for x in wanted)
    assert all(resolve_video(root, x.path) is not None for x in wanted)


def test_prepared_mp4_twins_are_found(tmp_path):
    (tmp_path / "Archery").mkdir()
    (tmp_path / "Archery" / "v_Archery_g01_c01.mp4").touch()
    got = resolve_video(tmp_path, "Archery/v_Archery_g01_c01.avi")
    assert got == tmp_path / "Archery" / "v_Archery_g01_c01.mp4"
    assert resolve_video(tmp_path, "Archery/v_Archery_g01_c02.avi") is None


def test_generic_list_and_folder_datasets(tmp_path):
    (tmp_path / "train.csv").write_text("a/x one.mp4,3\r\nb/y.mp4,0\r\n")
    (tmp_path / "val.txt").write_text("c/z.mp4 1\n")
    lists = ListSplits(tmp_path)
    assert lists.subsets == ("train", "val")
    assert [(x.path, x.label) for x in lists.samples("train")] == [
        ("a/x one.mp4", 3),
        ("b/y.mp4", 0),
    ]
    assert lists.classes == ["0", "1", "2", "3"]
    root = tmp_path / "videos"
    for cls, n in (("jump", 2), ("run", 1)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"{i}.mp4").touch()
    folders = FolderSplits(root)
    assert folders.classes == ["jump", "run"]
    assert [x.label for x in folders.samples("all")] == [0, 0, 1]


def test_data_check_command(tmp_path, capsys):
    root = tmp_path / "hmdb"
    s = HMDB51Splits(SPLITS / "hmdb51", 1)
    test = s.samples("test")
    for x in s.samples("train") + test[:-3]:  # three test videos missing
        (root / x.path).parent.mkdir(parents=True, exist_ok=True)
        (root / x.path).with_suffix(".mp4").touch()
    args = [
        "data",
        "check",
        "--dataset",
        "hmdb51",
        "--root",
        str(root),
        "--annotations",
        str(SPLITS / "hmdb51"),
        "--split",
        "1",
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "train       listed    3570  found    3570  missing       0" in out
    assert "test        listed    1530  found    1527  missing       3" in out
    assert test[-1].path in out


def test_list_dataset_class_names_and_flip_rule(tmp_path):
    (tmp_path / "train.txt").write_text("a.mp4 0\nb.mp4 2\n")
    plain = ListSplits(tmp_path)
    assert plain.classes == ["0", "1", "2"] and not hasattr(plain, "flips")
    (tmp_path / "classes.json").write_text('["left", "right"]')
    with pytest.raises(ValueError, match="at least 3 class names"):
        ListSplits(tmp_path)
    (tmp_path / "classes.json").write_text('["left", "right", "up"]')
    (tmp_path / "dataset.json").write_text('{"flip": false}')
    named = ListSplits(tmp_path)
    assert named.classes == ["left", "right", "up"] and named.flips is False


def _reencoded_tree(src: Path, dst: Path, encoding: str, newline: str) -> Path:
    """The official files as a Windows editor saves them: a byte-order mark, CRLF or CR."""
    dst.mkdir()
    for f in src.iterdir():
        lines = f.read_text(encoding="utf-8").splitlines()
        (dst / f.name).write_bytes((newline.join(lines) + newline).encode(encoding))
    return dst


ENCODINGS = [
    ("utf-8-sig", "\r\n"),
    ("utf-8-sig", "\n"),
    ("utf-16", "\r\n"),
    ("utf-8", "\r"),
    ("utf-16-le", "\r\n"),  # UTF-16 without its mark (before: "expected 'index name'")
    ("utf-16-be", "\n"),
]


@pytest.mark.parametrize(("encoding", "newline"), ENCODINGS)
def test_official_files_saved_with_a_bom_parse_the_same(tmp_path, encoding, newline):
    for name, cls in (("ucf101", UCF101Splits), ("hmdb51", HMDB51Splits)):
        want = cls(SPLITS / name, 1)
        got = cls(_reencoded_tree(SPLITS / name, tmp_path / name, encoding, newline), 1)
        assert got.classes == want.classes
        for subset in ("train", "test"):
            assert got.samples(subset) == want.samples(subset)
    (tmp_path / "train.txt").write_bytes("a/x.mp4 0\r\nb/y.mp4 1\r\n".encode(encoding))
    (tmp_path / "classes.json").write_bytes('["jump", "run"]'.encode(encoding))
    lists = ListSplits(tmp_path / "train.txt")
    assert [(x.path, x.label) for x in lists.samples("train")] == [("a/x.mp4", 0), ("b/y.mp4", 1)]
    assert lists.classes == ["jump", "run"]


def test_data_check_with_bom_files_finds_every_video(tmp_path, capsys):
    ann = _reencoded_tree(SPLITS / "ucf101", tmp_path / "ann", "utf-8-sig", "\r\n")
    root = tmp_path / "UCF-101"
    s = UCF101Splits(SPLITS / "ucf101", 1)
    for x in s.samples("train") + s.samples("test"):
        (root / x.path).parent.mkdir(parents=True, exist_ok=True)
        (root / x.path).touch()
    args = ["data", "check", "--dataset", "ucf101", "--root", str(root), "--annotations", str(ann)]
    assert main(args) == 0, capsys.readouterr().err
    assert "missing       0" in capsys.readouterr().out


def test_unparsable_split_files_name_the_file_and_line(tmp_path, capsys):
    (tmp_path / "classInd.txt").write_text("1 Archery\nx Biking\n")
    with pytest.raises(ValueError, match=r"classInd\.txt, line 2: expected 'index name'"):
        UCF101Splits(tmp_path)
    (tmp_path / "classInd.txt").write_bytes(b"1 Archery\n2 Caf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(ValueError, match=r"classInd\.txt: not UTF-8 text .* line 2"):
        UCF101Splits(tmp_path)
    (tmp_path / "train.txt").write_text("a.mp4 0\nb.mp4\n")
    with pytest.raises(ValueError, match=r"train\.txt, line 2: expected 'path label'"):
        ListSplits(tmp_path / "train.txt")
    args = ["data", "check", "--dataset", "ssv2", "--root", str(tmp_path)]
    labels = tmp_path / "something-something-v2-labels.json"
    labels.write_text('{"Pushing [something]": "0"')  # cut short
    assert main([*args, "--annotations", str(tmp_path)]) == 2
    assert f"{labels}: not valid JSON" in capsys.readouterr().err
    labels.write_bytes('{"Pushing [something]": "0"}'.encode("utf-8-sig"))
    assert SSv2Splits(tmp_path).classes == ["Pushing [something]"]


def test_invisible_characters_never_end_up_in_a_path(tmp_path):
    # a zero-width space or a direction mark pasted from a web page prints like nothing: the
    # listed path looked identical to the file on disk and was reported missing
    (tmp_path / "train.txt").write_text(
        "a/x.mp4\u200b 0\n\u200eb/y.mp4 1\nc/z\u00ad.mp4\u00a02\n \n\n", encoding="utf-8"
    )
    lists = ListSplits(tmp_path / "train.txt")
    got = [(x.path, x.label) for x in lists.samples("train")]
    assert got == [("a/x.mp4", 0), ("b/y.mp4", 1), ("c/z.mp4", 2)]
    (tmp_path / "classInd.txt").write_text("1 Archery\n2 Biking\u2060\n", encoding="utf-8")
    assert UCF101Splits(tmp_path).classes == ["Archery", "Biking"]
    (tmp_path / "classInd.txt").write_text("1 Caf\u00e9\n", encoding="utf-8")  # kept
    assert UCF101Splits(tmp_path).classes == ["Caf\u00e9"]


# --- list files whose paths hold commas, quotes, spaces and '#' --------------------------------

_AWKWARD = [  # folder and file name parts as real datasets have them
    "Putting something, something and something on the table",
    "take #2",
    "clip#3",
    'say "hi"',
    "a b",
    "#lead",
    '"quoted"',
    "x,y",
    "plain",
    " spaced ",
]


def _awkward_paths(seed: int, n: int = 8) -> list[str]:
    import random

    rng = random.Random(seed)
    return [
        f"{rng.choice(_AWKWARD).strip()}/{rng.choice(_AWKWARD).strip()}{k}.webm" for k in range(n)
    ]


def _write_list(path: Path, style: str, rows: list[tuple[str, int | None]]) -> None:
    """``rows`` (path, label or None) as a user's tool writes them: ``raw`` (``path label``
    with a space, as typed), ``quoted`` (the path in double quotes, ``""`` inside), ``csv``
    (``csv.writer``: commas, quotes where needed), into a ``.txt`` or a ``.csv`` file."""
    import csv
    import io

    if style == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows([[p] if lab is None else [p, lab] for p, lab in rows])
        path.write_text(buf.getvalue())
        return
    if style == "quoted":
        rows = [('"' + p.replace('"', '""') + '"', lab) for p, lab in rows]
    path.write_text("".join(p + ("" if lab is None else f" {lab}") + "\n" for p, lab in rows))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "style,suffix", [("raw", ".txt"), ("quoted", ".txt"), ("csv", ".csv"), ("csv", ".txt")]
)
def test_list_paths_with_commas_quotes_and_hashes_are_read_right_or_refused(
    tmp_path, seed, style, suffix
):
    """Each listed path is read as written (the dataset's samples, predict's videos), or the
    list is refused naming the line; a line that a '#' makes a comment is warned about. Never
    another path."""
    import warnings

    from cvpt.errors import DataError
    from cvpt.predictor import expand_inputs

    paths = _awkward_paths(seed)
    labels = [k % 3 for k in range(len(paths))]
    for p in paths:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"")
    for labelled in (True, False):
        lst = tmp_path / (("train" if labelled else "predict") + suffix)
        _write_list(
            lst,
            style,
            [(p, lab if labelled else None) for p, lab in zip(paths, labels, strict=True)],
        )
        lines = lst.read_text().splitlines()
        # lines a text list reads as comments: they start with '#' (csv.writer quotes a path
        # only when it holds a comma or a quote)
        commented = {k for k, ln in enumerate(lines) if suffix == ".txt" and ln[0] == "#"}
        # an unquoted path starting with a quote cannot be told from a quoted one: refused
        refused = style == "raw" and any(
            p[0] == '"' for k, p in enumerate(paths) if k not in commented
        )
        want = [w for k, w in enumerate(zip(paths, labels, strict=True)) if k not in commented]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got = (
                    [(s.path, s.label) for s in ListSplits(lst).samples("train")]
                    if labelled
                    else expand_inputs([lst])
                )
            except DataError as e:
                assert refused, e
                assert str(lst) in str(e) and ", line " in str(e) and "double quote" in str(e)
                continue
        assert not refused
        if labelled:
            assert got == want
        else:
            assert got == [str(tmp_path / p) for p, _ in want]
        said = " ".join(str(w.message) for w in caught)
        for k in commented:
            assert f"line {k + 1}:" in said and "read as a comment" in said
        assert len(caught) == len(commented)


def test_predict_arguments_keep_their_hashes(tmp_path):
    from cvpt.predictor import expand_inputs

    video = tmp_path / "videos" / "take #2" / "clip#3.mp4"
    assert expand_inputs([str(video)]) == [str(video)]


@pytest.mark.parametrize(
    "link, target, problem",
    [
        ("b", "unmounted", "does not exist"),  # a class on a disk not mounted
        ("zall", "dataset", "same video under two classes"),  # the dataset folder itself
        ("b", "a", "same video under two classes"),  # one class under two names
        ("c/more", "a", "same video under two classes"),  # a link inside a class
        ("a/deeper/up", "c", "same video under two classes"),  # two levels down
        ("b", "elsewhere", None),  # a class folder kept elsewhere: followed, no problem
    ],
)
@pytest.mark.parametrize("nested", [False, True])
def test_folder_labels_never_shift_or_double_through_links(tmp_path, link, target, problem, nested):
    """Class folders that are links: followed when they lead to a class of their own; refused,
    naming the link, where a label would silently change (a class vanishing shifts every later
    label; a video reached under two classes gets two)."""
    from cvpt.errors import DataError

    root = tmp_path / "ds"
    base = root / "train" if nested else root
    for cls in ("a", "c"):
        (base / cls).mkdir(parents=True)
        (base / cls / f"{cls}1.mp4").touch()
    if nested:
        (root / "test" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b1.mp4").touch()
    places = {
        "unmounted": tmp_path / "unmounted",
        "dataset": base,
        "elsewhere": tmp_path / "elsewhere",
    }
    (base / link).parent.mkdir(parents=True, exist_ok=True)
    (base / link).symlink_to(places.get(target, base / target), target_is_directory=True)
    subset = "train" if nested else "all"
    if problem is None:
        splits = FolderSplits(root)
        got = {(s.path, splits.classes[s.label]) for s in splits.samples(subset)}
        pre = "train/" if nested else ""
        assert got == {(f"{pre}a/a1.mp4", "a"), (f"{pre}b/b1.mp4", "b"), (f"{pre}c/c1.mp4", "c")}
        return
    with pytest.raises(DataError, match=problem) as err:
        FolderSplits(root).samples(subset)
    assert link.split("/")[0] in str(err.value)  # the link, or the class it lies in, is named


@pytest.mark.parametrize("header", [None, "path,label", "video, class", '"path","label"'])
@pytest.mark.parametrize("suffix", [".csv", ".CSV", ".lst", ".list", ".txt"])
def test_list_files_by_any_list_suffix_with_or_without_a_csv_header(tmp_path, header, suffix):
    """A list folder finds its lists by every list suffix (any case); a CSV's first row that
    names its columns is a header, not a video; elsewhere such a row is an error naming it."""
    from cvpt.errors import DataError

    sep = "," if suffix.lower() == ".csv" else " "
    rows = [f"a, b/x y.mp4{sep}1", f"c/z.webm{sep}0"] if sep == "," else ["b/x.mp4 1", "c/z.webm 0"]
    lines = ([header] if header else []) + rows
    (tmp_path / f"train{suffix}").write_text("\n".join(lines) + "\n")
    if header and sep != ",":
        with pytest.raises(DataError, match="line 1"):
            ListSplits(tmp_path)
        return
    lists = ListSplits(tmp_path)
    assert lists.subsets == ("train",)
    want = [rows[0].rsplit(sep, 1)[0].strip(), rows[1].rsplit(sep, 1)[0]]
    assert [(s.path, s.label) for s in lists.samples("train")] == [(want[0], 1), (want[1], 0)]


def test_class_names_as_labels_are_refused_naming_classes_json(tmp_path):
    from cvpt.errors import DataError

    (tmp_path / "train.txt").write_text("a/x.mp4 0\nb/y.mp4 jump\n")
    with pytest.raises(
        DataError, match=r"line 2: the label 'jump' is not a class number.*classes\.json"
    ):
        ListSplits(tmp_path)
