import os

from training.cli import main

# `csbot train` and `csbot eval` run this module; their --help should say `csbot`, not `python -m training`.
main(prog_name=os.environ.get("CSBOT_PROG_NAME") or None)
