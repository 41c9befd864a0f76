"""The code blocks of seed 004 (creating a dataset, giving storage access, scheduling runs)
run against a live server after renaming ``lightly`` to ``selfsup``.

Blocks are read from the seed at test time. Substitutions, each of which must match:
the placeholder token becomes a real one (the server location comes from
``$SELFSUP_SERVER_LOCATION``), and the S3 block's missing comma after
``region='eu-central-1'`` (a syntax error in the seed) is added. The cloud credentials are
stored, not used: the test checks the server keeps them exactly and hands them only to a
worker.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from selfsup.server.models import Datasource
from selfsup.server.testing import ServerHarness

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

pytestmark = pytest.mark.skipif(
    not SEEDS.is_dir() and not os.environ.get("CI"), reason=f"seed documents not found at {SEEDS}"
)


def python_blocks(doc_prefix: str) -> list[str]:
    """The python code blocks of the seed whose file name starts with ``doc_prefix``."""
    (path,) = SEEDS.glob(f"{doc_prefix}_*.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)\.\. (code-block|code)::\s*python\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        body: list[str] = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            if not lines[i].strip().startswith(":caption:"):
                body.append(lines[i])
            i += 1
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def renamed(code: str, substitutions: dict[str, str] | None = None) -> str:
    """``lightly`` -> ``selfsup`` plus explicit substitutions that must all match."""
    out = code.replace("lightly", "selfsup")
    for old, new in (substitutions or {}).items():
        assert old in out, f"seed block changed: {old!r} not found in\n{out}"
        out = out.replace(old, new)
    return out


def _stored_datasources(harness: ServerHarness) -> dict[str, tuple[str, str, dict[str, Any]]]:
    with harness.app.state.sessions() as session:
        rows = session.scalars(select(Datasource)).all()
        return {r.purpose: (r.type, r.full_path, r.credentials.reveal()) for r in rows}


def test_seed_004_dataset_storage_and_scheduling_blocks(
    harness: ServerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks("004")
    assert len(blocks) == 8, "seed 004 changed: expected 8 python blocks"
    create, gcs, s3, azure, *schedules = blocks
    token = harness.token("alice")
    monkeypatch.chdir(tmp_path)
    read_key = {"type": "service_account", "private_key": "READ-KEY"}
    write_key = {"type": "service_account", "private_key": "WRITE-KEY"}
    Path("credentials_read.json").write_text(json.dumps(read_key))
    Path("credentials_write.json").write_text(json.dumps(write_key))
    ns: dict[str, Any] = {}

    with harness.live() as live:
        monkeypatch.setenv("SELFSUP_SERVER_LOCATION", live.url)
        exec(renamed(create, {'token="MY_AWESOME_TOKEN"': f'token="{token}"'}), ns)
        dataset_id = ns["dataset_id"]
        assert len(dataset_id) == 24

        # The seed re-uses the client without setting dataset_id: as with lightly, the last
        # modified dataset is taken, with a warning.
        with pytest.warns(UserWarning, match="last modified dataset 'dataset-name'"):
            exec(renamed(gcs), ns)
        stored = _stored_datasources(harness)
        assert stored["INPUT"] == (
            "GCS",
            "gs://bucket/input/",
            {"gcs_credentials": json.dumps(read_key)},
        )
        assert stored["LIGHTLY"] == (
            "GCS",
            "gs://bucket/output/",
            {"gcs_credentials": json.dumps(write_key)},
        )

        exec(renamed(s3, {"region='eu-central-1'\n": "region='eu-central-1',\n"}), ns)
        stored = _stored_datasources(harness)
        assert stored["INPUT"][:2] == ("S3", "s3://bucket/input/")
        assert stored["INPUT"][2] == {
            "s3_access_key_id": "S3-ACCESS-KEY",
            "s3_secret_access_key": "S3-SECRET-ACCESS-KEY",
        }

        exec(renamed(azure), ns)
        stored = _stored_datasources(harness)
        assert stored == {
            "INPUT": ("AZURE", "my-container/input/", {"account_key": "SAS-TOKEN"}),
            "LIGHTLY": ("AZURE", "my-container/output/", {"account_key": "SAS-TOKEN"}),
        }

        for block in schedules:
            exec(renamed(block), ns)

        client = ns["client"]
        scheduled = client.get_scheduled_compute_worker_runs()
        assert len(scheduled) == 4
        assert {s.state for s in scheduled} == {"OPEN"}
        assert {s.priority for s in scheduled} == {"MID"}
        assert [s.worker_config["enable_training"] for s in scheduled] == [False, True, True, False]
        assert scheduled[0].worker_config["stopping_condition"] == {
            "n_samples": 0.1,
            "min_distance": -1,
        }
        assert scheduled[2].lightly_config["collate"]["cj_hue"] == 0.2
        assert scheduled[2].lightly_config["trainer"]["max_epochs"] == 100
        assert scheduled[3].worker_config["relevant_filenames_file"] == (
            ".selfsup/relevant_filenames.txt"
        )
        # Users never see the credentials; the worker holding a run gets them.
        texts = [repr(client.get_datasources()), repr(scheduled)]
        assert not any("SAS-TOKEN" in t or "S3-SECRET" in t or "READ-KEY" in t for t in texts)
        from selfsup.api import WorkerApiClient

        worker = WorkerApiClient(token=token, base_url=live.url)
        worker_id = worker.register("seed-worker").id
        claim = worker.claim(worker_id)
        assert claim is not None
        assert claim.scheduled_run.id == scheduled[0].id  # same priority: first come first
        job = worker.get_job(worker_id, claim.run.id)
        assert {d.purpose: d.credentials for d in job.datasources} == {
            "INPUT": {"account_key": "SAS-TOKEN"},
            "LIGHTLY": {"account_key": "SAS-TOKEN"},
        }
        worker.close()
        client.close()
