"""Source readers: sample files by manifest ``source``, never outside the input root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]  # no stubs
from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]  # no stubs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsup.web.sources import (
    FsspecSourceReader,
    LocalSourceReader,
    SourceReader,
    check_relative_path,
)

BAD_PATHS = [
    "",
    "../secret.txt",
    "a/../../secret.txt",
    "a/..",
    "./a.png",
    "a/./b.png",
    "/etc/passwd",
    "//etc/passwd",
    "a//b.png",
    "a/",
    "a\\..\\..\\secret.txt",
    "..\\secret.txt",
    "a\x00.png",
    ".hidden.png",
    "a/.selfsup/state.json",
    ".selfsup/web/x.jpg",
]


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """An input root with images, hidden files and links; a secret file beside it."""
    root = tmp_path / "input"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "a.png").write_bytes(b"cat-a")
    (root / ".hidden.png").write_bytes(b"hidden")
    (root / "a").mkdir()
    (root / "a" / ".selfsup").mkdir()
    (root / "a" / ".selfsup" / "state.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "b.png").write_bytes(b"linked-b")
    os.symlink(outside, root / "linked_dir")
    os.symlink(outside / "b.png", root / "cats" / "linked_file.png")
    return root, secret


def test_check_relative_path_returns_the_parts() -> None:
    assert check_relative_path("plots/scatter_pca.png") == ("plots", "scatter_pca.png")
    assert check_relative_path("a b/ü.png") == ("a b", "ü.png")


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_bad_spellings_are_refused(bad: str) -> None:
    with pytest.raises(FileNotFoundError):
        check_relative_path(bad)


def test_local_reader_reads_inside_the_root(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    reader = LocalSourceReader(root)
    assert isinstance(reader, SourceReader)
    assert reader.read_bytes("cats/a.png") == b"cat-a"
    assert reader.local_path("cats/a.png") == root.resolve() / "cats" / "a.png"


@pytest.mark.parametrize("bad", [*BAD_PATHS, "cats", "cats/missing.png", "../secret.txt"])
def test_local_reader_refuses(layout: tuple[Path, Path], bad: str) -> None:
    root, _ = layout
    reader = LocalSourceReader(root)
    with pytest.raises(FileNotFoundError):
        reader.read_bytes(bad)
    with pytest.raises(FileNotFoundError):
        reader.local_path(bad)


def test_local_reader_links(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    # A linked folder is outside the root: the scan never descends into one either.
    with pytest.raises(FileNotFoundError, match="outside"):
        LocalSourceReader(root).read_bytes("linked_dir/b.png")
    # A linked file is a sample (the scan follows links to files) ...
    assert LocalSourceReader(root).read_bytes("cats/linked_file.png") == b"linked-b"
    # ... unless links leaving the root are refused.
    strict = LocalSourceReader(root, allow_file_links=False)
    with pytest.raises(FileNotFoundError, match="outside"):
        strict.read_bytes("cats/linked_file.png")
    assert strict.read_bytes("cats/a.png") == b"cat-a"


def test_local_reader_checks_every_files_real_path_against_the_allowed_roots(
    layout: tuple[Path, Path],
) -> None:
    root, secret = layout
    os.symlink(secret, root / "cats" / "to_secret.png")
    roots: list[Path] = [root]
    reader = LocalSourceReader(root, allowed_roots=lambda: roots)
    assert reader.read_bytes("cats/a.png") == b"cat-a"
    for source in ("cats/to_secret.png", "cats/linked_file.png"):
        with pytest.raises(FileNotFoundError, match="outside the allowed roots") as info:
            reader.local_path(source)
        assert str(secret) not in str(info.value)  # the target stays unnamed
    roots.append(root.parent / "elsewhere")  # asked for at every read
    assert reader.read_bytes("cats/linked_file.png") == b"linked-b"
    # The checked real path is what is opened, not the link.
    assert reader.local_path("cats/linked_file.png") == (root.parent / "elsewhere" / "b.png")
    roots.clear()
    with pytest.raises(FileNotFoundError, match="outside the allowed roots"):
        reader.read_bytes("cats/a.png")


def test_local_reader_with_a_missing_root(tmp_path: Path) -> None:
    reader = LocalSourceReader(tmp_path / "gone")  # constructing must not fail
    with pytest.raises(FileNotFoundError, match="gone"):
        reader.read_bytes("a.png")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "",
                "cats",
                "a.png",
                "a",
                ".selfsup",
                "\\",
                "\x00",
                "/",
                "linked_dir",
                "b.png",
                "secret.txt",
                "state.json",
            ]
        ),
        min_size=1,
        max_size=6,
    ).map("/".join)
    | st.text(alphabet="./\\\x00acts", max_size=12)
)
def test_local_reader_never_reads_outside(layout: tuple[Path, Path], source: str) -> None:
    root, secret = layout
    reader = LocalSourceReader(root, allow_file_links=False)
    try:
        path = reader.local_path(source)
    except FileNotFoundError:
        return
    resolved = path.resolve()
    assert resolved.is_relative_to(root.resolve())
    assert not any(p.startswith(".") for p in resolved.relative_to(root.resolve()).parts)
    assert reader.read_bytes(source) != secret.read_bytes()


def test_fsspec_reader_memory_filesystem() -> None:
    fs = MemoryFileSystem()
    fs.pipe_file("/bucket/data/cats/a.png", b"cat-a")
    fs.pipe_file("/bucket/secret.txt", b"secret")
    reader = FsspecSourceReader(fs, "/bucket/data/")
    assert isinstance(reader, SourceReader)
    assert reader.read_bytes("cats/a.png") == b"cat-a"
    assert reader.local_path("cats/a.png") is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reader.read_bytes("cats/missing.png")
    for bad in ("../secret.txt", "/bucket/secret.txt", "cats/../../secret.txt", ".x/a.png"):
        with pytest.raises(FileNotFoundError):
            reader.read_bytes(bad)
        with pytest.raises(FileNotFoundError):
            reader.local_path(bad)


def test_fsspec_reader_local_filesystem(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    reader = FsspecSourceReader(LocalFileSystem(), str(root))
    assert reader.read_bytes("cats/a.png") == b"cat-a"
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("cats")  # a folder is no file
    with pytest.raises(FileNotFoundError):
        reader.read_bytes("../secret.txt")
