"""Slack load test: signed Events API messages against `csbot serve --http` on loopback.

    python benchmarks/load.py                          # paced 2,000 @ 100/s, then saturation @ concurrency 20
    python benchmarks/load.py --phase paced --events 400
    python benchmarks/load.py --model var/models/v0003 --seconds 20   # a quick smoke run

The bot runs as a real subprocess (`python -m bot.cli serve --http`) with a fresh data
directory holding a copy of the model (default: the active one in CSBOT_DATA_DIR),
and a fake Slack Web API served here with aiohttp. Each event is a DM in its own
thread, so every reply maps back to exactly one event.

- **paced**: events offered at a steady rate. Reports ack latency (HTTP response to
  the signed POST) and event-to-reply latency (POST sent -> chat.postMessage received).
- **saturation**: a fixed number of senders, no pacing. Reports events answered per second.

Both check that every event was answered exactly once and that SQLite holds one
message row per event. Exit status 1 if not. The load generator and the fake run in
this process and share the machine's cores with the bot, as they would on a 2-core
box; the bot also reports its own ack time (``csbot_ack_seconds``) in /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import OUT, ROOT, header
from slack_sdk.signature import SignatureVerifier

from bot.config import load_settings
from bot.knowledge import load_knowledge_base
from bot.store import Store
from models.registry import Registry

SECRET = "bench-signing-secret"
BOT_USER = "UBENCHBOT"


@dataclass
class Run:
    """What one phase observed."""

    name: str
    sent: dict[str, float] = field(default_factory=dict)  # thread key -> perf_counter when POSTed
    acks: list[float] = field(default_factory=list)  # seconds
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = 0.0
    finished_sending: float = 0.0


class FakeSlack:
    """The few Web API methods a customer conversation uses, recording reply times per thread."""

    def __init__(self) -> None:
        self.replies: dict[str, list[float]] = {}
        self.other: Counter[str] = Counter()
        self._ts = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        method = request.match_info["method"]
        body = await request.read()
        params: dict[str, Any] = dict(request.query)
        if body:
            params.update(json.loads(body) if "json" in request.content_type else dict(await request.post()))
        if method == "auth.test":
            return web.json_response({"ok": True, "user_id": BOT_USER, "bot_id": "BBENCH", "user": "csbot",
                                      "team_id": "TBENCH", "url": "https://bench.slack.com/"})
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        if method == "chat.postMessage" and params.get("channel", "").startswith("D"):
            self.replies.setdefault(f"{params['channel']}:{params.get('thread_ts')}", []).append(now)
        else:
            self.other[method] += 1
        if method == "chat.getPermalink":
            return web.json_response({"ok": True, "permalink": "https://bench.slack.com/archives/x/p1"})
        return web.json_response({"ok": True, "channel": params.get("channel"), "ts": ts,
                                  "message": {"ts": ts, "text": params.get("text", "")}})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signed(body: str, signer: SignatureVerifier) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signer.generate_signature(timestamp=stamp, body=body)}


def make_event(n: int, text: str, phase: str) -> tuple[str, str]:
    """(thread key, JSON body) of a DM shaped as Slack sends it."""
    channel, ts = f"D{phase[0].upper()}{n % 97:05d}", f"{1_700_000_000 + n}.{n % 1_000_000:06d}"
    event = {"type": "message", "channel": channel, "user": f"U{n % 500:06d}", "text": text, "ts": ts,
             "event_ts": ts, "channel_type": "im", "team": "TBENCH", "client_msg_id": f"{phase}-{n}"}
    body = {"token": "x", "team_id": "TBENCH", "api_app_id": "ABENCH", "event": event, "type": "event_callback",
            "event_id": f"Ev{phase}{n:08d}", "event_time": int(time.time()),
            "authorizations": [{"team_id": "TBENCH", "user_id": BOT_USER, "is_bot": True}]}
    return f"{channel}:{ts}", json.dumps(body)


async def send(session: aiohttp.ClientSession, url: str, key: str, body: str, run: Run,
               signer: SignatureVerifier) -> None:
    start = time.perf_counter()
    run.sent[key] = start
    try:
        async with session.post(url, data=body.encode(), headers=signed(body, signer)) as resp:
            await resp.read()
            run.statuses[resp.status] += 1
    except aiohttp.ClientError:
        run.statuses[0] += 1
    run.acks.append(time.perf_counter() - start)


async def paced(session: aiohttp.ClientSession, url: str, events: list[tuple[str, str]], rate: float,
                signer: SignatureVerifier) -> Run:
    run = Run("paced")
    run.started = time.perf_counter()
    tasks = []
    for i, (key, body) in enumerate(events):
        delay = run.started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(session, url, key, body, run, signer)))
    await asyncio.gather(*tasks)
    run.finished_sending = time.perf_counter()
    return run


async def saturate(session: aiohttp.ClientSession, url: str, events: list[tuple[str, str]], concurrency: int,
                   signer: SignatureVerifier) -> Run:
    run = Run("saturation")
    queue = iter(events)

    async def sender() -> None:
        for key, body in queue:
            await send(session, url, key, body, run, signer)

    run.started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    run.finished_sending = time.perf_counter()
    return run


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile in ms: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(round(q * len(ordered), 9)) - 1)] * 1000 if ordered else float("nan")


async def wait_replies(fake: FakeSlack, run: Run, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and any(k not in fake.replies for k in run.sent):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let a would-be duplicate arrive before counting


def report(run: Run, fake: FakeSlack, db: Path) -> dict[str, Any]:
    answered = [fake.replies[k] for k in run.sent if k in fake.replies]
    latencies = [times[0] - run.sent[k] for k, times in fake.replies.items() if k in run.sent]
    last = max((times[0] for k, times in fake.replies.items() if k in run.sent), default=run.started)
    with sqlite3.connect(db) as conn:
        channel_prefix = f"D{run.name[0].upper()}%"
        rows = conn.execute("SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                            "WHERE c.channel LIKE ?", [channel_prefix]).fetchone()[0]
    result = {
        "phase": run.name, "events": len(run.sent), "acked_200": run.statuses.get(200, 0),
        "answered": len(answered), "answered_twice_or_more": sum(1 for t in answered if len(t) > 1),
        "unanswered": len(run.sent) - len(answered), "message_rows": rows,
        "ack_p50_ms": pct(run.acks, 0.5), "ack_p99_ms": pct(run.acks, 0.99),
        "reply_p50_ms": pct(latencies, 0.5), "reply_p99_ms": pct(latencies, 0.99),
        "offered_per_s": len(run.sent) / max(1e-9, run.finished_sending - run.started),
        "answered_per_s": len(answered) / max(1e-9, last - run.started),
    }
    result["exactly_once"] = (result["answered"] == result["events"] and not result["answered_twice_or_more"]
                              and rows == result["events"])
    return result


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    """A data dir holding a copy of the model, activated; and the knowledge base to use."""
    settings = load_settings()
    model = Path(args.model) if args.model else None
    if model is None:
        with Store(settings.db_path) as store:
            registry = Registry(settings.models_dir, store)
            active = registry.active()
            if not active:
                sys.exit("No active model: train one (`csbot train --activate` or `make run`), or pass --model DIR.")
            model = registry.path(active)
    data_dir = workdir / "data"
    shutil.copytree(model, data_dir / "models" / "v0001")
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate("v0001")
    kb = Path(args.kb) if args.kb else Path(settings.kb_path or ROOT / "bot" / "kb" / "default.yaml")
    return data_dir, kb


def texts(kb_path: Path) -> list[str]:
    kb = load_knowledge_base(kb_path)
    return [t for intent in kb.intents.values() for t in intent.examples]


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="csbot-load-"))
    data_dir, kb_path = prepare(args, workdir)
    fake = FakeSlack()
    fake_app = web.Application(client_max_size=1 << 22)
    fake_app.router.add_route("*", "/api/{method}", fake.handle)
    runner = web.AppRunner(fake_app, access_log=None)
    await runner.setup()
    fake_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", fake_port).start()
    port = free_port()
    settings = load_settings()  # inference settings from .env / the environment carry over to the bot
    env = {**os.environ, "CSBOT_ONNX_PROVIDER": settings.onnx_provider, "CSBOT_ONNX_VARIANT": settings.onnx_variant,
           "CSBOT_THREADS": str(settings.threads), "CSBOT_MAX_MESSAGE_CHARS": str(settings.max_message_chars),
           "CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(kb_path),
           "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET, "SLACK_APP_TOKEN": "",
           "SLACK_API_URL": f"http://127.0.0.1:{fake_port}/api/", "CSBOT_HTTP_HOST": "127.0.0.1",
           "CSBOT_HTTP_PORT": str(port), "CSBOT_AGENTS_CHANNEL": "CAGENTS", "CSBOT_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--http"], cwd=workdir, env=env)
    base = f"http://127.0.0.1:{port}"
    signer = SignatureVerifier(SECRET)
    results: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            deadline = time.monotonic() + 120
            while True:
                try:
                    async with session.get(base + "/healthz") as resp:
                        if resp.status == 200:
                            health = await resp.json()
                            break
                except aiohttp.ClientError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the bot did not start; see its output above")
                await asyncio.sleep(0.2)
            print(f"bot up: model {health['model']} on {health['device']}", flush=True)
            pool, rng = texts(kb_path), random.Random(7)
            # Warm-up: the first requests pay for auth.test, imports and onnxruntime's first run.
            warm = [make_event(n, rng.choice(pool), "warmup") for n in range(50)]
            await saturate(session, base + "/slack/events", warm, 5, signer)
            count = args.events
            if args.seconds:
                count = min(count, int(args.seconds * args.rate / (2 if args.phase == "both" else 1)))
            for phase in ("paced", "saturation"):
                if args.phase not in (phase, "both"):
                    continue
                events = [make_event(n, rng.choice(pool), phase) for n in range(count)]
                url = base + "/slack/events"
                run = await (paced(session, url, events, args.rate, signer) if phase == "paced"
                             else saturate(session, url, events, args.concurrency, signer))
                await wait_replies(fake, run, timeout=60)
                results.append(report(run, fake, data_dir / "csbot.db"))
                print(json.dumps(results[-1], indent=2), flush=True)
            async with session.get(base + "/metrics") as resp:
                metrics = await resp.text()
            server_ack = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                          if line.startswith(("csbot_ack_seconds_sum", "csbot_ack_seconds_count"))}
            if server_ack.get("csbot_ack_seconds_count"):
                mean = server_ack["csbot_ack_seconds_sum"] / server_ack["csbot_ack_seconds_count"] * 1000
                print(f"server-side ack (bolt dispatch), mean over all requests: {mean:.2f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
        await runner.cleanup()
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"load-{int(time.time())}.json"
    out.write_text(json.dumps({"results": results, "model": health["model"], "args": vars(args)}, indent=2))
    (OUT / (out.stem + ".metrics.txt")).write_text(metrics)
    print(f"\n{header('python benchmarks/load.py ' + ' '.join(sys.argv[1:]))}\n")
    print("| phase | events | answered once | rows | ack p50 / p99 ms | reply p50 / p99 ms | answered/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['phase']} | {r['events']} | {r['answered'] - r['answered_twice_or_more']} | {r['message_rows']} "
              f"| {r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f} | {r['reply_p50_ms']:.1f} / {r['reply_p99_ms']:.1f} "
              f"| {r['answered_per_s']:.0f} |")
    print(f"\nraw results: {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r["exactly_once"] for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("paced", "saturation", "both"), default="both")
    parser.add_argument("--events", type=int, default=2000, help="events per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="paced: events per second")
    parser.add_argument("--concurrency", type=int, default=20, help="saturation: concurrent senders")
    parser.add_argument("--seconds", type=float, default=0.0, help="cap the run at about this long (smoke test)")
    parser.add_argument("--model", default=None, help="model directory (default: the active model)")
    parser.add_argument("--kb", default=None, help="knowledge base the messages are drawn from")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
