#!/usr/bin/env python3
"""Measure how many send_message frames/s one target process sustains (stored + fanned out).

Starts the target as a child process (launcher.TargetProcess), signs up N participants with chat
requests, lets one organizer start all chats, then drives send_message from raw-socket client
processes as fast as the target accepts them. The organizer and every participant read (and
discard) everything, so each inbound frame is echoed to its sender and delivered to the
organizer. Figures come from the target's /stats deltas over the measured window.

    python bench/target_throughput.py [--participants 500] [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import struct
import sys
import time
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from esmeperf.target.launcher import TargetProcess  # noqa: E402

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def client_frame(obj: Any) -> bytes:
    """A masked client text frame with an all-zero mask key (the payload stays as is)."""
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    n = len(data)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return header + b"\0\0\0\0" + data


class Drain(asyncio.Protocol):
    """A WebSocket client connection that counts its echoes and keeps `window` frames in flight.

    Self-clocking (closed loop): every echo received lets one more frame go out, so the target
    runs flat out without the client burying it under megabytes of queued input.
    """

    MARK = b'"user_message"'

    def __init__(self) -> None:
        self.upgraded = asyncio.get_running_loop().create_future()
        self.head = b""
        self.tail = b""
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.frame = b""
        self.window = 0
        self.sent = 0
        self.echoes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, frame: bytes, window: int) -> None:
        self.frame, self.window = frame, window
        self._top_up()

    def _top_up(self) -> None:
        room = self.window - (self.sent - self.echoes)
        if room > 0 and self.frame and self.transport is not None and not self.lost:
            self.transport.write(self.frame * room)
            self.sent += room

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            if b"\r\n\r\n" in self.head:
                if self.head.startswith(b"HTTP/1.1 101"):
                    self.upgraded.set_result(True)
                else:
                    self.upgraded.set_exception(RuntimeError(self.head[:80].decode()))
            return
        # The tail is shorter than the marker, so no marker is counted twice across chunks.
        self.echoes += (self.tail + data).count(self.MARK)
        self.tail = data[-(len(self.MARK) - 1):]
        self._top_up()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during handshake"))


async def open_ws(host: str, port: int, token: str) -> Drain:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Drain, host, port)
    assert proto.transport is not None
    proto.transport.write(
        f"GET /connect HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode())
    await asyncio.wait_for(proto.upgraded, 30)
    proto.transport.write(client_frame({"Authorization": "Bearer " + token}))
    return proto


async def drive(ws_url: str, jobs: list[tuple[str, str]], seconds: float, window: int) -> None:
    """Connect the given (token, chat id) participants and keep `window` frames in flight each."""
    host, port = ws_url[len("ws://"):].rsplit(":", 1)
    conns = [await open_ws(host, int(port), token) for token, _ in jobs]
    for conn, (_, chat_id) in zip(conns, jobs, strict=True):
        if not chat_id:
            continue  # the organizer only drains
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("sockname")
        text = f"connection {sock[0]}:{sock[1]}: message number 1"
        conn.start(client_frame({"type": "send_message",
                                 "payload": {"chatId": chat_id, "message": text}}), window)
    await asyncio.sleep(seconds)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()


def client_process(ws_url: str, jobs: list[tuple[str, str]], seconds: float, window: int) -> None:
    asyncio.run(drive(ws_url, jobs, seconds, window))


async def setup(cfg: dict[str, Any], n: int) -> tuple[list[tuple[str, str]], str]:
    """Sign up n participants with chat requests; start all chats; return (token, chat id)."""
    async with aiohttp.ClientSession() as http:
        async def sign_up(i: int) -> tuple[int, str]:
            body = {"email": f"bench{i}@example.com", "password": "performance",
                    "confirmPassword": "performance", "phoneNumber": "+48100200300"}
            async with http.post(cfg["participant_api_url"] + "/auth/sign-up", json=body) as r:
                assert r.status == 201, await r.text()
                data = await r.json()
            headers = {"Authorization": "Bearer " + data["token"]}
            async with http.post(cfg["participant_api_url"] + "/chat-requests", headers=headers,
                                 json={"eventId": 1, "description": ""}) as r:
                assert r.status == 200, await r.text()
            return data["user"]["id"], data["token"]

        sem = asyncio.Semaphore(20)

        async def limited(i: int) -> tuple[int, str]:
            async with sem:
                return await sign_up(i)

        users = await asyncio.gather(*(limited(i) for i in range(n)))
        async with http.post(cfg["organizer_api_url"] + "/auth/sign-in",
                             json={"email": cfg["organizer_email"],
                                   "password": cfg["organizer_password"]}) as r:
            org_token = (await r.json())["token"]
        chat_of: dict[int, str] = {}
        async with http.ws_connect(cfg["messenger_ws_url"] + "/connect") as ws:
            await ws.send_json({"Authorization": "Bearer " + org_token})
            for _ in range(n):
                await ws.send_json({"type": "start_chat", "payload": ""})
            while len(chat_of) < n:
                frame = await ws.receive_json(timeout=30)
                if frame["type"] == "new_chat":
                    chat_of[frame["payload"]["participantId"]] = frame["payload"]["id"]
    return [(token, chat_of[uid]) for uid, token in users], org_token


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(args: argparse.Namespace) -> dict[str, float]:
    with TargetProcess(*args.target_args, ready_timeout=30, log_path=args.log) as target:
        cfg = target.config
        jobs, org_token = asyncio.run(setup(cfg, args.participants))

        ctx = multiprocessing.get_context("spawn")
        procs = []
        # the organizer reads everything on a raw connection of its own (it only drains)
        procs.append(ctx.Process(target=client_process,
                                 args=(cfg["messenger_ws_url"], [(org_token, "")],
                                       args.seconds + 60, 0)))
        for k in range(args.clients):
            procs.append(ctx.Process(target=client_process,
                                     args=(cfg["messenger_ws_url"], jobs[k::args.clients],
                                           args.seconds + 60, args.window)))
        for p in procs:
            p.start()
        time.sleep(3)  # bench only: let connections and the send rate settle before measuring
        assert target.pid is not None
        s0, t0, c0 = target.stats(), time.monotonic(), cpu_seconds(target.pid)
        time.sleep(args.seconds)
        s1, t1, c1 = target.stats(), time.monotonic(), cpu_seconds(target.pid)
        for p in procs:  # they would run on for a minute: end them now the window is over
            p.terminate()
            p.join(30)
        dt = t1 - t0
        return {
            "inbound_per_s": (s1["participant_messages_stored"]
                              - s0["participant_messages_stored"]) / dt,
            "frames_received_per_s": (s1["frames_received"] - s0["frames_received"]) / dt,
            "delivered_per_s": (s1["frames_delivered"] - s0["frames_delivered"]) / dt,
            "dropped": s1["frames_dropped"] - s0["frames_dropped"],
            "p99_us": s1["handling_us"]["p99"],
            "p50_us": s1["handling_us"]["p50"],
            "connections": s1["connections_open"],
            "target_cpu_pct": 100 * (c1 - c0) / dt,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2,
                        help="participant client processes (default: %(default)s)")
    parser.add_argument("--window", type=int, default=4,
                        help="unechoed frames each participant keeps in flight")
    parser.add_argument("--log", help="keep the target's stderr in this file")
    parser.add_argument("target_args", nargs="*", help="extra target CLI arguments (after --)")
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        r = one_run(args)
        results.append(r)
        print(f"run {run + 1}: " + ", ".join(f"{k}={v:,.0f}" for k, v in r.items()), flush=True)
    print(f"median of {len(results)} runs:")
    for key in results[0]:
        print(f"  {key}: {statistics.median(r[key] for r in results):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
