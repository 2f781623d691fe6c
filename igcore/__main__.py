"""``python -m igcore``: the command line (:func:`igcore.cli.main`)."""

import atexit
import gc
import sys

# Registered before anything else, so it runs after every other exit handler (atexit runs them last in, first out):
# the interpreter's teardown then skips its cyclic collection over the objects torch, transformers and a run leave
# behind, which took longer than any other part of the exit (docs/ARCHITECTURE.md, "Process exit"). Every handler
# (Ray's shutdown, weakref finalizers, logging) has run by then; the memory goes back with the process either way.
atexit.register(gc.freeze)

from igcore.cli import INTERRUPTED, main  # noqa: E402  (after the exit hook: a handler the import registers runs before it)
from igcore.runtime import exit_now  # noqa: E402

code = main()
if code == INTERRUPTED:  # Ctrl+C: the run's folder is marked failed, but its stage threads may still be inside torch
    exit_now(code)
sys.exit(code)
