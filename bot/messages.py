"""Every user-facing sentence csbot says, in one place (answers come from the knowledge base).

Keeping them here lets a team reword or translate the bot without touching logic,
and keeps Slack, the terminal and the logs saying the same thing.
"""

from __future__ import annotations

EMPTY_PROMPT = ("I didn't catch a question there. Tell me what you need help with, for example "
                "_\"where is my order?\"_ or _\"how do I return something?\"_")
TRUNCATED_NOTE = "_(Your message was long, so I read the first part of it.)_"
CLARIFY_QUESTION = "I want to get this right. Which of these is closest to what you need?"
CLARIFY_NONE = "Neither, talk to a human"
NOT_SURE_CONTEXT = "not sure"
CONFIDENT_CONTEXT = "{intent} · {confidence:.0%} sure"
HANDOFF_CONTEXT = "handed to a human · {reason}"
FEEDBACK_THANKS = "Thanks for the feedback!"
FEEDBACK_PROMPT = "Was this helpful?"
BUTTON_HELPFUL = "👍 Helpful"
BUTTON_NOT_HELPFUL = "👎 Not helpful"
BUTTON_HUMAN = "Talk to a human"
FOLLOW_UPS = "You can also ask me about: {topics}"
LINKS = "More: {links}"
RATED_UP = "Glad that helped!"
RATED_DOWN = "Sorry about that. I've noted it so a person can review this answer."
NOTHING_TO_RATE = "There's no answer to rate yet. Ask me something first."
CORRECTED = "Noted: message {message_id} is really '{intent}'. It will be used in the next retrain."
UNKNOWN_INTENT = "'{intent}' is not an intent in the knowledge base. Known intents: {known}"

REASONS = {
    "confident": "confident answer",
    "close_call": "two intents are close",
    "low_confidence": "the model is not confident",
    "asked_for_human": "the customer asked for a human",
    "always_handoff": "this topic is always handled by a person",
    "negative_sentiment": "the customer seems upset",
    "no_answer": "the knowledge base has no answer for this intent",
    "empty": "nothing to classify",
    "clarified": "the customer chose the intent",
}

# Terminal chat
CHAT_BANNER = ("{company} support bot ({bot_name}) in the terminal · model {version} on {device}\n"
               "Type a message. Commands: /up, /down (rate the last answer), "
               "/correct INTENT (fix the last answer, as an agent), /intents, /quit")
CHAT_NO_SLACK = ("No Slack tokens in .env (SLACK_BOT_TOKEN), so csbot is serving the same bot here in "
                 "the terminal. See the README, 'Connect to Slack', to run it in Slack.")
CHAT_CHOOSE = "Type 1 or 2 to choose, or anything else to ask again."
CHAT_BYE = "Bye! Everything from this session is saved in {db}."
