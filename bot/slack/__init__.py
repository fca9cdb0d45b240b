"""csbot in Slack: a slack-bolt ``AsyncApp`` behind uvicorn (HTTP) or Socket Mode, from the same code.

One module per concept: ``blocks`` renders Block Kit, ``events`` turns raw payloads into
jobs, ``dedupe`` claims event ids, ``batcher`` groups messages into one inference,
``pipeline`` classifies and replies, ``actions`` handles buttons and reactions,
``app`` wires bolt listeners, ``metrics`` counts, ``server`` runs it all.
The extensions (``extensions``) add the people around the bot: ``agents`` (the "Flag wrong
answer" shortcut, handoff buttons, "Label"), ``modal`` (the correction modal), ``review``
(the queue as blocks), ``commands`` (`/csbot`), ``home`` (App Home) and ``people`` (who may act).
"""
