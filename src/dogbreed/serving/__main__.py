"""`python -m dogbreed.serving`: the local endpoint process (see main.py)."""

import logging
import os
import sys

from dogbreed.serving.main import main

code = main()
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
# Everything is drained, flushed and recorded: skip the interpreter's teardown, which with
# torch loaded takes seconds that teardown and redeploy would otherwise wait for.
os._exit(code)
