"""Tests of selfsup.utils.io: the embeddings CSV format, its round trip and its errors."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from selfsup.errors import DataError
from selfsup.utils.io import (
    check_embeddings,
    check_filenames,
    load_embeddings,
    load_embeddings_as_dict,
    save_embeddings,
)

# Any text without line breaks or NUL is a valid filename (lone surrogates: tests below).
filename_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r\x00"),
    min_size=1,
    max_size=12,
)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[np.ndarray, list[int], list[str]]:
    n = draw(st.integers(0, 12))
    d = draw(st.integers(1, 6))
    embeddings = draw(
        hnp.arrays(
            np.float32,
            (n, d),
            elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
        )
    )
    labels = draw(st.lists(st.integers(-(2**31), 2**31), min_size=n, max_size=n))
    names = draw(st.lists(filename_text, min_size=n, max_size=n, unique=True))
    return embeddings, labels, names


@settings(max_examples=60, deadline=None)
@given(data=datasets())
def test_round_trip_is_exact(data: tuple[np.ndarray, list[int], list[str]]) -> None:
    embeddings, labels, names = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.csv"
        save_embeddings(path, embeddings, labels, names)
        got_embeddings, got_labels, got_names = load_embeddings(path)
        # The stdlib csv module reads the same names: our quoting is standard CSV.
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    assert got_embeddings.dtype == np.float32
    assert got_embeddings.shape == embeddings.shape
    np.testing.assert_array_equal(got_embeddings.view(np.uint32), embeddings.view(np.uint32))
    assert got_labels == labels
    assert got_names == names
    assert [row[0] for row in rows[1:]] == names
    assert rows[0] == ["filenames"] + [f"embedding_{i}" for i in range(embeddings.shape[1])] + [
        "labels"
    ]


@settings(max_examples=30, deadline=None)
@given(
    values=hnp.arrays(
        np.float64, (3, 4), elements=st.floats(-3e38, 3e38, allow_nan=False, allow_infinity=False)
    )
)
def test_float64_embeddings_load_as_their_float32_rounding(values: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.csv"
        save_embeddings(path, values, [0, 1, 2], ["a", "b", "c"])
        got, _, _ = load_embeddings(path)
    np.testing.assert_array_equal(got, values.astype(np.float32))


def test_file_layout_matches_lightly(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    save_embeddings(
        path, np.array([[0.5, -1.0], [2.0, 0.25]], np.float32), [3, 7], ["a.png", "b,c"]
    )
    assert path.read_text().splitlines() == [
        "filenames,embedding_0,embedding_1,labels",
        "a.png,0.5,-1,3",
        '"b,c",2,0.25,7',
    ]


def test_loads_lightly_files_with_crlf_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "lightly.csv"
    path.write_bytes(
        b"filenames,embedding_0,embedding_1,labels\r\n"
        b'"say ""hi"", ok.png",1.5,-2e-3,4\r\n'
        b"plain.jpg, 7 ,8.0,0\r\n"
    )
    embeddings, labels, names = load_embeddings(path)
    np.testing.assert_array_equal(embeddings, np.array([[1.5, -2e-3], [7, 8]], np.float32))
    assert labels == [4, 0]
    assert names == ['say "hi", ok.png', "plain.jpg"]


def test_header_only_file_gives_empty_arrays(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    save_embeddings(path, np.zeros((0, 3), np.float32), [], [])
    embeddings, labels, names = load_embeddings(path)
    assert embeddings.shape == (0, 3)
    assert labels == []
    assert names == []


def test_load_embeddings_as_dict(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    save_embeddings(path, np.array([[1.0, 2.0]], np.float32), [5], ["x.png"])
    data = load_embeddings_as_dict(path, embedding_name="mine")
    assert data == {
        "embeddingName": "mine",
        "embeddings": [{"fileName": "x.png", "value": [1.0, 2.0], "label": 5}],
    }
    everything = load_embeddings_as_dict(path, return_all=True)
    assert everything[0]["embeddingName"] == "default"
    assert everything[2] == [5]
    assert everything[3] == ["x.png"]


# --------------------------------------------------------------------------------------
# Malformed files: every error names the file, the line and (where it applies) the column
# --------------------------------------------------------------------------------------

HEADER = "filenames,embedding_0,embedding_1,labels\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"empty; expected the header"),
        ("name,embedding_0,labels\n", r"line 1 \(header\), column 1: expected 'filenames'"),
        ("filenames,labels\n", r"line 1 \(header\): no embedding_\* columns"),
        ("filenames,embedding_0,embedding_1\n", r"line 1 \(header\): missing the 'labels'"),
        ("filenames,embedding_0,label\n", r"line 1 \(header\), column 3: expected 'labels'"),
        ("filenames,embedding_0, labels\n", r"line 1 \(header\), column 3: .* whitespace"),
        (HEADER + "a,1,2,0\nb,1,2\n", r"line 3: 3 columns, expected 4"),
        (HEADER + "a,1,2,0\nb,1,2,3,4\n", r"line 3: 5 columns, expected 4"),
        (HEADER + "a,1,2,0\nb,1,x,3\n", r"line 3, column 3 \(embedding_1\): 'x' is not a number"),
        (HEADER + "a,1,,0\n", r"line 2, column 3 \(embedding_1\): '' is not a number"),
        (HEADER + "a,1,2,0\nb,nan,2,1\n", r"line 3, column 2 \(embedding_0\): 'nan' is not fin"),
        (HEADER + "a,1,-inf,0\n", r"line 2, column 3 \(embedding_1\): '-inf' is not finite"),
        (HEADER + "a,1,1e999,0\n", r"line 2, column 3 \(embedding_1\): '1e999' is not finite"),
        (HEADER + "a,1,2,1.5\n", r"line 2, column 4 \(labels\): '1.5' is not an integer"),
        (HEADER + "a,1,2,cat\n", r"line 2, column 4 \(labels\): 'cat' is not a number"),
        (HEADER + "a,1,2,0\n\nb,1,2,0\n", r"line 3: empty row"),
        (HEADER + ",1,2,0\n", r"line 2, column 1: empty filename"),
        (HEADER + '"a,1,2,0\n', r"line 2, column 1: unterminated quoted filename"),
        (HEADER + '"a"b,1,2,0\n', r"line 2, column 1: unexpected 'b' after the closing quote"),
        (HEADER + "a,1,2,0\nb,1,2,0\na,3,4,1\n", r"duplicate filename 'a' \(lines 2 and 4\)"),
        (HEADER + "nocomma\n", r"line 2: only one column"),
        (
            HEADER + "a,1,4e38,0\n",
            r"line 2, column 3 \(embedding_1\): '4e38' is beyond the float32",
        ),
    ],
)
def test_malformed_files_name_line_and_column(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_embeddings(path)
    assert str(path) in str(info.value)


def test_error_line_numbers_are_right_beyond_the_first_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selfsup.utils.io as io_module

    monkeypatch.setattr(io_module, "_CHUNK_BYTES", 64)  # many small chunks
    rows = [f"f{i},{i},{-i},{i % 3}" for i in range(200)]
    rows[150] = "f150,1,oops,0"
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 152, column 3 \(embedding_1\): 'oops'"):
        load_embeddings(path)
    rows[150] = "f150,1,2,0"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    embeddings, labels, names = load_embeddings(path)
    assert embeddings.shape == (200, 2)
    assert names[199] == "f199"
    assert labels[:4] == [0, 1, 2, 0]


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "nope.csv")
    # A name that is not UTF-8 is a file name like any other on Linux: kept byte for byte.
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"caf\xe9.png,1,2,0\n")
    assert load_embeddings(path)[2] == ["caf\udce9.png"]
    save_embeddings(tmp_path / "again.csv", np.ones((1, 2)), [0], ["caf\udce9.png"])
    assert (tmp_path / "again.csv").read_bytes().splitlines()[1].startswith(b"caf\xe9.png,")


# --------------------------------------------------------------------------------------
# Writing: validation happens before anything touches the destination
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("embeddings", "labels", "names", "message"),
    [
        (np.zeros((2, 2)), [0], ["a", "b"], "same length"),
        (np.zeros(3), [0, 1, 2], ["a", "b", "c"], r"shape \(N, D\)"),
        (np.array([[0.0, np.nan]]), [0], ["a"], r"row 0 \('a'\), column embedding_1 is not fin"),
        (np.array([[np.inf]]), [0], ["a"], "not finite"),
        (np.zeros((1, 1)), [1.5], ["a"], r"labels\[0\]=1.5 is a float"),
        (np.zeros((1, 1)), [True], ["a"], "must be integers"),
        (np.zeros((2, 1)), [0, 1], ["a", "a"], r"duplicate filename 'a' \(filenames\[0\] and"),
        (np.zeros((1, 1)), [0], ["a\nb"], "contains a line feed"),
        (np.array([["x"]]), [0], ["a"], "real numbers"),
        (np.array([[1e39]]), [0], ["a"], "beyond the float32 range"),
    ],
)
def test_save_rejects_bad_input_and_keeps_existing_file(
    tmp_path: Path, embeddings: np.ndarray, labels: list[int], names: list[str], message: str
) -> None:
    path = tmp_path / "e.csv"
    path.write_text("previous content")
    with pytest.raises(DataError, match=message):
        save_embeddings(path, embeddings, labels, names)
    assert path.read_text() == "previous content"
    assert [p.name for p in tmp_path.iterdir()] == ["e.csv"]


def test_check_filenames() -> None:
    check_filenames(["a.png", "with, comma.png", 'with "quotes".jpg', " spaced ", "ü/ß.png"])
    for bad, reason in [
        ("", "is empty"),
        ("a\nb", "line feed"),
        ("a\rb", "carriage return"),
        ("a\x00b", "NUL"),
        (3, "is a int"),
    ]:
        with pytest.raises(DataError, match=reason):
            check_filenames(["ok.png", bad])  # type: ignore[list-item]  # bad types on purpose


def test_check_embeddings_removes_additional_columns(tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text('filenames,embedding_0,labels,meta\na.png,1.0,2,"x,y"\nb.png,3,4,z\n')
    check_embeddings(path)  # the header is valid; the extra column is only reported by load
    with pytest.raises(DataError, match=r"line 2: 4 columns, expected 3.*remove_additional"):
        load_embeddings(path)
    check_embeddings(path, remove_additional_columns=True)
    embeddings, labels, names = load_embeddings(path)
    np.testing.assert_array_equal(embeddings, np.array([[1.0], [3.0]], np.float32))
    assert labels == [2, 4]
    assert names == ["a.png", "b.png"]


def test_check_embeddings_rejects_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("filenames,emb_0,labels\n")
    with pytest.raises(DataError, match="no embedding_"):
        check_embeddings(path)
