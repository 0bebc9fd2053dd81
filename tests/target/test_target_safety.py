"""The embedded target is safe to leave running: loopback, hashed passwords, random tokens."""

from __future__ import annotations

import sqlite3

from conftest import EsmeClient

from esmeperf.target.cli import get_parser


def test_binds_loopback_by_default(target):
    assert get_parser().parse_args([]).host == "127.0.0.1"
    for key in ("messenger_ws_url", "organizer_api_url", "participant_api_url"):
        assert "//127.0.0.1:" in target.config[key]


def test_passwords_are_salted_hashes_and_tokens_random(tmp_path, target_factory):
    db = tmp_path / "esme.db"
    target = target_factory("--db", str(db))
    client = EsmeClient(target.config)
    try:
        tokens = {client.sign_up(f"same-{n}@example.com")[1] for n in range(2)}
        tokens.add(client.organizer_token())
    finally:
        client.close()
    target.stop()
    assert len(tokens) == 3
    for token in tokens:
        prefix, _, secret = token.partition(":")
        assert prefix in ("participant", "organizer") and len(secret) >= 32
    with sqlite3.connect(db) as conn:
        stored = [row[0] for row in conn.execute(
            "SELECT password FROM participants UNION ALL SELECT password FROM organizers")]
    assert len(stored) == 3
    assert all(p.startswith("pbkdf2_sha256$") for p in stored)
    assert "performance" not in "".join(stored)
    assert target.config["organizer_password"] not in "".join(stored)
    assert len({p.split("$")[2] for p in stored}) == 3  # a salt per password
