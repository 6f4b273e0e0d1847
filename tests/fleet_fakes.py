"""Stand-ins that the fleet's worker processes import by name (``tests/test_fleet.py``):
a timer and a kernel builder with no GPU, and timers that fail the way workers fail."""

import os
from pathlib import Path

from decodekit.measure.timing import Samples

US = {"rowsplit": 5.0, "bulk": 4.0}


class Timer:
    """Latency from the candidate's variant (3 us for anything else): no GPU needed."""

    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        return Samples([US.get(getattr(target.fn, "variant", ""), 3.0)] * n_iter)


class FlakyTimer(Timer):
    """The first worker that builds one raises; every later one works."""

    def __init__(self):
        marker = Path(os.environ["FLEET_MARKER"])
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("flaky worker: failed on purpose")


class DyingTimer(Timer):
    """The worker's process dies while timing batch size 4."""

    def trial(self, method, target, n_warmup, n_iter):
        if target.kwargs["q"].shape[0] == 4:
            os._exit(3)
        return super().trial(method, target, n_warmup, n_iter)


def make(variant, defines):
    from decodekit.problem.reference import gdn_decode

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
        output.copy_(o)
        new_state.copy_(s)

    run.variant = variant
    return run


class SleepyTimer(Timer):
    """A worker that writes its pid and then takes far longer than any test waits."""

    def __init__(self):
        Path(os.environ["FLEET_MARKER"], str(os.getpid())).write_text("")
        import time

        time.sleep(600)
