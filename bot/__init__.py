"""csbot: the Slack app, routing, knowledge base, store, scheduler and CLI (never imports torch)."""

__version__ = "0.1.0"
