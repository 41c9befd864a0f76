"""Access logs without secrets: ``token=`` values in logged URLs are replaced by ``<hidden>``.

``selfsup view`` logs in through ``/?token=...`` (the URL it prints), and uvicorn's access log
writes every request line at ``--log-level info``: without this filter the login token ended
up in the log. The server never takes tokens from URLs, but a client may still send one, so
``selfsup serve`` scrubs its access log the same way.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

#: ``token=`` (also ``access_token=``, ``api_token=``) in a query string, up to the next
#: separator; what it stands for never reaches the log.
_TOKEN_VALUE = re.compile(r"(?i)((?:^|[?&;])[a-z_]*token=)[^&;#\s\"]*")
HIDDEN = "<hidden>"


def scrub(text: str) -> str:
    """``text`` with every ``token=...`` query value replaced by ``<hidden>``."""
    return _TOKEN_VALUE.sub(rf"\1{HIDDEN}", text)


class ScrubTokens(logging.Filter):
    """A logging filter that scrubs ``token=`` values from a record's message and arguments
    (uvicorn passes the request path as an argument of the access-log record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: scrub(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config with :class:`ScrubTokens` on its access-log handler
    (pass as ``uvicorn.Config(log_config=...)``); set on the handler, it holds whatever
    other loggers uvicorn's config touches."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["scrub_tokens"] = {"()": f"{__name__}.ScrubTokens"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("scrub_tokens")
    return config
