"""Log text is cut into pieces the server accepts: each at most the limit as sent (UTF-8 in
a JSON string), on line ends where possible, never inside a character, joined = the text."""

from __future__ import annotations

import json

import pytest

from selfsup.api.worker_client import LOG_PIECE_BYTES, log_pieces, sendable_log_text


def _sent_size(piece: str) -> int:
    # What httpx sends for {"text": piece}, less the envelope.
    return len(json.dumps(piece, ensure_ascii=False).encode("utf-8")) - 2


def test_a_short_text_is_one_piece_and_empty_text_none() -> None:
    assert log_pieces("one\ntwo\n") == ["one\ntwo\n"]
    assert log_pieces("") == []


def test_whole_lines_are_packed_up_to_the_limit() -> None:
    lines = [f"line {i:03d} {'x' * 20}\n" for i in range(100)]  # 30 bytes each
    pieces = log_pieces("".join(lines), limit=100)
    assert "".join(pieces) == "".join(lines)
    assert all(p.endswith("\n") for p in pieces)
    assert [len(p) for p in pieces] == [90] * 33 + [30]  # 3 lines each, none cut


@pytest.mark.parametrize("limit", [6, 7, 13, 64, 1000])
def test_long_lines_are_cut_between_characters(limit: int) -> None:
    text = "short\n" + '€😀é\x01"\\x' * 40 + "\nlast without newline"
    pieces = log_pieces(text, limit=limit)
    assert "".join(pieces) == text
    assert all(0 < _sent_size(p) <= limit for p in pieces)
    for piece in pieces:
        piece.encode("utf-8")  # every piece is whole characters
    # Controls and quotes count with their JSON escapes (\u0001 is 6 bytes).
    assert _sent_size("\x01") == 6


def test_the_default_piece_fits_the_servers_limits_many_times_over() -> None:
    text = ("ab€😀 " * 1000 + "\n") * 400  # about 4.4 MB of UTF-8
    pieces = log_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) > 4
    assert max(_sent_size(p) for p in pieces) <= LOG_PIECE_BYTES
    assert max(len(p) for p in pieces) < 1_000_000  # the server's cap in characters
    assert LOG_PIECE_BYTES * 4 <= 1024 * 1024  # the server's default body limit
    # The same limits as the server states them, so a change there fails here.
    from selfsup.apphelpers.limits import DEFAULT_MAX_BODY_BYTES
    from selfsup.openapi_generated.swagger_client.models import DockerRunLogAppendRequest

    text_field = DockerRunLogAppendRequest.model_fields["text"]
    cap = next(m.max_length for m in text_field.metadata if hasattr(m, "max_length"))
    assert max(len(p) for p in pieces) < cap
    assert LOG_PIECE_BYTES * 4 <= DEFAULT_MAX_BODY_BYTES


def test_a_limit_below_one_character_is_refused() -> None:
    with pytest.raises(ValueError, match="log piece limit must be >= 6 bytes, got 5"):
        log_pieces("x", limit=5)


def test_lone_surrogates_are_written_out_so_the_text_can_be_sent() -> None:
    # A file name byte that is not UTF-8 (surrogateescape) shows as \xNN, like the report.
    assert sendable_log_text("caf\udce9.png ok") == "caf\\xe9.png ok"
    assert sendable_log_text("odd \ud800 end") == "odd \\ud800 end"
    assert sendable_log_text("plain € 😀") == "plain € 😀"
    sendable_log_text("caf\udce9 \udfff").encode("utf-8")
