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
CORRECTED_SENTIMENT = "Noted: message {message_id} is {sentiment}. It will be used in the next retrain."
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
CHAT_COMMANDS = ("Commands: /up, /down (rate the last answer), /correct INTENT [SENTIMENT] (fix the last "
                 "answer, as an agent; e.g. /correct refund_status negative), /intents, /quit")
CHAT_BANNER = ("{company} support bot ({bot_name}) in the terminal · model {version} on {device}\n"
               "Type a message. " + CHAT_COMMANDS)
CHAT_MODEL_SWAPPED = "(model {old} -> {new}: a retrain or an admin promoted a new version)"
CHAT_CORRECT_USAGE = ("Write /correct INTENT, /correct SENTIMENT or /correct INTENT SENTIMENT, e.g. "
                      "/correct refund_status negative. /intents lists the intents.")
CHAT_NO_SLACK = ("No Slack tokens in .env (SLACK_BOT_TOKEN), so csbot is serving the same bot here in "
                 "the terminal. See the README, 'Connect to Slack', to run it in Slack.")
CHAT_CHOOSE = "Type 1 or 2 to choose, or anything else to ask again."
CHAT_BYE = "Bye! Everything from this session is saved in {db}."

# Slack
SLACK_ERROR = "Sorry, something went wrong on my side. Please try again in a minute."
CLARIFY_CHOSEN = "You chose: {choice}"
HANDOFF_REQUESTED = "handed to a human · you asked for a person"
AGENTS_HANDOFF_TITLE = "Handoff: a customer needs a person"
AGENTS_ESCALATE_TITLE = ":rotating_light: Priority escalation: a customer seems upset"
AGENTS_FIELDS = ("*Customer*\n<@{user}>", "*Intent guess*\n{intent} ({confidence})",
                 "*Sentiment*\n{sentiment}", "*Reason*\n{reason}")
AGENTS_LINK = "<{link}|Open the thread>"
AGENTS_FALLBACK = "{title}: <@{user}> wrote \"{text}\" ({reason})"
AGENTS_UNKNOWN = "unknown"

# Admin and agent commands (`/csbot ...` and the CLI)
ADMIN_HELP = ("*csbot commands*\n"
              "• `/csbot status` — active model, last and next retrain, inference device, 7-day feedback\n"
              "• `/csbot models` — model versions with their metrics\n"
              "• `/csbot retrain [--force] [--mode auto|full|fast]` — retrain now (`--force`: even with no new "
              "data)\n"
              "• `/csbot promote VERSION` — make a version active\n"
              "• `/csbot rollback` — go back to the previous active version\n"
              "• `/csbot stats [DAYS]` — answer and handoff rates, 👍 share, top intents, corrections\n"
              "• `/csbot review` — answers rated 👎 and handoffs that no agent has labelled yet (agents)\n"
              "• `/csbot help` — this list")
UNKNOWN_COMMAND = "I don't know `{command}`."
ADMIN_ONLY = ("Only admins can run `{command}`. Admins: {admins}. "
              "Ask one of them, or ask to be added to CSBOT_ADMIN_USERS.")
AGENT_ONLY = ("Only support agents can do this. Ask an admin to add you to CSBOT_AGENT_USERS "
              "(or to the agents' user group).")
NOBODY_CONFIGURED = "nobody yet (set CSBOT_ADMIN_USERS)"
RETRAIN_STARTED = "Retraining started: {reason}. I'll post progress and the result here."
RETRAIN_SKIPPED = "Retraining skipped: {reason}."
# The report of a finished retrain (Slack, the CLI and the admins' channel).
REPORT_HEAD = "Retrain run {id} ({trigger}, {mode} mode): *{status}*"
REPORT_VERSION = ", version {version}"
REPORT_EVAL = "eval accuracy {accuracy:.1%}"
REPORT_VS_ACTIVE = " vs active {active:.1%} ({delta:+.1%})"
REPORT_EVAL_SET = " on {samples} fixed evaluation examples"
REPORT_CORRECTIONS = "corrections learned: {right}/{total} ({share:.0%})"
REPORT_IMPROVED = "improved"
REPORT_WORSE = "worse"
REPORT_GATE = "gate: {reasons}"
REPORT_LOG = "log: {line}"
REPORT_CHART_TITLE = "Retrain run {id}"
RETRAIN_FILES = "Files: {files}"

# Why a retrain was skipped (also stored with the skipped run in SQLite and logged).
SKIP_STILL_RUNNING = "a retrain is still going ({owner} on {host}, since {since})"
SKIP_NOTHING_NEW = "nothing new since the last run (no new corrections, labels, ratings or knowledge-base edits)"
SKIP_RACE = "another replica started a retrain at the same moment"
STATS_DAYS = "The period should be a number of days from 1 to {most}.\nFix: write e.g. `/csbot stats 30`."
PROMOTE_USAGE = ("`/csbot promote` needs exactly one version.\nFix: write `/csbot promote VERSION`; "
                 "`/csbot models` lists the versions.")
RETRAIN_USAGE = ("`/csbot retrain` takes only `--force` and `--mode auto|full|fast`.\n"
                 "Fix: write e.g. `/csbot retrain --force --mode full`.")
PROMOTED = "Version {active} is now active (was {previous}). Running bots switch to it within seconds."
ROLLED_BACK = "Rolled back: version {active} is active again (was {previous})."
NO_MODELS = "There are no model versions yet. Run `csbot train` or `/csbot retrain`."
REVIEW_EMPTY = "The review queue is empty: every 👎 and handoff has been labelled. 🎉"
REVIEW_HEADER = "*Review queue*: {count} item(s), oldest first"

# Agents in Slack: the "Flag wrong answer" modal, handoff buttons and the review queue
FLAG_TITLE = "Correct this answer"
FLAG_SUBMIT = "Save correction"
FLAG_CANCEL = "Cancel"
FLAG_CUSTOMER = "*The customer wrote*\n{text}"
FLAG_GUESS = "Model {version} guessed *{intent}* ({confidence}) · sentiment {sentiment}"
FLAG_INTENT_LABEL = "Correct intent"
FLAG_INTENT_PLACEHOLDER = "Search intents by name or description"
FLAG_SENTIMENT_LABEL = "Correct sentiment (optional)"
FLAG_NOTE_LABEL = "Note for the team (optional)"
FLAG_NEW_TOPIC = "None of these / new topic"
FLAG_NEED_INTENT = "Pick the correct intent (or 'None of these / new topic'), or correct the sentiment."
FLAG_NOT_OURS = ("I can't find that message among the ones I answered. Use “Flag wrong answer” on one of "
                 "my answers, or on the customer's question that I answered.")
FLAG_GONE = "That message is no longer in my records, so there is nothing to correct."
NEW_TOPIC_TEXT = "a new topic"
CORRECTED_NEW_TOPIC = ("Noted: message {message_id} is a new topic that no intent covers yet. "
                       "The team can add it to the knowledge base.")
BUTTON_ANSWER_RIGHT = "Answer was right"
BUTTON_CORRECT_INTENT = "Correct intent…"
BUTTON_LABEL = "Label"
HANDOFF_CONFIRMED = "<@{user}> confirmed the guess: {intent}"
HANDOFF_LABELLED = "<@{user}> labelled this: {intent}"
HANDOFF_NO_GUESS = "The model made no guess for this message, so there is nothing to confirm. Use “Correct intent…”."

# The HTTP endpoint, to a request that is not from Slack
BAD_REQUEST_BODY = "Bad Request: the body is not a Slack payload (not UTF-8, JSON or form data)."

# `/csbot` in Slack
RETRAIN_PHASE = "…{phase}"
RETRAIN_DONE_FALLBACK = "Retraining finished: {status}."

# App Home
HOME_TITLE = "csbot for {company}"
HOME_AGENT_INTRO = "Your dashboard: the model, the learning loop and what needs a person's eye."
HOME_QUEUE = "*Review queue*: {count} item(s) waiting for a label"
HOME_QUEUE_BUTTON = "Open review queue"
HOME_REFRESH_BUTTON = "Refresh"
HOME_CUSTOMER = ("Hi! I'm {bot_name}, {company}'s support assistant. Send me a direct message, or mention me "
                 "in a channel, and ask in your own words, for example _\"where is my order?\"_.\n"
                 "If I'm not sure, I'll ask which of two things you mean; if I can't help, a person from the "
                 "team takes over in the same thread. Tap 👍 or 👎 under my answers so I get better.")
HOME_TOPICS = "*I can help with*: {topics}"

# `csbot kb` and `csbot db`
KB_OK = "{path}: OK. {company}: {intents} intents, {examples} examples, {sentiments} sentiment examples."
PURGED = ("Purged the text of {messages} messages and {replies} replies older than {older_than}; "
          "kept {kept} labelled messages.")
PURGE_KEPT_UNREVIEWED = ("Kept {count} old message(s) still waiting in the review queue: label them "
                         "(csbot review), or purge them too with --include-unreviewed.")
PURGED_UNREVIEWED = "{count} of the purged messages were waiting in the review queue and have left it."
BACKUP_EXISTS = "{path} already exists."
BACKUP_EXISTS_FIX = "choose a new file name; backups never overwrite."
BACKED_UP = "Backed up to {path}."
