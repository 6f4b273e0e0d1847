"""How one call is timed: every timing method of the kit, stated once.

One *sample* is one call of a :class:`Target` (an implementation with its arguments bound).
A *trial* is ``n_warmup`` untimed calls, then ``n_iter`` samples. Times are microseconds.

================  =======================================================  ==========  ==========
method            one sample is                                            L2          host time
================  =======================================================  ==========  ==========
``cupti-cold``    CUPTI activity of the GPU work launched by the call      flushed     excluded
                  (kernels, memcpy, memset): span first start..last end;
                  the sum of durations is kept as ``sum_us``
``events-cold``   CUDA events around the call, its launch pre-queued       flushed     excluded
                  behind a GPU sleep so the host is done before it runs
``graph-hot``     one replay of a CUDA graph of ``graph_calls`` calls,     warm        excluded
                  timed with events, divided by ``graph_calls``
``host-dispatch`` wall clock around the Python call, no sync: the time     n/a         only host
                  until the work is enqueued (GPU idle before each call)
``host-steady``   wall clock over ``steady_calls`` back-to-back calls,       n/a         only host
                  divided by their number, GPU drained between samples:
                  the host cost per call in steady state
``wall``          sync, wall clock, call, sync: end-to-end synchronous     flushed     included
``fib-0.1.2``     flashinfer-bench 0.1.2: 256 MiB zeroed, every argument   warm state  included
                  cloned, sync, event, call, event
================  =======================================================  ==========  ==========

"Flushed" means a buffer twice the L2 size is zeroed before each call (as flashinfer-bench
main does), after the L2's persisting lines are made normal (an evict_last store's lines
would outlive the zeroing: :func:`reset_persisting_l2`). ``cupti-cold`` lives in
:mod:`decodekit.measure.cupti_timer`. Timers are injectable: any object with
``unavailable(method, device)`` and ``trial(method, target, n_warmup, n_iter)`` can stand in
for :class:`DeviceTimer` (tests use a fake clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from decodekit.measure.trial import Samples, Target, Timer  # noqa: F401  (this API)

METHODS = (
    "cupti-cold", "events-cold", "graph-hot", "host-dispatch", "host-steady", "wall", "fib-0.1.2",
)  # fmt: skip
COLD_METHODS = ("cupti-cold", "events-cold")
# The one preference order for "the kernel's time" when a caller names no method: every
# view, table, score and comparison takes the first of these that the records hold.
DEFAULT_METHODS = ("cupti-cold", "events-cold", "fib-0.1.2", "graph-hot", "wall")
# Why each method moves the same kernel's figure, one line each (views and notebooks show it).
WHY = {
    "cupti-cold": "GPU time only, cold L2: the contest's number (flashinfer-bench main)",
    "events-cold": "as cupti-cold plus the overhead of the two events (a few µs)",
    "graph-hot": "launch gaps removed by graph replay, state warm in L2: can beat the cold floor",
    "host-dispatch": "Python and the launch API only: what the CPU pays per call",
    "host-steady": "as host-dispatch, back to back: the per-call host cost of a serving loop",
    "wall": "host dispatch + launch latency + kernel + sync: what a caller waits",
    "fib-0.1.2": "events after a sync with fresh argument clones: host launch and argument"
    " checks inside, state warm in L2 (flashinfer-bench 0.1.2, the seed's harness)",
}
HOST_METHODS = ("host-dispatch", "host-steady", "wall")  # these also run on the CPU
# These flush L2 before every call; a ``before`` hook of the caller runs right after the flush.
BEFORE_METHODS = ("cupti-cold", "events-cold", "wall")


def reset_persisting_l2(device: torch.device) -> None:
    """Make every persisting L2 line of ``device``'s context normal again
    (``cuCtxResetPersistingL2Cache``): the lines of PTX stores with an L2 evict_last policy
    too, which a flush of normal stores does not evict (H200, 2026-12-04: a plain pool copy
    ran 8.04 µs after one such store and a flush, 9.20 after a plain one, 9.18 with this
    reset; data/experiments/2026-12-04_store-evict-last/)."""
    from cuda.bindings import driver

    with torch.cuda.device(device):
        (err,) = driver.cuCtxResetPersistingL2Cache()
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"cuCtxResetPersistingL2Cache on {device}: {err.name}")


def _elapsed_us(starts: list, ends: list) -> list[float]:
    return [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends, strict=True)]


class DeviceTimer:
    """The kit's timer: every method of the table above on a CUDA device; ``host-dispatch``
    and ``wall`` on the CPU too. ``clock`` (seconds) is injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        graph_calls: int = 20,
        min_sleep_us: float = 30.0,
        steady_calls: int = 50,
    ):
        self.clock = clock
        self.graph_calls = graph_calls
        self.steady_calls = steady_calls
        self.min_sleep_us = min_sleep_us
        self._flush_buf: dict[torch.device, torch.Tensor] = {}
        self._cycles_per_us: dict[torch.device, float] = {}
        self._cupti_why: str | None | bool = False  # False: not probed yet

    def unavailable(self, method: str, device: torch.device) -> str | None:
        if method not in METHODS:
            return f"unknown timing method {method!r}; known: {', '.join(METHODS)}"
        if torch.device(device).type != "cuda" and method not in HOST_METHODS:
            return f"method {method!r} needs a CUDA device"
        if method == "cupti-cold":
            if self._cupti_why is False:
                from decodekit.measure.cupti_timer import probe

                self._cupti_why = probe()
            return self._cupti_why
        return None

    def trial(
        self,
        method: str,
        target: Target,
        n_warmup: int,
        n_iter: int,
        before: Callable[[], None] | None = None,
    ) -> Samples:
        """One trial; ``before()`` runs after each L2 flush and before the call, untimed (the
        methods that flush: :data:`BEFORE_METHODS`)."""
        why = self.unavailable(method, target.device)
        if why:
            raise RuntimeError(why)
        flush = self.flush
        if before is not None:
            if method not in BEFORE_METHODS:
                raise ValueError(
                    f"argument 'before': expected a method that flushes before each call "
                    f"({', '.join(BEFORE_METHODS)}), got {method!r}"
                )

            def flush(device: torch.device) -> None:
                self.flush(device)
                before()

        if method == "cupti-cold":
            from decodekit.measure.cupti_timer import cupti_trial

            return cupti_trial(target, n_warmup, n_iter, flush, self.sync)
        if method in BEFORE_METHODS:
            return {"events-cold": self._events_cold, "wall": self._wall}[method](
                target, n_warmup, n_iter, flush
            )
        run = {
            "graph-hot": self._graph_hot,
            "host-dispatch": self._host_dispatch,
            "host-steady": self._host_steady,
            "wall": self._wall,
            "fib-0.1.2": self._fib_012,
        }[method]
        return run(target, n_warmup, n_iter)

    def sync(self, device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def flush(self, device: torch.device) -> None:
        """Evict L2: the device drained, its persisting lines made normal
        (:func:`reset_persisting_l2`), then a buffer twice the L2 zeroed (flashinfer-bench
        main's policy). Without the reset, lines a kernel stored with an L2 evict_last policy
        outlive the zeroing, and the next "cold" call reads them from L2."""
        if device.type != "cuda":
            return
        if device not in self._flush_buf:
            l2 = torch.cuda.get_device_properties(device).L2_cache_size or 64 << 20
            self._flush_buf[device] = torch.empty(2 * l2, dtype=torch.int8, device=device)
        torch.cuda.synchronize(device)  # the reset acts at once, not in stream order
        reset_persisting_l2(device)
        self._flush_buf[device].zero_()

    def _sleep_cycles(self, device: torch.device, us: float) -> int:
        if device not in self._cycles_per_us:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda._sleep(1000)
            n = 2_000_000
            s.record()
            torch.cuda._sleep(n)
            e.record()
            e.synchronize()
            self._cycles_per_us[device] = n / (s.elapsed_time(e) * 1e3)
        return int(us * self._cycles_per_us[device])

    def _events_cold(self, t: Target, n_warmup: int, n_iter: int, flush=None) -> Samples:
        flush = flush or self.flush
        dev = t.device
        for _ in range(n_warmup):
            flush(dev)
            t()
        self.sync(dev)
        t0 = self.clock()
        t()
        host_us = (self.clock() - t0) * 1e6
        self.sync(dev)
        # The sleep must outlast the host's enqueue of record + call + record.
        sleep_us = max(self.min_sleep_us, 4 * host_us + 20)
        cycles = self._sleep_cycles(dev, sleep_us)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        late = []
        for i in range(n_iter):
            flush(dev)
            torch.cuda._sleep(cycles)
            h0 = self.clock()
            starts[i].record()
            t()
            ends[i].record()
            late.append(float((self.clock() - h0) * 1e6 > sleep_us))
            self.sync(dev)
        return Samples(_elapsed_us(starts, ends), {"prequeue_missed": late})

    def _graph_hot(self, t: Target, n_warmup: int, n_iter: int) -> Samples:
        dev = t.device
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(max(n_warmup, 3)):
                t()
        torch.cuda.current_stream(dev).wait_stream(side)
        self.sync(dev)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(self.graph_calls):
                t()
        for _ in range(max(n_warmup, 1)):
            graph.replay()
        self.sync(dev)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        for i in range(n_iter):
            starts[i].record()
            graph.replay()
            ends[i].record()
        self.sync(dev)
        del graph
        return Samples([us / self.graph_calls for us in _elapsed_us(starts, ends)])

    def _host_dispatch(self, t: Target, n_warmup: int, n_iter: int) -> Samples:
        for _ in range(n_warmup):
            t()
        us = []
        for _ in range(n_iter):
            # Idle GPU and an empty queue before each call, so a full launch queue never
            # blocks the call being timed.
            self.sync(t.device)
            t0 = self.clock()
            t()
            us.append((self.clock() - t0) * 1e6)
        self.sync(t.device)
        return Samples(us)

    def _host_steady(self, t: Target, n_warmup: int, n_iter: int) -> Samples:
        for _ in range(n_warmup):
            t()
        self.sync(t.device)
        us = []
        for _ in range(n_iter):
            # the GPU drained before each batch, so a full launch queue never blocks the host
            t0 = self.clock()
            for _ in range(self.steady_calls):
                t()
            us.append((self.clock() - t0) * 1e6 / self.steady_calls)
            self.sync(t.device)
        return Samples(us)

    def _wall(self, t: Target, n_warmup: int, n_iter: int, flush=None) -> Samples:
        flush = flush or self.flush
        for _ in range(n_warmup):
            t()
        us = []
        for _ in range(n_iter):
            flush(t.device)
            self.sync(t.device)
            t0 = self.clock()
            t()
            self.sync(t.device)
            us.append((self.clock() - t0) * 1e6)
        return Samples(us)

    def _fib_012(self, t: Target, n_warmup: int, n_iter: int) -> Samples:
        # flashinfer-bench 0.1.2 do_bench(setup=clone): the 256 MiB zeroing comes before the
        # clones, so the clone leaves the arguments (the state) warm in L2.
        dev = t.device
        cache = torch.empty(256 << 18, dtype=torch.int32, device=dev)
        for _ in range(n_warmup):
            cache.zero_()
            t.fn(**t.cloned())
        self.sync(dev)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_iter)]
        for i in range(n_iter):
            cache.zero_()
            args = t.cloned()
            self.sync(dev)
            starts[i].record()
            t.fn(**args)
            ends[i].record()
        self.sync(dev)
        return Samples(_elapsed_us(starts, ends))
