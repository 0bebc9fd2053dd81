"""--rest-only: the arrivals' REST calls alone, for a target without its messenger (issue 32)."""

from __future__ import annotations

from helpers import load_results, run_main, write_config


def test_rest_only_files_every_chat_request_and_opens_no_websocket(tmp_path, target, capsys):
    # Nothing listens at the messenger URL: a run that touched it would fail its pre-flight.
    config = write_config(tmp_path, target.config, messenger_ws_url="ws://127.0.0.1:9/none")
    status = run_main(tmp_path, config, "--rest-only", "-cpi", "50", "--duration", "2s",
                      "--no-plot", "--no-report")
    out = capsys.readouterr().out
    assert status == 0, out
    summary, _ = load_results(tmp_path / "out")
    created = summary["created_participants_count"]
    assert 30 <= created <= 41, created  # 2 s at 20 arrivals/s, the first at 0 s
    assert summary["settings"]["rest_only"] is True
    assert (summary["chats_count"], summary["messages_sent"]) == (0, 0)
    latency = summary["latency"]
    assert latency["sign_up"]["count"] >= created and latency["chat_request"]["count"] == created
    stats = target.stats()
    # Every chat request the run counts reached the target, and no chat was started.
    assert stats["chat_requests_total"] == stats["chat_requests_queued"] == created
    # (one signed up as the duration ended may file no chat request: sign-ups can be one more)
    assert stats["participants"] == latency["sign_up"]["count"] and stats["chats"] == 0
    assert stats["connections_total"] == 0
    assert out.startswith("esmeperf: REST only, cpi 50 ms: ended by duration, exit status 0")
    assert f"{created} created, each with its chat request filed" in out
