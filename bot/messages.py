"""Every user-facing sentence csbot says, in one place (answers come from the knowledge base).

Keeping them here lets a team reword or translate the bot without touching logic,
and keeps Slack, the terminal and the logs saying the same thing.
"""

from __future__ import annotations

EMPTY_PROMPT = ("I didn't catch a question there. Tell me what you need help with, for example "
                "_\"where is my order?\"_ or _\"how do I return something?\"_")
TRUNCATED_NOTE = ("_(Your message was long, so I read the first part of it. If I missed your question, send it "
                  "again on its own.)_")
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
# The knowledge base's company texts when it leaves them out
DEFAULT_HANDOFF_TEXT = "I'm passing this to one of our support agents; someone will reply here soon."
DEFAULT_ESCALATION_TEXT = "I'm sorry about this. I've flagged your message as urgent for a senior agent."
NOTHING_TO_RATE = ("There's no answer to rate: only answers are rated, not a handoff or a question back. "
                   "Ask me something I can answer first.")
NOTHING_TO_CORRECT = "There's no message to correct yet: send one first."
CORRECTED = "Noted: message {message_id} is really '{intent}'. It will be used in the next retrain."
CORRECTED_SENTIMENT = "Noted: message {message_id} is {sentiment}. It will be used in the next retrain."
LABEL_PURGED = "Message {message_id} has had its text purged (csbot db purge), so a label cannot train on it."
LABEL_PURGED_FIX = "label a newer message; purging keeps the text of messages that are labelled before it runs."
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
    "store_unavailable": "the database was unavailable; the customer was asked to send it again",
}

# Terminal chat
CHAT_COMMANDS = ("Commands: /up, /down (rate the last answer), /correct INTENT [SENTIMENT] (fix the last "
                 "answer, as an agent; e.g. /correct refund_status negative), /intents, /quit")
CHAT_BANNER = ("{company} support bot ({bot_name}) in the terminal · model {version} on {device}\n"
               "Type a message. " + CHAT_COMMANDS)
CHAT_MODEL_SWAPPED = "(model {old} -> {new}: a retrain or an admin promoted a new version)"
CHAT_CORRECT_USAGE = ("Write /correct INTENT, /correct SENTIMENT or /correct INTENT SENTIMENT, e.g. "
                      "/correct refund_status negative; /correct new-topic when no intent fits. "
                      "/intents lists the intents.")
CHAT_NO_SLACK = ("No Slack tokens in .env (SLACK_BOT_TOKEN), so csbot is serving the same bot here in "
                 "the terminal. See the README, 'Connect to Slack', to run it in Slack.")
CHAT_CHOOSE = "Type 1 or 2 to choose, or anything else to ask again."
CHAT_BYE = "Bye! Everything from this session is saved in {db}."
CHAT_PROMPT_USER = "you> "
CHAT_PROMPT_BOT = "bot> "
CHAT_HANDOFF_NOTE = ("(In the terminal nobody is paged: the handoff is recorded, and agents find it with "
                     "`csbot review`.)")

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
AGENTS_MOOD = "{sentiment} (chance it is negative: {negative:.0%})"

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
AGENT_CHECK_SLOW = ("Slack did not confirm in time that you are in the agents' user group, so nothing was "
                    "saved. Submit again in a moment.")
NOBODY_CONFIGURED = "nobody yet (set CSBOT_ADMIN_USERS)"
VERSION_AWAITING_GATE = "built by run {run_id}; waiting for its gate"
VERSION_RUN_DIED = "run {run_id} ended before its gate (killed, out of memory or crashed); never evaluated"
RETRAIN_DISK_FULL = "The disk is full: the retrain could not write {path}. The active model was not changed."
RETRAIN_DISK_FULL_FIX = ("free space on that disk (old folders in CSBOT_DATA_DIR/runs can go; CSBOT_KEEP_VERSIONS "
                         "bounds the model versions), or move CSBOT_DATA_DIR to a larger disk; then retrain again.")
RETRAIN_CANNOT_WRITE = "The retrain could not write {path}: {error}. The active model was not changed."
RETRAIN_CANNOT_WRITE_FIX = "make CSBOT_DATA_DIR writable for the user csbot runs as, then retrain again."
RETRAIN_LEFT_RUNNING = "the bot stopped while the retrain ran; it goes on in its own process"
RETRAIN_LEFT_RUNNING_LOG = ("stopping while retrain run {run_id} (pid {pid}) trains: it goes on in its own process, "
                            "records its result and promotes if its gate passes; the next start serves that model")
RETRAIN_STARTED = "Retraining started: {reason}."
RETRAIN_THEN_SLACK = " I'll post progress and the result here."
RETRAIN_THEN_BACKGROUND = " It goes on in the background; `csbot status` shows how it went."
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
REPORT_INTENTS = "{label}: {intents}"
REPORT_INTENT_DELTA = "{intent} ({delta:+.2f})"
REPORT_GATE = "gate: {reasons}"
REPORT_WITHIN_CHANCE = ("gate: below the active model by more than the tolerance, but within chance: the active model "
                        "alone gets {only_active_right} evaluation messages right and the candidate alone "
                        "{only_candidate_right} (p = {p_value:.2f} between equally good models; "
                        "CSBOT_GATE_ALPHA = {alpha})")
REPORT_LOG = "log: {line}"
REPORT_CHART_TITLE = "Retrain run {id}"
RETRAIN_FILES = "Files: {files}"

# Why a retrain was skipped (also stored with the skipped run in SQLite and logged).
SKIP_STILL_RUNNING = "a retrain is still going ({owner} on {host}, since {since})"
SKIP_NOTHING_NEW = "nothing new since the last run (no new corrections, labels, ratings or knowledge-base edits)"
SKIP_RACE = "another replica started a retrain at the same moment"
SKIP_CLOCK_WENT_BACK = "the clocks went back an hour, and this local time already had its run"
SKIP_PREVIOUS_RUNNING = "the previous run is still going"  # this process's schedule fired during its own run
STATS_DAYS = "The period should be a number of days from 1 to {most}.\nFix: write e.g. `/csbot stats 30`."
PROMOTE_USAGE = ("`/csbot promote` needs exactly one version.\nFix: write `/csbot promote VERSION`; "
                 "`/csbot models` lists the versions.")
RETRAIN_USAGE = ("`/csbot retrain` takes only `--force` and `--mode auto|full|fast`.\n"
                 "Fix: write e.g. `/csbot retrain --force --mode full`.")
PROMOTED = "Version {active} is now active (was {previous}). Running bots switch to it within seconds."
ROLLED_BACK = "Rolled back: version {active} is active again (was {previous})."
# Why a version became active, as `csbot models` and the model_versions table record it.
REASON_PROMOTED = "promoted by {who}"
REASON_ROLLBACK = "rollback from {before} by {who}"
REASON_TRAINED = "trained and activated by `csbot train`"
WHO_ADMIN = "an admin"
WHO_CLI = "the CLI"
ALREADY_ACTIVE = "Version {version} is already active."
ALREADY_ACTIVE_FIX = "nothing to do."
ROLLBACK_AGAIN = ("{active} is active because of a rollback from {target}; rolling back again would put {target} "
                  "back.")
ROLLBACK_AGAIN_FIX = ("if {target} is what you want, run `csbot promote {target}`; for an older version, "
                      "`csbot promote VERSION` (see `csbot models list`).")
ACTIVE_CHANGED_MEANWHILE = ("The active model changed while this command ran ({before} -> {now}: another promote, "
                            "rollback or retrain), so nothing was switched.")
ACTIVE_CHANGED_MEANWHILE_FIX = "check `csbot models list`, then run the command again if it is still needed."
NO_VERSION = "none"  # where a version name would go (no active or previous version)
ADMIN_ERROR = "Error: {error}"
NO_MODELS = "There are no model versions yet. Run `csbot train` or `/csbot retrain`."
# True after labelling and after `db purge --include-unreviewed` alike (it claimed everything "has been labelled")
REVIEW_EMPTY = "The review queue is empty: no 👎 or handoff is waiting for a label."
REPLY_CUT = "_… the rest is too long for one Slack message; the CLI shows it whole._"
REVIEW_HEADER = "*Review queue*: {count} item(s), oldest first"
REVIEW_SHOWING = " (the first {shown} here)"  # after REVIEW_HEADER when the queue is longer than a page
REVIEW_LINE = "• #{message_id} [{why}] “{text}” — guess: {guess} ({created_at})"
REVIEW_DOWNVOTED = "👎"
REVIEW_GUESS = "{intent} {confidence:.0%}"
REVIEW_NO_GUESS = "no guess"
# An agent's label (the review queue, the flag modal and `csbot label`)
BAD_SENTIMENT = "'{sentiment}' is not a sentiment."
BAD_SENTIMENT_FIX = "use one of {sentiments}."
# Where to type "new topic" on each surface: the fix said to mark one without saying how
UNKNOWN_INTENT_FIX = ("pick one of the known intents, or mark it a new topic (`/correct new-topic` in the chat, "
                      "`csbot review label ID new-topic`); to teach a new intent, add it to the knowledge base and "
                      "retrain.")
NO_SUCH_MESSAGE = "There is no message {message_id}."
NO_SUCH_MESSAGE_FIX = "run `csbot review` to see the queue."

# `/csbot status` and `csbot status`
STATUS_ACTIVE = "*Active model*: {version} ({metrics})"
STATUS_METRIC = "{name} {value:.1%}"  # also in `/csbot models`
STATUS_NO_METRICS = "no metrics"
STATUS_INFERENCE = "*Inference*: {device} ({provider})"
STATUS_LAST_RETRAIN = "*Last retrain*: {run}"
STATUS_LAST_RUN = "run {id} {status} ({trigger}, {started_at})"
STATUS_NEVER = "never"
STATUS_RUNNING = " · running now: {owner}"
STATUS_NEXT_RETRAIN = "*Next retrain*: {when} · schedule {schedule}"
STATUS_NOT_SCHEDULED = "not scheduled"
STATUS_SCHEDULE = "{cron} ({timezone})"
STATUS_SCHEDULE_OFF = "off here (CSBOT_RETRAIN_CRON=off)"
STATUS_LOCAL_TIME = "local time"
STATUS_SPOOLED = ("*Waiting to be stored*: {count} vote(s) or answer timestamp(s) the database refused, kept in "
                  "{path}; the Slack app stores them once the database takes writes again")
STATUS_FEEDBACK = "*Feedback, 7 days*: {up} 👍 / {down} 👎 · {corrections} corrections · {messages} messages"
PROVIDER_NO_MODEL = "none (no active model)"
PROVIDER_LOAD_FAILED = "none (the active model does not load: {what})"

# `/csbot models` and `csbot models list`
MODELS_HEADER = "*Model versions* (newest first)"
MODELS_ROW = "• `{version}` {status}{mark}{metrics}{reason}"
MODELS_ACTIVE = " ← answering now"
MODELS_PREVIOUS = " (previous)"
MODELS_METRICS = " · {metrics}"
MODELS_REJECTED = " — {reason}"

# `/csbot stats`, `csbot stats` and App Home
STATS_HEAD = "*Last {days} days*: {messages} messages"
STATS_DECISIONS = ("• answered {answer:.0%} · clarified {clarify:.0%} · handed over {handoff:.0%} · "
                   "escalated {escalate:.0%}")
STATS_FEEDBACK = "• feedback: {up} 👍 / {down} 👎 ({helpful:.0%} helpful) · {corrections} agent corrections"
STATS_TOP_INTENTS = "• top intents: {intents}"
STATS_INTENT = "{intent} ({count})"
STATS_MOST_CORRECTED = "• most corrected: {pairs}"
STATS_CORRECTED_PAIR = "{predicted} → {correct} ({count})"

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
NOT_YOUR_QUESTION = ("Those buttons belong to the person who asked. Ask me your own question and I will answer "
                     "you (or give you the same choice).")
HANDOFF_CONFIRMED = "<@{user}> confirmed the guess: {intent}"
HANDOFF_CORRECTED = "<@{user}> corrected it: {intent}"
ALREADY_CORRECTED = "<@{agent}> already corrected this message to {intent}, so the model's guess is not the label."
ALREADY_CORRECTED_FIX = "use “Correct intent…” to change the label."
HANDOFF_LABELLED = "<@{user}> labelled this: {intent}"
HANDOFF_NO_GUESS = "The model made no guess for this message, so there is nothing to confirm. Use “Correct intent…”."

# The HTTP endpoint, to a request that is not from Slack
REFUSED_UNSIGNED = ("Refused {count} request(s) to /slack/events: the Slack signature is invalid or the timestamp is "
                    "more than 5 minutes old. If these are Slack's own requests, check SLACK_SIGNING_SECRET (the "
                    "app's Basic Information → Signing Secret) and the server's clock.")
BAD_REQUEST_BODY = "Bad Request: the body is not a Slack payload (not UTF-8, not a JSON object or not form data)."

# `/csbot` in Slack
RETRAIN_PHASE = "…{phase}"
RETRAIN_DONE_FALLBACK = "Retraining finished: {status}."

# App Home
HOME_TITLE = "csbot for {company}"
HOME_ADMIN_INTRO = "Your dashboard: the model, the learning loop and what needs a person's eye."
HOME_AGENT_INTRO = ("Your dashboard: the answers that need a person's eye. Label them here; the model learns "
                    "from your labels every night.")
HOME_QUEUE = "*Review queue*: {count} item(s) waiting for a label"
HOME_QUEUE_BUTTON = "Open review queue"
HOME_REFRESH_BUTTON = "Refresh"
HOME_CUSTOMER = ("Hi! I'm {bot_name}, {company}'s support assistant. Send me a direct message, or mention me "
                 "in a channel, and ask in your own words, for example _\"where is my order?\"_.\n"
                 "If I'm not sure, I'll ask which of two things you mean; if I can't help, a person from the "
                 "team takes over in the same thread. Tap 👍 or 👎 under my answers so I get better.")
HOME_TOPICS = "*I can help with*: {topics}"

# Before every error, wherever it is shown (the CLI, the terminal chat, Slack)
ERROR_PREFIX = "Error: "

# `csbot kb` and `csbot db`
KB_OK = "{path}: OK. {company}: {intents} intents, {examples} examples, {sentiments} sentiment examples."
PURGED = ("Purged the text of {messages} messages and {replies} replies older than {older_than}; "
          "kept {kept} labelled messages.")
PURGE_KEPT_UNREVIEWED = ("Kept {count} old message(s) still waiting in the review queue: label them "
                         "(csbot review), or purge them too with --include-unreviewed.")
PURGED_UNREVIEWED = "{count} of the purged messages were waiting in the review queue and have left it."
PURGED_RATED_UP = ("{count} of the purged messages had a 👍 answer: the nightly retrain learned from them and "
                   "no longer can (labelled and corrected ones are kept).")
BACKUP_NO_NAME = "The backup needs a file name."
BACKUP_NO_NAME_FIX = "give one, e.g. csbot db backup backups/csbot-2026-12-02.db"
BACKUP_DAMAGED = ("Copied {source} to {path}, but the copy fails SQLite's check ({problem}): the database itself is "
                  "damaged.")
BACKUP_DAMAGED_FIX = ("keep that copy, stop csbot, and rebuild what SQLite can read: sqlite3 {source} .recover | "
                      "sqlite3 recovered.db, then move recovered.db into place.")
BACKUP_EXISTS = "{path} already exists."
BACKUP_EXISTS_FIX = "choose a new file name; backups never overwrite."
BACKED_UP = "Backed up to {path}."
PURGE_AGE_INVALID = "--older-than {value!r}: {error}"
PURGE_AGE_INVALID_FIX = "write e.g. --older-than 90d."
AGE_INVALID = "invalid age {text!r}: expected a number followed by d, h or w, e.g. 90d"
AGE_ZERO = "invalid age {text!r}: must be greater than zero, e.g. 90d"
AGE_TOO_LONG = "invalid age {text!r}: at most 100 years, e.g. 90d"
BACKUP_FOLDER_FAILED = "Cannot create the folder for the backup {path}: {error}."
BACKUP_FOLDER_FAILED_FIX = "choose a path in a folder you can write to, e.g. backups/csbot.db."
BACKUP_WRITE_FAILED = "Cannot write the backup {path}: {error}."
BACKUP_WRITE_FAILED_FIX = "choose a path in a folder you can write to, with free space."
BACKUP_PATH_FIX = "choose a shorter path in a folder you can read and write, e.g. backups/csbot.db."

# `csbot retrain` and `csbot predict`
RETRAIN_LOG = "Log: {path} (pid {pid})"
TRAINING_START_FAILED = "Could not start the training process: {error}"
TRAINING_START_FAILED_FIX = ("check that the training extras are installed (pip install -e .[train]), and that "
                             "the data directory (CSBOT_DATA_DIR) is writable and its disk not full.")
PREDICT_MODEL = "model {version} on {device} ({provider}, {variant})"
PREDICT_INTENT = "  {intent:<32} {probability:6.1%}"
PREDICT_SENTIMENT = "sentiment: {sentiment} ({probabilities})"
PREDICT_SENTIMENT_PROBABILITY = "{sentiment} {probability:.0%}"
PREDICT_DECISION = "decision: {decision} ({reason}: {detail})"

# Starting the bot (`csbot serve`, `csbot up`, `make run`)
FIRST_MODEL_TRAINING = "No model yet: training the first one on the knowledge base (a few minutes on a laptop CPU)."
FIRST_MODEL_FAILED = "Training the first model failed (see the messages above)."
FIRST_MODEL_FAILED_FIX = "fix the reported problem and run `make run` again, or run `csbot train`."
NEW_MODEL_UNLOADABLE = ("could not load the new active model {version}; still serving {current} (fix it with "
                        "`csbot rollback` or `csbot promote VERSION`)")
NO_ACTIVE_MODEL = "There is no active model yet."
NO_ACTIVE_MODEL_FIX = "train one with `csbot train` (or run `make run`, which trains the first one)."
SOCKET_MODE_READY = "csbot is connected to Slack over Socket Mode (model {version}). Ctrl+C stops."
HTTP_READY = ("csbot is serving http://{host}:{port}{path} (also /healthz and /metrics), model {version}. "
              "Ctrl+C stops.")
SLACK_TOKEN_REJECTED = "Slack rejected SLACK_BOT_TOKEN ({error})."
SLACK_TOKEN_REJECTED_FIX = ("copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page "
                            "into .env; reinstall the app if it was revoked.")
SLACK_APP_TOKEN_REJECTED = "Slack rejected SLACK_APP_TOKEN ({error}): Socket Mode cannot connect."
SLACK_APP_TOKEN_REJECTED_FIX = ("copy an app-level token (xapp-..., scope connections:write) from the app's Basic "
                                "Information page into .env, and check that Socket Mode is on for the app.")
SLACK_API_UNREACHABLE = "Cannot reach the Slack Web API at {url} ({error})."
SLACK_API_UNREACHABLE_FIX = "check the network and SLACK_API_URL (default https://slack.com/api/)."

# Settings (`.env` and the environment), checked at start-up
HTTP_BIND_FAILED = "Cannot listen on {host}:{port}: {error}."
HTTP_BIND_FAILED_FIX = ("pick a free port with CSBOT_HTTP_PORT (another program, or another csbot, holds this one), "
                        "and for CSBOT_HTTP_HOST an address of this machine (0.0.0.0 listens on all of them).")
SETTING_MISSING = "{name} is not set."
SETTING_MISSING_FIX = "add {name}=... to .env (see .env.example and the README's 'Connect to Slack')."
SLACK_MODE_MISSING_FIX = ("for HTTP mode add SLACK_SIGNING_SECRET=... to .env; for Socket Mode (no public URL) add "
                          "SLACK_APP_TOKEN=xapp-... instead (see the README's 'Connect to Slack').")
TOKEN_PREFIX = "{name} should start with '{prefix}'."
TOKEN_PREFIX_FIX = "copy the right token into .env: {name} is the {kind} token."
TOKEN_KIND_BOT = "bot"
TOKEN_KIND_APP = "app-level"
AGENTS_CHANNEL_MISSING = "CSBOT_AGENTS_CHANNEL is not set, so handoffs would reach no agent."
AGENTS_CHANNEL_MISSING_FIX = ("add CSBOT_AGENTS_CHANNEL=C0123456789 (the ID of your agents' channel, "
                              "with the bot invited) to .env.")
SETTINGS_INVALID = "Invalid setting(s): {problems}"
SETTING_PROBLEM = "{name}={value!r}: {problem}"
SETTINGS_INVALID_FIX = "fix the value in .env or the environment (see .env.example)."
ENV_FILE_NOT_UTF8 = "{path} is not UTF-8 text: byte 0x{byte:02x} on line {line}."
ENV_FILE_NOT_UTF8_FIX = "save {path} as UTF-8 (most editors have 'Save with encoding'), or retype that character."
ENV_FILE_UTF16 = "{path} is UTF-16 text (or holds NUL bytes), not UTF-8: no setting in it would be read."
ENV_FILE_UTF16_FIX = ("save {path} as UTF-8 (most editors have 'Save with encoding'), or convert it: "
                      "iconv -f UTF-16 -t UTF-8 {path} > {path}.utf8 && mv {path}.utf8 {path}")
ENV_FILE_UNREADABLE = "Cannot read {path}: {error}."
ENV_FILE_UNREADABLE_FIX = "make {path} a readable file (see .env.example for what it holds), or remove it."
SLACK_API_URL_INVALID = "must be an http(s) URL, e.g. https://slack.com/api/"
LOCAL_TIMEZONE_UNKNOWN = "This machine's time zone cannot be read ({error})."
LOCAL_TIMEZONE_UNKNOWN_FIX = ("set CSBOT_TIMEZONE to an IANA name, e.g. CSBOT_TIMEZONE=Europe/Berlin, or fix TZ "
                              "(unset it, or use a name such as TZ=UTC, not a POSIX rule like UTC+3).")
TIMEZONE_UNKNOWN = "CSBOT_TIMEZONE={name!r} is not a known time zone."
TIMEZONE_UNKNOWN_FIX = ("use an IANA name such as Europe/Paris or America/New_York, or leave it empty "
                        "for the machine's local time.")
RETRAIN_OVERRUN = ("Error: the retrain ran longer than CSBOT_RETRAIN_MAX_MINUTES ({minutes:g} min) and was "
                   "stopped.\n")
RETRAIN_OVERRUN_FIX = ("Fix: look at the run's train.log for where it hung; if the data simply grew, raise "
                       "CSBOT_RETRAIN_MAX_MINUTES, or run `csbot retrain --mode fast` (it trains the heads only, "
                       "and runs in full when the intents changed).")
TRAIN_LOCKED = "Another training holds the lock ({owner} on {host}, since {since}), so csbot train would clash with it."
TRAIN_LOCKED_FIX = ("wait for it to finish (`csbot status` shows it), or pass --out DIR to train into a folder "
                    "outside the model registry.")
SCHEDULE_OFF = "nightly retrain off in this process (CSBOT_RETRAIN_CRON=off)"
SCHEDULE_NO_TRAINING = ("nightly retrain not scheduled in this process: the training packages (torch, transformers) "
                        "are not installed here, so this replica only serves. Install them with "
                        "pip install -e '.[train]' to train here, or let a replica that has them run the schedule "
                        "(set CSBOT_RETRAIN_CRON=off here to silence this).")
TRAINING_NOT_INSTALLED = "This installation cannot train: the training packages (torch, transformers) are missing."
TRAINING_NOT_INSTALLED_FIX = ("install them with pip install -e '.[train]' (make run does), or run the retrain "
                              "on a replica that has them.")
DB_BUSY = "{path} is busy: another process held its write lock for over {seconds:g} s (nothing was changed)."
DB_BUSY_FIX = ("wait for the other csbot command (a purge, a backup or a retrain) to finish and try again; "
               "do not move the file, it holds every message and correction.")
DB_FULL = "The disk that holds {path} is full, so csbot cannot write to its database."
DB_FULL_FIX = "free some space on that disk (old runs in the data folder's runs/ can go), then try again."
DB_CANNOT_WRITE = "{path} cannot be opened for writing ({error})."
DB_CANNOT_WRITE_FIX = ("check that the user running csbot may read and write the file and its folder, or set "
                       "CSBOT_DATA_DIR to a folder it may write to.")
DATA_DIR_CANNOT_CREATE = "Cannot create the data folder {path} ({error})."
DATA_DIR_CANNOT_CREATE_FIX = "set CSBOT_DATA_DIR to a folder csbot may write to, e.g. var/."
DB_DAMAGED = "{path} cannot be opened as a csbot database ({error})."
DB_DAMAGED_FIX = ("move the file away (csbot creates a new one), or restore a copy made with `csbot db backup`; "
                  "to use another folder set CSBOT_DATA_DIR.")
DB_NEWER = "{path} was written by a newer csbot (schema version {version}; this one knows {known})."
DB_NEWER_FIX = ("upgrade csbot on this machine (git pull && make run), or point CSBOT_DATA_DIR at a database of this "
                "version; a backup made before the upgrade (`csbot db backup`) also opens.")
CRON_INVALID = "CSBOT_RETRAIN_CRON={cron!r} is not a valid cron expression ({error})."
CRON_INVALID_FIX = "write five fields: minute hour day month weekday, e.g. '0 2 * * *' for 02:00."

# Knowledge-base validation (`csbot kb check`, start-up): each problem names the file and line
KB_PROBLEM = "{file}{line}: {problem}"
KB_PROBLEM_LINE = ":{line}"
KB_UNKNOWN_INTENT = "unknown intent '{name}'; known: {known}"
KB_CANNOT_READ = "cannot read the file ({error})"
KB_RELOADED = "knowledge base {path} reloaded: {intents} intents; edited answers apply from the next message"
# The error ends with its own Fix (every problem, and `csbot kb check`): a second instruction after it repeated it
KB_RELOAD_KEPT = ("the edited knowledge base is not valid, so the one loaded before keeps serving (the bot re-reads "
                  "the file when it is saved again): {error}")
KB_CANNOT_READ_FIX = ("give the path of a readable YAML file (`csbot kb check PATH`, or CSBOT_KB_PATH in .env); "
                      "leave CSBOT_KB_PATH empty for the bundled knowledge base.")
KB_UTF16 = ("{file}: the file is UTF-16 text (or holds NUL bytes), not UTF-8; save it as UTF-8, or convert it: "
            "iconv -f UTF-16 -t UTF-8 {path} > converted.yaml")
KB_NOT_UTF8 = "{file}: the file is not UTF-8 text ({reason} at byte {start}); save it as UTF-8"
KB_TOO_DEEP = ("{file}: bad YAML: nested hundreds of levels deep, which no knowledge base is (look for a run of "
               "unclosed brackets)")
KB_BAD_YAML = ("{where}: bad YAML: {problem} (check indentation and quote strings that contain ': ' or start "
               "with '*', '&', '!' or '#')")
KB_NOT_MAPPING = "{what} should be a mapping of keys to values"
KB_UNKNOWN_KEY = "unknown key '{key}' in {what}; allowed keys: {allowed}"
KB_KEY_TWICE = "key '{key}' appears twice in {what}; keep one"
KB_KEY_MISSING = "{what} is missing '{key}'; add it"
KB_NOT_TEXT = "{what} should be non-empty text"
KB_KEY_NOT_NAME = "a key of {what} is a list or mapping, not a name; use one of: {allowed}"
KB_NOT_LIST = "{what} should be a list (lines starting with '- ')"
KB_NOT_BOOLEAN = "{what} should be true or false"
KB_NO_INTENTS = "intents should be a non-empty list of intents"
KB_INTENT_NAME = "intent name '{name}' should be snake_case (a-z, 0-9, _)"
KB_INTENT_NAME_LONG = ("intent name '{name}…' is {length} characters; at most {most} fit in Slack's menus, "
                       "shorten it")
KB_INTENT_RESERVED = ("intent name '{name}' is reserved: agents type it to mark a message as a new topic; "
                      "rename the intent (e.g. '{name}_question')")
KB_INTENT_TWICE = "intent '{name}' is defined twice; merge the two or rename one"
KB_NO_EXAMPLES = "{label} has no examples; add at least {minimum} phrasings"
KB_FEW_EXAMPLES = "{label} has {count} examples; add at least {minimum} varied phrasings"
KB_EXAMPLE_TWICE = "example \"{text}\" is listed twice under {label}; remove one"
KB_EXAMPLE_SHARED = "example \"{text}\" is listed under {first} and {label}; keep it under one intent only"
KB_SENTIMENT_SHARED = ("sentiment example \"{text}\" is listed under {first} and {sentiment}; keep it under "
                       "one sentiment only")
KB_UNKNOWN_FOLLOW_UP = "{label} follows up with unknown intent '{ref}'; use one of the intent names"
KB_LINKS_NOT_LIST = "{label} links should be a list of {{title, url}}"
KB_LINK_URL = "link url '{url}' should start with https://, http:// or mailto:"
# What the problems above call the parts of the file
KB_WHAT_TOP_LEVEL = "the top level"
KB_WHAT_INTENT = "an intent"
KB_WHAT_INTENT_LABEL = "intent '{name}'"
KB_WHAT_ENTRY = "an entry of {what}"
KB_WHAT_LINK = "a link of {label}"
# Logged at ERROR when the post to the agents' channel failed past its retries (bot.slack.handoff)
HANDOFF_PAGE_FAILED = ("a conversation needs a person, but posting it to the agents' channel {channel} failed, so "
                       "no one was paged: {link} (the Slack error is logged above; check that the bot is a member "
                       "of {channel} and that Slack is up)")
# `csbot db backup|purge` on a data directory without a database: opening the Store would create an empty one
DB_MISSING = "There is no database at {path}, so there is nothing to {action}."
DB_MISSING_FIX = ("check CSBOT_DATA_DIR (in the environment or .env): it should name the folder the bot writes to, "
                  "the one holding csbot.db.")
# Logged at WARNING by `csbot db purge` when the WAL could not be emptied (bot.store_retention)
PURGE_WAL_KEPT = ("the purge is done, but {path}-wal could not be emptied ({why}), so the purged text stays in it "
                  "until the next checkpoint; run the purge again when the bot is quiet to empty it")

# --- retrain runs: stopped, and followed from the CLI
RUN_STOPPED_BY_SIGNAL = ("the retrain was stopped by {signal} (a `kill`, a shutdown or a service stop); "
                         "the active model is unchanged")
RETRAIN_DETACHED = ("Stopped waiting. Run {run_id} goes on in the background (pid {pid}, log {path}); `csbot status` "
                    "shows how it went, and `kill {pid}` stops it (the active model stays as it is).")

# `models list` and `status` when the active version does not load (bot.admin): not "answering now", and one
# plain inference line instead of "CPU (none (...))"
MODELS_NOT_LOADING = " ← does not load"
MODELS_LOAD_PROBLEM = " — {what}"
STATUS_INFERENCE_NONE = "*Inference*: none · {problem}"
INFERENCE_NO_MODEL = "no active model"
INFERENCE_LOAD_FAILED = "the active model does not load: {what}"

# `stats` (bot.stats): a correction to "none of these" under the name agents pick, not the stored sentinel
STATS_NEW_TOPIC = "new topic"

# `csbot predict --model X` when X does not load as a model (bot.cli_train): the active model is not involved,
# so not the registry's "promote or roll back" fix
PREDICT_MODEL_FIX = ("pass --model a folder written by `csbot train` (e.g. `csbot train --out var/mine`) or a "
                     "version name from `csbot models list`; without --model, predict uses the active version.")
