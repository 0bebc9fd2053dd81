"""config.json validation and time spans: every problem is one line naming the key."""

import json

import pytest

from esmeperf.config import ConfigError, load_target, timespan

GOOD = {
    "event_id": 1,
    "messenger_ws_url": "ws://127.0.0.1:8300",
    "organizer_api_url": "http://127.0.0.1:8000",
    "organizer_email": "org@example.com",
    "organizer_password": "a-password-of-16-chars",
    "participant_api_url": "http://127.0.0.1:8100/",
}


def write(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_good_config_loads_without_exposing_the_password(tmp_path):
    target = load_target(write(tmp_path, GOOD))
    assert target.event_id == 1
    assert target.participant_api_url == "http://127.0.0.1:8100"  # trailing slash dropped
    assert target.organizers[0].email == "org@example.com"
    assert "a-password-of-16-chars" not in repr(target)
    assert "a-password-of-16-chars" not in json.dumps(target.public())


@pytest.mark.parametrize(("change", "words"), [
    ({"event_id": "1"}, "'event_id' must be an integer"),
    ({"event_id": True}, "'event_id' must be an integer"),
    ({"messenger_ws_url": "http://x:1"}, "'messenger_ws_url' must be a ws:// or wss:// URL"),
    ({"organizer_api_url": "ftp://x"}, "'organizer_api_url' must be a http:// or https:// URL"),
    ({"participant_api_url": 8100}, "'participant_api_url' must be a string"),
    ({"organizer_password": ""}, "'organizer_password' must be a non-empty string"),
    ({"organizers": {}}, "'organizers' must be a list"),
])
def test_bad_values_name_the_key(tmp_path, change, words):
    with pytest.raises(ConfigError, match=words) as info:
        load_target(write(tmp_path, {**GOOD, **change}))
    assert "\n" not in str(info.value)


def test_missing_key_is_named(tmp_path):
    data = dict(GOOD)
    del data["organizer_email"]
    with pytest.raises(ConfigError, match="missing key 'organizer_email'"):
        load_target(write(tmp_path, data))


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_target(write(tmp_path, "{nope"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_target(tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_target(write(tmp_path, "[1, 2]"))


def test_organizer_pool_from_config(tmp_path):
    # organizer_email may come again first in the list (as the embedded target writes it),
    # with its own password; with another one it is an error (tests/test_cli_errors.py).
    pool = [{"email": "org@example.com", "password": GOOD["organizer_password"]},
            {"email": "second@example.com", "password": "y" * 16}]
    target = load_target(write(tmp_path, {**GOOD, "organizers": pool}))
    assert [c.email for c in target.organizers] == ["org@example.com", "second@example.com"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1.5h", 5400), ("250ms", 0.25), ("12", 12)])
def test_timespan(text, seconds):
    assert timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0s", "-5s", "5 minutes", "abc", "1d"])
def test_timespan_rejects(text):
    with pytest.raises(ValueError, match="positive time span"):
        timespan(text)


def test_every_mistake_at_once_one_line_each(tmp_path):
    data = {**GOOD, "event_id": "1", "messenger_ws_url": "http://x:1",
            "organizers": [{"email": "second@example.com"}]}
    del data["organizer_password"]
    with pytest.raises(ConfigError) as info:
        load_target(write(tmp_path, data))
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'config.json'}: 4 problems:",
        "  missing key 'organizer_password'",
        "  key 'event_id' must be an integer, got \"1\"",
        "  key 'messenger_ws_url' must be a ws:// or wss:// URL, got 'http://x:1'",
        "  key 'organizers[0].password' must be a non-empty string"]


def test_a_trailing_comma_is_pointed_at(tmp_path):
    lines = json.dumps(GOOD, indent=2).splitlines()
    lines[-2] += ","  # after the last value, line 7 of 8
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_target(path)
    column = len(lines[-2])
    assert str(info.value).splitlines() == [
        f"{path}: invalid JSON at line 7, column {column}: a trailing comma before '}}' "
        "(JSON allows none)",
        f"  {lines[-2]}",
        "  " + " " * (column - 1) + "^"]


@pytest.mark.parametrize(("text", "where", "what", "caret"), [
    ('{"event_id": 1\n  "x": 2}', "line 1, column 15",
     "expected ',' after this value (is a comma missing?)", ('  {"event_id": 1', 16)),
    ('[1,\n\t2,]', "line 2, column 3", "a trailing comma before ']' (JSON allows none)",
     ("          2,]", 11)),
    ("{'event_id': 1}", "line 1, column 2", "expecting property name enclosed in double quotes",
     ("  {'event_id': 1}", 3)),
])
def test_json_mistakes_with_the_line_quoted(tmp_path, text, where, what, caret):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_target(path)
    first, quoted, marker = str(info.value).splitlines()
    assert first == f"{path}: invalid JSON at {where}: {what}"
    assert quoted == caret[0] and marker == " " * caret[1] + "^"


def test_an_empty_file_or_one_not_utf8(tmp_path):
    with pytest.raises(ConfigError, match=r"empty file, expected a JSON object$"):
        load_target(write(tmp_path, " \n"))
    path = tmp_path / "latin1.json"
    path.write_bytes('{"organizer_email": "jos\u00e9@example.com"}'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 24\)$"):
        load_target(path)
