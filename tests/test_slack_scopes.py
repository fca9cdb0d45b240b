"""The Slack app asks for the scopes its code needs, no more and no fewer, and the setup guide says why.

The fake Slack server does not enforce scopes, so a missing one would only show in a real workspace
(``missing_scope`` on the first call) and an unused one only in an admin's security review. This test
reads the Web API methods out of the code and the events out of the manifests instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = [ROOT / "slack" / "manifest.socket.yml", ROOT / "slack" / "manifest.http.yml"]

# The scope each Web API method needs (from Slack's method reference); an empty set: none.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "apps.connections.open": set(),  # the app-level token's connections:write, not a bot scope
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.getPermalink": set(),
    "conversations.history": {"channels:history", "groups:history"},  # the agents' channel, public or private
    "reactions.get": {"reactions:read"},
    "usergroups.users.list": {"usergroups:read"},
    "views.open": set(),
    "views.publish": set(),
    "files.upload_v2": {"files:write"},
}
EVENT_SCOPES = {
    "app_home_opened": set(),
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "reaction_added": {"reactions:read"},
    "reaction_removed": {"reactions:read"},
}
# Needed by a feature rather than by one method or event.
FEATURE_SCOPES = {
    "commands": "the /csbot slash command",
    "im:write": "command replies posted to an admin's direct message (chat.postMessage with a user ID)",
}


def _manifest(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _called_methods() -> set[str]:
    """Web API methods named in the bot's code: ``rt.call("chat.update", ...)`` and ``client.auth_test(...)``."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        found.update(re.findall(r"""\.call\(\s*["']([a-zA-Z]+(?:\.[a-zA-Z]+)+)["']""", code))
        for name in re.findall(r"\bclient\.([a-z]+_[a-zA-Z0-9_]+)\(", code):
            found.add(name.replace("_", ".").replace(".v2", "_v2"))  # apps_connections_open, files_upload_v2
    return found


def test_both_manifests_ask_for_the_same_scopes_and_events() -> None:
    socket, http = (_manifest(p) for p in MANIFESTS)
    assert sorted(socket["oauth_config"]["scopes"]["bot"]) == sorted(http["oauth_config"]["scopes"]["bot"])
    assert sorted(socket["settings"]["event_subscriptions"]["bot_events"]) == sorted(
        http["settings"]["event_subscriptions"]["bot_events"])


def test_every_method_the_code_calls_is_known_and_allowed() -> None:
    methods = _called_methods()
    assert {"chat.postMessage", "views.open", "files.upload_v2", "auth.test"} <= methods  # the scan finds calls
    unknown = methods - METHOD_SCOPES.keys()
    assert not unknown, f"add the scope these methods need to METHOD_SCOPES and the manifests: {sorted(unknown)}"
    scopes = set(_manifest(MANIFESTS[0])["oauth_config"]["scopes"]["bot"])
    for method in methods:
        assert METHOD_SCOPES[method] <= scopes, f"{method} needs {METHOD_SCOPES[method] - scopes}"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_event_is_allowed_and_every_scope_is_used(path: Path) -> None:
    manifest = _manifest(path)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    needed = set(FEATURE_SCOPES)
    for event in events:
        assert event in EVENT_SCOPES, f"unknown event {event}: add the scope it needs to EVENT_SCOPES"
        assert EVENT_SCOPES[event] <= scopes, f"{event} needs {EVENT_SCOPES[event] - scopes}"
        needed |= EVENT_SCOPES[event]
    for method in _called_methods():
        needed |= METHOD_SCOPES[method]
    assert scopes == needed, f"unused: {sorted(scopes - needed)}; missing: {sorted(needed - scopes)}"


def test_the_setup_guide_explains_every_scope() -> None:
    guide = (ROOT / "docs" / "slack-setup.md").read_text(encoding="utf-8")
    table = guide.split("### What the bot may do, and why", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    explained = {scope for row in rows for scope in re.findall(r"`([a-z_.]+:[a-z_.]+|commands)`", row.split("|")[1])}
    assert explained == set(_manifest(MANIFESTS[0])["oauth_config"]["scopes"]["bot"])
