"""List endpoints answer one page at a time: ``limit``/``offset``, ``X-Total-Count`` and a
``Link: rel="next"`` header while more is left; bad numbers are 422 naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from selfsup.server.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from selfsup.server.testing import ServerHarness


def _follow(server: ServerHarness, headers: dict[str, str], url: str) -> list[list[str]]:
    """Ids page by page, following Link: rel=next from ``url``."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        r = server.http.get(next_url, headers=headers)
        assert r.status_code == 200, r.text
        pages.append([item["id"] for item in r.json()])
        next_url = r.links.get("next", {}).get("url")
        assert len(pages) < 100, "the pages never end"
    return pages


def _flat(pages: list[list[str]]) -> list[str]:
    return [item for items in pages for item in items]


def test_every_list_is_paged_and_links_to_its_next_page(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")

    def later(made: str) -> str:
        server.clock.advance(0.01)  # lists are ordered by creation time (then by id)
        return made

    datasets = [later(alice.ready_dataset(f"ds{i}")) for i in range(5)]
    jobs = [alice.schedule(datasets[i % 2]) for i in range(7)]
    workers = [later(alice.worker(f"w{i}")) for i in range(3)]
    runs = []
    for worker_id in workers:
        claim = alice.claim(worker_id)
        assert claim is not None
        runs.append(later(claim["run"]["id"]))

    assert _follow(server, alice.h, "/v1/datasets?limit=2") == [
        datasets[0:2],
        datasets[2:4],
        datasets[4:],
    ]
    assert _flat(_follow(server, alice.h, "/v1/scheduled-runs?limit=3")) == jobs
    # The filters are kept in the next link.
    first_ds = [j for i, j in enumerate(jobs) if i % 2 == 0]
    url = f"/v1/scheduled-runs?dataset_id={datasets[0]}&limit=2"
    assert _follow(server, alice.h, url) == [first_ds[0:2], first_ds[2:4]]
    assert _flat(_follow(server, alice.h, "/v1/runs?limit=2")) == runs
    assert _flat(_follow(server, alice.h, "/v1/workers?limit=1")) == workers

    r = server.http.get("/v1/scheduled-runs?limit=3&offset=3", headers=alice.h)
    assert r.headers["x-total-count"] == "7"
    assert [s["id"] for s in r.json()] == jobs[3:6]
    last = server.http.get("/v1/scheduled-runs?offset=6", headers=alice.h)
    assert [s["id"] for s in last.json()] == jobs[6:]
    assert "link" not in last.headers
    past = server.http.get("/v1/scheduled-runs?offset=70", headers=alice.h)
    assert past.json() == []
    assert past.headers["x-total-count"] == "7"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_default_page_is_bounded(server: ServerHarness, make_actor: Callable[..., Any]) -> None:
    alice = make_actor("alice")
    for i in range(DEFAULT_PAGE_SIZE + 1):
        alice.dataset(f"d{i}")
    r = server.http.get("/v1/datasets", headers=alice.h)
    assert len(r.json()) == DEFAULT_PAGE_SIZE
    assert r.headers["x-total-count"] == str(DEFAULT_PAGE_SIZE + 1)
    assert f"offset={DEFAULT_PAGE_SIZE}" in r.links["next"]["url"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("query", "name", "bound"),
    [
        ("limit=0", "limit", "1"),
        (f"limit={MAX_PAGE_SIZE + 1}", "limit", str(MAX_PAGE_SIZE)),
        ("limit=ten", "limit", "integer"),
        ("offset=-1", "offset", "0"),
        ("offset=1e30", "offset", "integer"),
        ("offset=" + "9" * 40, "offset", str(2**53)),
    ],
)
def test_bad_page_numbers_are_422_naming_the_parameter(
    server: ServerHarness, make_actor: Callable[..., Any], query: str, name: str, bound: str
) -> None:
    alice = make_actor("alice")
    for path in ("/v1/datasets", "/v1/scheduled-runs", "/v1/runs", "/v1/workers"):
        r = server.http.get(f"{path}?{query}", headers=alice.h)
        assert r.status_code == 422, (path, r.text)
        assert f"query.{name}" in r.json()["error"]
        assert bound in r.json()["error"]
