"""Whose records an outbox holds: the server's folder name, the token fingerprint, the claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionloop.edge.identity import OutboxOwner, server_slug, token_fingerprint
from visionloop.edge.outbox import Outbox, OutboxOwnerError


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1-8000"),
        ("http://127.0.0.1:8000/", "127.0.0.1-8000"),
        ("https://127.0.0.1:8000", "127.0.0.1-8000"),
        ("https://vl.example.com", "vl.example.com"),
        ("https://vl.example.com/plant-2/", "vl.example.com-plant-2"),
        ("http://[::1]:9000", "1-9000"),
        ("localhost:8000", "localhost-8000"),
    ],
    ids=["plain", "slash", "scheme", "no-port", "prefix", "ipv6", "no-scheme"],
)
def test_server_slug(url: str, slug: str) -> None:
    assert server_slug(url) == slug


def test_fingerprint_tells_tokens_apart_and_hides_them() -> None:
    a, b = token_fingerprint("vld_aaaa"), token_fingerprint("vld_aaab")
    assert a != b and len(a) == len(b) == 16
    assert "aaaa" not in a
    assert token_fingerprint("vld_aaaa") == a


def test_an_outbox_keeps_its_first_owner(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    legacy = Outbox(path)  # from before owners were kept: claimed by the first owned open
    legacy.put_json("r1", "{}")
    legacy.close()
    cam1 = OutboxOwner.of("http://srv:8000", "token-1")
    with Outbox(path, owner=cam1) as outbox:
        assert outbox.backlog().records == 1
    with Outbox(path, owner=OutboxOwner.of("http://srv:8000/", "token-1")) as outbox:
        assert outbox.backlog().records == 1  # the same server, written another way
    with pytest.raises(OutboxOwnerError, match="holds the records of another device"):
        Outbox(path, owner=OutboxOwner.of("http://srv:8000", "token-2"))
    with pytest.raises(OutboxOwnerError):
        Outbox(path, owner=OutboxOwner.of("http://other:8000", "token-1"))
    assert cam1.folder(tmp_path) == tmp_path / "srv-8000" / token_fingerprint("token-1")
