"""A function's init phase, with the cyclic garbage collector paused.

Every handler module imports this first and calls `finished()` as its last statement. Init
makes the objects a function keeps for the life of its process (boto3's service models,
pydantic's models, the hospital config); a collection run meanwhile walks them all to find next
to nothing, at a cost `make bench` shows (about a tenth of a cold start). Reference counting
frees everything else as usual while the collector is paused. In Lambda, `finished()` also
freezes what init made, so later collections skip those objects too.

The pause happens once per process, at the first import: Lambda runs one function per process;
the local stack and the tests import many handler modules, and only the first of them runs with
the collector paused."""

import gc
import os

_paused = gc.isenabled()
if _paused:
    gc.disable()


def finished() -> None:
    """The handler module is initialised: the collector runs again (after a freeze, in Lambda)."""
    global _paused
    if not _paused:
        return
    _paused = False
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        gc.freeze()
    gc.enable()
