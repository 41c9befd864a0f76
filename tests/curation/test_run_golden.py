"""Every output file of a small curation run, compared with a recorded run.

The curation half is being restructured (manifest-backed datasets, a run-folder module, typed
selection config, one embedding-math module); none of that may change what a run writes. This
test runs two small curations on inputs it writes byte for byte (uncompressed PPM images with
fixed modification times, precomputed embeddings, so no compression library, clock or model
enters the outputs) and compares every file of the run folder with
``golden/run_outputs.json``, recorded by the code from before the restructuring:

    PYTHONPATH=<old checkout>/src python tests/curation/test_run_golden.py --record

What is compared:

- the set of files written;
- every text file, byte for byte, after replacing the run's temporary folder by ``<TMP>`` and
  dropping the values that change from run to run (clock times, durations, the folder name) and
  the report's format version (which may be raised);
- every PNG plot byte for byte when matplotlib and numpy are the versions the record was made
  with (other versions draw other pixels);
- ``report.pdf`` only for existence: it prints the run's clock times.

Floats: the numbers come from numpy's BLAS, whose kernels depend on the CPU (its model and its
vector instructions: the same "AMD EPYC" with and without AVX-512 sums in another order). On a
CPU other than the recorded one a float may differ in its last printed digit; there (and only
there) a CSV cell differing by at most one unit in its last digit is accepted, and in other text
files (``report.json`` prints floats with all 17 digits) a line whose floats agree to a relative
1e-9, everything else in it equal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "run_outputs.json"
FIXED_MTIME_NS = 1_700_000_000_000_000_000

#: report.json keys (under "job") that hold clock times or the folder's name.
_VOLATILE_JOB_KEYS = ("started_at", "finished_at", "duration_s", "step_durations_s", "run_name")

#: The scenarios: name -> extra ``key=value`` overrides of the run.
SCENARIOS: dict[str, list[str]] = {
    "default": ["stopping_condition.n_samples=8"],
    "strategies": [
        "selection_config={n_samples: 6, strategies: ["
        "{input: {type: EMBEDDINGS}, strategy: {type: DIVERSITY}},"
        "{input: {type: METADATA, key: lightly.sharpness}, strategy: {type: WEIGHTS}},"
        "{input: {type: METADATA, key: lightly.brightness}, "
        "strategy: {type: THRESHOLD, threshold: 60.0, operation: BIGGER}}]}",
    ],
}


def _cpu() -> str:
    """The CPU's model name, with " (AVX-512)" where it has AVX-512 (numpy's kernels then
    differ; the record was made without)."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), "")
    flags = next((x.split(":", 1)[1].split() for x in info if x.startswith("flags")), [])
    return (name or platform.machine()) + (" (AVX-512)" if "avx512f" in flags else "")


def _environment() -> dict[str, str]:
    import matplotlib

    return {"matplotlib": matplotlib.__version__, "numpy": np.__version__, "cpu": _cpu()}


def write_inputs(root: Path) -> Path:
    """Write the input folder: 3 classes x 9 PPM images, one exact copy, one corrupt file.

    PPM is written here byte by byte (no encoder library), and every file gets the same
    modification time, so the manifest's hashes, sizes and times are the same on any machine.
    Returns the embeddings CSV path (one row per image, copy included).
    """
    rng = np.random.default_rng(0)
    images = root / "images"
    names: list[str] = []
    for c in range(3):
        (images / f"class_{c}").mkdir(parents=True)
        for i in range(9):
            pixels = rng.integers(0, 80 * (c + 1), size=(20, 24, 3), dtype=np.uint8)
            name = f"class_{c}/img_{i}.ppm"
            (images / name).write_bytes(b"P6\n24 20\n255\n" + pixels.tobytes())
            names.append(name)
    (images / "class_0" / "copy_of_img_0.ppm").write_bytes(
        (images / "class_0" / "img_0.ppm").read_bytes()
    )
    names.append("class_0/copy_of_img_0.ppm")
    (images / "class_1" / "broken.ppm").write_bytes(b"P6\n24 20\n255\n" + b"\x00" * 17)
    for path in images.rglob("*"):
        os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))

    from selfsup.utils.io import save_embeddings

    names.sort()
    centres = np.eye(8, dtype=np.float32)[:3] * 4
    emb = np.stack(
        [centres[int(n.split("/")[0][-1])] + rng.normal(size=8).astype(np.float32) for n in names]
    )
    path = root / "embeddings.csv"
    save_embeddings(path, emb.astype(np.float32), [0] * len(names), names)
    return path


def run_scenario(root: Path, name: str) -> Path:
    """Run scenario ``name`` on the inputs under ``root``; return its output folder."""
    from selfsup.config import RunConfig, resolve
    from selfsup.curation.pipeline import run

    out = root / f"out_{name}"
    overrides = [
        f"input_dir={root / 'images'}",
        f"output_dir={out}",
        f"embeddings={root / 'embeddings.csv'}",
        "num_workers=0",
        "umap=false",
        *SCENARIOS[name],
    ]
    run(resolve(RunConfig, overrides=overrides), progress=False)
    return out


def _normalise_text(path: Path, text: str, tmp: Path) -> str:
    text = text.replace(str(tmp), "<TMP>")
    if path.name == "report.json":
        report = json.loads(text)
        report.pop("version", None)
        for key in _VOLATILE_JOB_KEYS:
            report.get("job", {}).pop(key, None)
        return json.dumps(report, indent=1, sort_keys=True)
    return text


def snapshot(out: Path, tmp: Path) -> dict[str, Any]:
    """Every file under ``out``: normalised text for text files, a digest for binary ones."""
    files: dict[str, Any] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        data = path.read_bytes()
        if path.suffix == ".pdf":
            files[rel] = {"kind": "exists"}
        elif path.suffix == ".png":
            files[rel] = {"kind": "png", "sha256": hashlib.sha256(data).hexdigest()}
        else:
            text = _normalise_text(path, data.decode("utf-8", "surrogateescape"), tmp)
            files[rel] = {"kind": "text", "text": text}
    return files


_FLOAT = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?$", re.IGNORECASE)


def _last_digit_close(a: str, b: str) -> bool:
    """Whether two printed floats differ by at most one unit in the last printed digit."""
    if not (_FLOAT.match(a) and _FLOAT.match(b)):
        return False
    mantissa = a.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(a.lower().split("e")[1]) if "e" in a.lower() else 0
    unit = 10.0 ** (exponent - decimals)
    return abs(float(a) - float(b)) <= unit * 1.000001


_FLOAT_TOKEN = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?", re.IGNORECASE)


def _lines_close(expected: str, actual: str) -> list[str]:
    """Lines of two texts that differ other than in floats agreeing to a relative 1e-9."""
    lines_e, lines_a = expected.splitlines(), actual.splitlines()
    if len(lines_e) != len(lines_a):
        return [f"{len(lines_a)} lines, expected {len(lines_e)}"]
    bad: list[str] = []
    for i, (le, la) in enumerate(zip(lines_e, lines_a, strict=True)):
        if le == la:
            continue
        floats_e, floats_a = _FLOAT_TOKEN.findall(le), _FLOAT_TOKEN.findall(la)
        same_rest = _FLOAT_TOKEN.sub("#", le) == _FLOAT_TOKEN.sub("#", la)
        if not (
            same_rest
            and len(floats_e) == len(floats_a)
            and all(
                math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12)
                for x, y in zip(floats_e, floats_a, strict=True)
            )
        ):
            bad.append(f"line {i + 1}: {la[:300]!r}, expected {le[:300]!r}")
    return bad


def _csv_close(expected: str, actual: str) -> list[str]:
    """Cells of two CSV texts that differ by more than one unit in the last digit."""
    rows_e = list(csv.reader(io.StringIO(expected)))
    rows_a = list(csv.reader(io.StringIO(actual)))
    if len(rows_e) != len(rows_a):
        return [f"{len(rows_a)} rows, expected {len(rows_e)}"]
    bad: list[str] = []
    for i, (re_, ra) in enumerate(zip(rows_e, rows_a, strict=True)):
        if len(re_) != len(ra):
            bad.append(f"row {i}: {len(ra)} cells, expected {len(re_)}")
            continue
        for j, (ce, ca) in enumerate(zip(re_, ra, strict=True)):
            if ce != ca and not _last_digit_close(ce, ca):
                bad.append(f"row {i} col {j}: {ca!r}, expected {ce!r}")
    return bad


def compare(expected: dict[str, Any], actual: dict[str, Any], same_env: dict[str, bool]) -> None:
    """Fail with every difference between a recorded snapshot and this run's."""
    problems: list[str] = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"files no longer written: {missing}")
    if extra:
        problems.append(f"new files: {extra}")
    for rel in sorted(set(expected) & set(actual)):
        e, a = expected[rel], actual[rel]
        if e["kind"] != a["kind"]:
            problems.append(f"{rel}: {a['kind']}, expected {e['kind']}")
        elif e["kind"] == "png":
            if same_env["plots"] and e["sha256"] != a["sha256"]:
                problems.append(f"{rel}: the plot's pixels changed")
        elif e["kind"] == "text" and e["text"] != a["text"]:
            if not same_env["cpu"]:
                close = _csv_close if rel.endswith(".csv") else _lines_close
                bad = close(e["text"], a["text"])
                if bad:
                    what = "cells" if rel.endswith(".csv") else "lines"
                    problems.append(f"{rel}: {len(bad)} {what} differ, e.g. {bad[:3]}")
            else:
                lines_e, lines_a = e["text"].splitlines(), a["text"].splitlines()
                first = next(
                    (i for i, (x, y) in enumerate(zip(lines_e, lines_a, strict=False)) if x != y),
                    min(len(lines_e), len(lines_a)),
                )
                got = lines_a[first] if first < len(lines_a) else "<end of file>"
                want = lines_e[first] if first < len(lines_e) else "<end of file>"
                problems.append(f"{rel} line {first + 1}: {got[:300]!r}, expected {want[:300]!r}")
    assert not problems, "the run's outputs changed:\n" + "\n".join(problems)


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_run_outputs_match_the_recorded_run(tmp_path: Path, scenario: str) -> None:
    golden = _golden()
    env, recorded = _environment(), golden["environment"]
    write_inputs(tmp_path)
    out = run_scenario(tmp_path, scenario)
    same_env = {
        "plots": env["matplotlib"] == recorded["matplotlib"] and env["numpy"] == recorded["numpy"],
        "cpu": env["cpu"] == recorded["cpu"] and env["numpy"] == recorded["numpy"],
    }
    compare(golden["scenarios"][scenario], snapshot(out, tmp_path), same_env)


def test_the_comparison_catches_a_changed_cell() -> None:
    """The comparison itself: a changed cell, a dropped file and a new file each fail it."""
    base = {"a.csv": {"kind": "text", "text": "x,y\n1.2345,b\n"}}
    compare(base, base, {"plots": True, "cpu": True})
    changed = {"a.csv": {"kind": "text", "text": "x,y\n1.2346,b\n"}}
    with pytest.raises(AssertionError, match=r"a\.csv line 2"):
        compare(base, changed, {"plots": True, "cpu": True})
    # On another CPU one unit in the last digit passes, two do not.
    compare(base, changed, {"plots": True, "cpu": False})
    with pytest.raises(AssertionError, match="1 cells differ"):
        compare(
            base,
            {"a.csv": {"kind": "text", "text": "x,y\n1.2347,b\n"}},
            {"plots": True, "cpu": False},
        )
    # In other text (report.json's 17-digit floats) a relative 1e-9 passes on another CPU.
    report = {"r.json": {"kind": "text", "text": '{\n "rank": 6.875229407923337,\n "n": 2\n}'}}
    last_digits = {"r.json": {"kind": "text", "text": '{\n "rank": 6.875229407923339,\n "n": 2\n}'}}
    compare(report, last_digits, {"plots": True, "cpu": False})
    with pytest.raises(AssertionError, match=r"r\.json line 2"):
        compare(report, last_digits, {"plots": True, "cpu": True})
    for changed_text in (
        '{\n "rank": 6.875239407923337,\n "n": 2\n}',  # a real change of the float
        '{\n "rank": 6.875229407923337,\n "n": 3\n}',  # an integer
        '{\n "rnak": 6.875229407923337,\n "n": 2\n}',  # a key
    ):
        with pytest.raises(AssertionError, match="1 lines differ"):
            compare(
                report,
                {"r.json": {"kind": "text", "text": changed_text}},
                {"plots": True, "cpu": False},
            )
    with pytest.raises(AssertionError, match="new files"):
        compare(base, {**base, "b.txt": {"kind": "text", "text": ""}}, {"plots": True, "cpu": True})
    with pytest.raises(AssertionError, match="no longer written"):
        compare(base, {}, {"plots": True, "cpu": True})


def _record() -> None:
    import tempfile

    scenarios: dict[str, Any] = {}
    for name in sorted(SCENARIOS):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            write_inputs(tmp)
            scenarios[name] = snapshot(run_scenario(tmp, name), tmp)
    GOLDEN.parent.mkdir(exist_ok=True)
    record = {"environment": _environment(), "scenarios": scenarios}
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/curation/test_run_golden.py --record")
    _record()
