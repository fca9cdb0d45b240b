"""A fake Slack for the tests and the load benchmark: a real HTTP server on 127.0.0.1.

``FakeSlack`` answers the Web API methods csbot uses with JSON shaped like Slack's
and records every call (method, params) so a test can wait for and inspect them.
The helpers below build Events API and interactivity requests signed exactly as
Slack signs them, and a throwaway data directory with a model and knowledge base.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from slack_sdk.signature import SignatureVerifier

TEAM_ID, BOT_USER, BOT_ID, APP_ID = "T0FAKE", "UBOTUSER", "B0FAKEBOT", "A0FAKEAPP"
TEAM_URL = "https://fake-team.slack.com/"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN, APP_TOKEN = "xoxb-1-test", "xapp-1-test"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.perf_counter)
    response: dict[str, Any] | None = None  # what the fake answered (set before any delay)


class FakeSlack:
    """``with FakeSlack() as slack:`` serves ``slack.api_url``; ``slack.calls`` lists what was asked."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}
        self.socket_url = "ws://127.0.0.1:9/"
        self.usergroups: dict[str, list[str]] = {}  # usergroups.users.list answers: group id -> member ids
        self.reactions: dict[tuple[str, str], dict[str, list[str]]] = {}  # (channel, ts) -> emoji -> users
        self.not_a_member: set[str] = set()  # channels where posting fails with not_in_channel
        # method -> what to answer its next calls with instead: (HTTP status, Slack error, Retry-After or None)
        self._failures: dict[str, list[tuple[int, str, int | None]]] = {}
        self._delays: dict[str, list[float]] = {}  # method -> seconds to hold each next answer back
        self._drops: dict[str, int] = {}  # method -> how many next calls are done, then the connection dropped
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what the tests read -------------------------------------------------------

    def of(self, method: str, **where: Any) -> list[Call]:
        """Calls of ``method`` whose params include every ``where`` item."""
        with self._cond:
            return [c for c in self.calls if c.method == method
                    and all(c.params.get(k) == v for k, v in where.items())]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0, **where: Any) -> list[Call]:
        """Block until ``count`` matching calls were recorded; raise AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method
                         and all(c.params.get(k) == v for k, v in where.items())]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} {method} call(s) matching {where}, got {len(found)}: "
                                         f"{[c.method for c in self.calls]}")
                self._cond.wait(left)

    def rate_limit_next(self, method: str, times: int = 1, retry_after: int = 0) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429, as Slack's rate limiter does."""
        with self._cond:
            self._failures.setdefault(method, []).extend([(429, "ratelimited", retry_after)] * times)

    def fail_next(self, method: str, error: str = "internal_error", times: int = 1, status: int = 200) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}`` (status 500 for
        Slack's own outages, 200 for an error about the request, such as channel_not_found)."""
        with self._cond:
            self._failures.setdefault(method, []).extend([(status, error, None)] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Hold back the answer to the next ``times`` calls of ``method``, as a slow Slack would: the
        message exists (its ts is in ``Call.response``) before the bot hears back."""
        with self._cond:
            self._delays.setdefault(method, []).extend([seconds] * times)

    def drop_next(self, method: str, times: int = 1) -> None:
        """Do the next ``times`` calls of ``method`` (the message exists) but close the connection instead of
        answering, as a connection lost after Slack got the request looks to the bot."""
        with self._cond:
            self._drops[method] = self._drops.get(method, 0) + times

    def _take_drop(self, method: str) -> bool:
        with self._cond:
            if self._drops.get(method):
                self._drops[method] -= 1
                return True
            return False

    def _take_delay(self, method: str) -> float:
        with self._cond:
            pending = self._delays.get(method)
            return pending.pop(0) if pending else 0.0

    def _take_failure(self, method: str) -> tuple[int, str, int | None] | None:
        with self._cond:
            pending = self._failures.get(method)
            return pending.pop(0) if pending else None

    # --- the Web API -----------------------------------------------------------------

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def answer(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "apps.connections.open":
            if not (token or "").startswith("xapp-"):
                return {"ok": False, "error": "not_allowed_token_type"}
            return {"ok": True, "url": self.socket_url}
        if not (token or "").startswith("xoxb-"):
            return {"ok": False, "error": "not_authed"}
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "_" + method.replace(".", "_"), None)
        return handler(params) if handler else {"ok": False, "error": "unknown_method"}

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": TEAM_URL, "team": "Fake Team", "user": "csbot", "team_id": TEAM_ID,
                "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _message(self, p: dict[str, Any], ts: str) -> dict[str, Any]:
        message = {"type": "message", "subtype": "bot_message", "text": p.get("text", ""), "user": BOT_USER,
                   "bot_id": BOT_ID, "app_id": APP_ID, "team": TEAM_ID, "ts": ts,
                   "blocks": p.get("blocks") or []}
        if p.get("thread_ts"):
            message["thread_ts"] = p["thread_ts"]
        return message

    def _chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if p["channel"] in self.not_a_member:
            return {"ok": False, "error": "not_in_channel"}
        if not p.get("text") and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self.next_ts()
        return {"ok": True, "channel": p["channel"], "ts": ts, "message": self._message(p, ts)}

    def _chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel") or not p.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": p["channel"], "ts": p["ts"], "text": p.get("text", ""),
                "message": self._message(p, p["ts"])}

    def _conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        """The bot's own posts as they now read (after chat.update), newest first, up to ``latest``."""
        channel, latest = str(p.get("channel", "")), str(p.get("latest") or "9" * 20)
        inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")
        posts: dict[str, dict[str, Any]] = {}
        with self._cond:
            calls = list(self.calls)
        for call in calls:
            answer = call.response or {}
            if call.method in ("chat.postMessage", "chat.update") and answer.get("ok") \
                    and answer.get("channel") == channel and "thread_ts" not in answer.get("message", {}):
                posts[answer["ts"]] = answer["message"]
        ts_list = sorted((ts for ts in posts if float(ts) < float(latest) or (inclusive and ts == latest)),
                         key=float, reverse=True)
        return {"ok": True, "messages": [posts[ts] for ts in ts_list[:int(p.get("limit") or 100)]],
                "has_more": False}

    def _chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        ts = str(p.get("message_ts", ""))
        return {"ok": True, "channel": p.get("channel"),
                "permalink": f"{TEAM_URL}archives/{p.get('channel')}/p{ts.replace('.', '')}"}

    def _view(self, p: dict[str, Any]) -> dict[str, Any]:
        view = p.get("view") or {}
        if isinstance(view, str):
            view = json.loads(view)
        return {"ok": True, "view": {"id": f"V{next(self._ids):08d}", "team_id": TEAM_ID, "hash": "1.abc",
                                     "app_id": APP_ID, "bot_id": BOT_ID, **view}}

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._view(p) if p.get("trigger_id") else {"ok": False, "error": "invalid_arguments"}

    def _views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._view(p) if p.get("user_id") else {"ok": False, "error": "invalid_arguments"}

    def _views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._view(p)

    def _chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("channel") or not p.get("user"):
            return {"ok": False, "error": "channel_not_found" if not p.get("channel") else "user_not_in_channel"}
        if p["channel"] in self.not_a_member:  # e.g. a DM between two people, which the bot cannot post into
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text") and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        return {"ok": True, "message_ts": self.next_ts()}

    def _reactions_get(self, p: dict[str, Any]) -> dict[str, Any]:
        on = self.reactions.get((str(p.get("channel", "")), str(p.get("timestamp", ""))), {})
        return {"ok": True, "type": "message", "channel": p.get("channel"), "message": {
            "type": "message", "ts": p.get("timestamp"),
            "reactions": [{"name": n, "users": list(u), "count": len(u)} for n, u in on.items() if u]}}

    def _usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        group = str(p.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def response_url(self, name: str = "cmd") -> str:
        """A ``response_url`` for an interaction; POSTs to it are recorded as method ``response_url``."""
        return f"{self.url}/response/{name}-{next(self._ids)}"

    def _conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        im = channel.startswith("D")
        return {"ok": True, "channel": {"id": channel, "name": None if im else f"chan-{channel.lower()}",
                                        "is_channel": not im, "is_im": im, "is_private": False,
                                        "is_member": True, "created": 1700000000}}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user", ""))
        return {"ok": True, "user": {"id": user, "team_id": TEAM_ID, "name": f"user-{user.lower()}",
                                     "real_name": f"User {user}", "is_bot": False, "tz": "Europe/Amsterdam",
                                     "profile": {"display_name": f"user-{user.lower()}",
                                                 "real_name": f"User {user}"}}}

    def _files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files") or "[]"
        files = json.loads(files) if isinstance(files, str) else files
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", ""), "name": f.get("title", ""),
                                       "size": len(self.uploads.get(f["id"], b""))} for f in files]}

    def record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack's API does

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json",
                       extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, raw: bytes) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path.startswith("/upload/"):
                    fake.uploads[url.path.rsplit("/", 1)[1]] = raw
                    fake.record(Call("upload", {"file_id": url.path.rsplit("/", 1)[1], "size": len(raw)}, None))
                    self._reply(200, f"OK - {len(raw)}".encode(), "text/plain")
                    return
                if url.path.startswith("/response/"):
                    params = json.loads(raw or b"{}")
                    fake.record(Call("response_url", {**params, "url": fake.url + url.path}, None))
                    self._reply(200, b"ok", "text/plain")
                    return
                if not url.path.startswith("/api/"):
                    self._reply(404, b"not found", "text/plain")
                    return
                method = url.path[len("/api/"):]
                params: dict[str, Any] = dict(urllib.parse.parse_qsl(url.query))
                ctype = self.headers.get("Content-Type", "")
                if raw and "json" in ctype:
                    params.update(json.loads(raw))
                elif raw:
                    params.update(urllib.parse.parse_qsl(raw.decode()))
                for key in ("blocks", "attachments", "view"):
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                auth = self.headers.get("Authorization", "")
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else params.get("token")
                call = Call(method, params, token)
                fake.record(call)
                failure = fake._take_failure(method)
                if failure is not None:
                    status, error, retry_after = failure
                    extra = {"Retry-After": str(retry_after)} if retry_after is not None else None
                    self._reply(status, json.dumps({"ok": False, "error": error}).encode(), extra=extra)
                    return
                call.response = fake.answer(method, params, token)
                if fake._take_drop(method):
                    self.close_connection = True  # no answer at all: the client sees the server disconnect
                    return
                time.sleep(fake._take_delay(method))
                self._reply(200, json.dumps(call.response).encode())

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def do_GET(self) -> None:  # noqa: N802
                self._handle(b"")

        return Handler


# --- signed requests, as Slack sends them ----------------------------------------------

_event_ids = itertools.count(1)
_ts = itertools.count(1)


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope around ``event``."""
    return {"token": "legacy-verification-token", "team_id": TEAM_ID, "api_app_id": APP_ID, "event": event,
            "type": "event_callback", "event_id": event_id or f"Ev{next(_event_ids):010d}",
            "event_time": int(time.time()), "is_ext_shared_channel": False,
            "event_context": f"4-{TEAM_ID}-{next(_event_ids)}",
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": True,
                                "is_enterprise_install": False}]}


def dm_event(text: str, user: str = "UCUSTOMER1", channel: str = "D0CUSTOMER", thread_ts: str | None = None,
             **extra: Any) -> dict[str, Any]:
    ts = new_ts()
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
             "channel_type": "im", "team": TEAM_ID, "client_msg_id": f"msg-{ts}",
             "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [
                 {"type": "rich_text_section", "elements": [{"type": "text", "text": text[:100]}]}]}]}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {**event, **extra}


def mention_event(text: str, user: str = "UCUSTOMER2", channel: str = "C0GENERAL") -> dict[str, Any]:
    ts = new_ts()
    return {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": ts, "channel": channel,
            "event_ts": ts, "team": TEAM_ID, "client_msg_id": f"msg-{ts}"}


def block_actions_body(*, user: str, channel: str, message: dict[str, Any], action_id: str, value: str,
                       text: str = "button", response_url: str | None = None) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a button of ``message`` (as the fake returned it)."""
    block_id = next((b.get("block_id") for b in message.get("blocks", [])
                     if any(e.get("action_id") == action_id for e in b.get("elements", []))), "b")
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    return {"type": "block_actions", "user": {"id": user, "username": f"user-{user.lower()}",
                                              "name": f"user-{user.lower()}", "team_id": TEAM_ID},
            "api_app_id": APP_ID, "token": "legacy-verification-token", "container": container,
            "trigger_id": f"{next(_event_ids)}.{TEAM_ID}.abcdef", "team": {"id": TEAM_ID, "domain": "fake-team"},
            "enterprise": None, "is_enterprise_install": False, "channel": {"id": channel, "name": "directmessage"},
            "message": message, "state": {"values": {}},
            "response_url": response_url or f"https://hooks.slack.com/actions/{TEAM_ID}/1/abc",
            "actions": [{"action_id": action_id, "block_id": block_id, "value": value, "type": "button",
                         "text": {"type": "plain_text", "text": text, "emoji": True},
                         "action_ts": f"{time.time():.6f}"}]}


def interaction_base(user: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "user": {"id": user, "username": f"user-{user.lower()}", "name": f"user-{user.lower()}",
                                   "team_id": TEAM_ID},
            "api_app_id": APP_ID, "token": "legacy-verification-token", "team": {"id": TEAM_ID, "domain": "fake-team"},
            "enterprise": None, "is_enterprise_install": False,
            "trigger_id": f"{next(_event_ids)}.{TEAM_ID}.abcdef"}


def message_shortcut_body(*, user: str, channel: str, message: dict[str, Any], response_url: str,
                          callback_id: str = "flag_wrong_answer") -> dict[str, Any]:
    """A ``message_action`` payload: a message shortcut used on ``message``."""
    return {**interaction_base(user, "message_action"), "callback_id": callback_id, "message": message,
            "message_ts": message["ts"], "channel": {"id": channel, "name": "support"},
            "response_url": response_url, "action_ts": f"{time.time():.6f}"}


def block_suggestion_body(*, user: str, view: dict[str, Any], action_id: str, block_id: str,
                          value: str) -> dict[str, Any]:
    """An ``external_select`` asking for options while the user types ``value`` in a modal."""
    return {**interaction_base(user, "block_suggestion"), "action_id": action_id, "block_id": block_id,
            "value": value, "view": view, "container": {"type": "view", "view_id": view.get("id")}}


def view_submission_body(*, user: str, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``view_submission`` of ``view`` (as views.open returned it) with ``state.values``."""
    return {**interaction_base(user, "view_submission"), "view": {**view, "state": {"values": values}},
            "response_urls": []}


def slash_command_form(*, user: str, channel: str, text: str, response_url: str,
                       command: str = "/csbot") -> dict[str, str]:
    return {"token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "fake-team",
            "channel_id": channel, "channel_name": "support", "user_id": user, "user_name": f"user-{user.lower()}",
            "command": command, "text": text, "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": response_url, "trigger_id": f"{next(_event_ids)}.{TEAM_ID}.abcdef"}


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str]


def signed_post(url: str, body: str, content_type: str, *, secret: str = SIGNING_SECRET,
                timestamp: int | None = None, signature: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """POST ``body`` with Slack's v0 signature (or the given ``signature``), as Slack does."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    sig = signature or SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Response(resp.status, resp.read().decode(), dict(resp.headers))
    except urllib.error.HTTPError as err:
        return Response(err.code, err.read().decode(), dict(err.headers))


def post_event(url: str, body: dict[str, Any], **kwargs: Any) -> Response:
    return signed_post(url, json.dumps(body), "application/json", **kwargs)


def post_action(url: str, payload: dict[str, Any], **kwargs: Any) -> Response:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    return signed_post(url, body, "application/x-www-form-urlencoded", **kwargs)


def post_command(url: str, form: dict[str, str], **kwargs: Any) -> Response:
    return signed_post(url, urllib.parse.urlencode(form), "application/x-www-form-urlencoded", **kwargs)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- a data directory with a model and a small knowledge base ---------------------------

TEST_KB = """\
company:
  name: "Test Shop"
  bot_name: "Tess"
  handoff_text: "A person from our team will reply in this thread soon."
  escalation_text: "Sorry about this. A senior agent will get back to you urgently."
intents:
  - name: track_order
    description: "Where is my order"
    title: "Where is my order"
    examples: [where is my order, track my parcel, has my package shipped, order status please,
               when will my order arrive, tracking number for my order, is my parcel on the way,
               where is my delivery, my order has not arrived, parcel tracking]
    answer: "You can track your order under *My orders*."
    links: [{title: "Delivery help", url: "https://example.com/delivery"}]
  - name: refund
    description: "Getting a refund"
    examples: [i want a refund, give me my money back, refund my purchase, how do i get a refund,
               refund status, when will i get my refund, money back please, return money to my card,
               refund not received, can i have a refund]
    answer: "Refunds reach your card within 5-7 business days."
  - name: reset_password
    description: "Resetting a password"
    examples: [reset my password, forgot my password, cannot log in password, change password,
               password reset link, locked out of my account, new password please,
               login password not working, password help, i need a new password]
    answer: "Use *Forgot password* on the sign-in page to get a reset link."
"""

# Routing modes as real per-model thresholds (the tiny test model is never confident).
MODES: dict[str, dict[str, float]] = {
    "answer": {"answer_min": 0.0, "clarify_margin": 0.0, "clarify_min": 0.0, "escalate_negative": 1.01},
    "clarify": {"answer_min": 0.0, "clarify_margin": 1.01, "clarify_min": 0.0, "escalate_negative": 1.01},
    "handoff": {"answer_min": 1.01, "clarify_margin": 0.0, "clarify_min": 1.01, "escalate_negative": 1.01},
    "escalate": {"answer_min": 0.0, "clarify_margin": 0.0, "clarify_min": 0.0, "escalate_negative": 0.0},
}
MODE_VERSIONS = {mode: f"v{n:04d}" for n, mode in enumerate(MODES, start=1)}


def make_data_dir(root: Path, model: Path) -> tuple[Path, Path]:
    """A data dir holding one model version per routing mode, and the test knowledge base."""
    from models import modeldir

    data_dir = root / "data"
    for mode, version in MODE_VERSIONS.items():
        dest = data_dir / "models" / version
        modeldir.copy_model_dir(model, dest)
        modeldir.update_manifest(dest, version=version, thresholds=MODES[mode])
    kb_path = root / "kb.yaml"
    kb_path.write_text(TEST_KB, encoding="utf-8")
    return data_dir, kb_path
