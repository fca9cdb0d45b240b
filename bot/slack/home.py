"""App Home (``app_home_opened`` → ``views.publish``): a dashboard for agents and admins,
a short "how to ask me" page for everyone else.

Agents see the review queue, as `/csbot review` shows them. Admins also see the model and the week,
from the functions behind `/csbot status` and `/csbot stats` (``bot.admin``, ``bot.stats``), so the
three never disagree, and so the Home tab never shows an agent what those commands refuse them.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import admin, messages, stats
from bot.slack.blocks import Block, button, context, section
from bot.slack.people import is_agent
from bot.slack.review import review_blocks
from bot.slack.runtime import Runtime
from bot.store import Store

OPEN_QUEUE, REFRESH = "home_review", "home_refresh"
QUEUE_LIMIT = 40
Body = dict[str, Any]


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def customer_view(rt: Runtime) -> dict[str, Any]:
    company = rt.ctx.kb.company
    topics = ", ".join(i.label for i in list(rt.ctx.kb.intents.values())[:12])
    return {"type": "home", "blocks": [
        _header(messages.HOME_TITLE.format(company=company.name)),
        section(messages.HOME_CUSTOMER.format(bot_name=company.bot_name, company=company.name)),
        context(messages.HOME_TOPICS.format(topics=topics))]}


def dashboard_view(rt: Runtime, *, show_queue: bool, for_admin: bool) -> dict[str, Any]:
    """Runs on the thread pool: reads the store, and for an admin the registry and the model card."""
    settings = rt.ctx.settings
    with Store(settings.db_path) as store:
        week = stats.render(stats.compute(store, 7)) if for_admin else ""
        queue, waiting = store.review_queue(limit=QUEUE_LIMIT), store.review_count()
    out: list[Block] = [_header(messages.HOME_TITLE.format(company=rt.ctx.kb.company.name))]
    if for_admin:
        status = admin.render_status(settings, provider=rt.ctx.live.current.provider, next_run=rt.next_retrain())
        out += [context(messages.HOME_ADMIN_INTRO), section(status), {"type": "divider"}, section(week)]
    else:
        out.append(context(messages.HOME_AGENT_INTRO))
    out += [
        {"type": "divider"},
        {**section(messages.HOME_QUEUE.format(count=waiting)),
         "accessory": button(REFRESH if show_queue else OPEN_QUEUE,
                             messages.HOME_REFRESH_BUTTON if show_queue else messages.HOME_QUEUE_BUTTON,
                             "queue", "primary")},
    ]
    if show_queue and queue:
        out += review_blocks(queue, waiting, limit=QUEUE_LIMIT)[1:]
    return {"type": "home", "blocks": out}


async def publish(rt: Runtime, user: str, *, show_queue: bool = False) -> bool:
    if await is_agent(rt, user):
        for_admin = admin.is_admin(rt.ctx.settings, user)
        view = await rt.in_thread(lambda: dashboard_view(rt, show_queue=show_queue, for_admin=for_admin))
    else:
        view = customer_view(rt)
    return await rt.call("views.publish", user_id=user, view=view) is not None


def extension(app: AsyncApp, rt: Runtime) -> None:
    async def opened(ack: AsyncAck, body: Body) -> None:
        await ack()
        event = body.get("event") or {}
        if event.get("tab", "home") == "home" and event.get("user"):
            rt.spawn(publish(rt, str(event["user"])))

    def clicked(show_queue: bool) -> Any:
        async def listener(ack: AsyncAck, body: Body) -> None:
            await ack()
            user = str((body.get("user") or {}).get("id") or "")
            if user:
                rt.spawn(publish(rt, user, show_queue=show_queue))
        return listener

    app.event("app_home_opened")(opened)
    app.action(OPEN_QUEUE)(clicked(True))
    app.action(REFRESH)(clicked(True))
