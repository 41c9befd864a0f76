"""Paged list endpoints: ``?limit=`` and ``?offset=``, the total and the next page in headers.

Lists grow without bound (500 scheduled runs with their resolved configs made a 750 KB
answer), so every list endpoint answers one page: ``limit`` items (default
:data:`DEFAULT_PAGE_SIZE`, at most :data:`MAX_PAGE_SIZE`) from ``offset`` on, in the
endpoint's fixed order (oldest first). The body stays a JSON array, as before; the headers
say what is left:

* ``X-Total-Count``: the number of items over all pages;
* ``Link: </v1/...?offset=N&limit=L>; rel="next"`` while there are more (the same filters
  kept), absent on the last page. httpx exposes it as ``response.links["next"]["url"]``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**53

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"items per page, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})",
    ),
]
Offset = Annotated[
    int,
    Query(ge=0, le=MAX_OFFSET, description="items to skip (follow the Link: rel=next header)"),
]

T = TypeVar("T")


def page(
    session: Session,
    query: Select[T],
    limit: int,
    offset: int,
    request: Request,
    response: Response,
) -> list[T]:
    """The rows of ``query`` (already ordered) from ``offset``, at most ``limit`` of them;
    sets ``X-Total-Count`` and, unless this is the last page, ``Link: rel="next"``."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = list(session.scalars(query.limit(limit).offset(offset)))
    response.headers["X-Total-Count"] = str(total or 0)
    if offset + len(rows) < (total or 0) and rows:
        params: dict[str, Any] = dict(request.query_params)
        params.update(offset=offset + len(rows), limit=limit)
        response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    return rows
