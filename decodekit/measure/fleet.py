"""``tune`` and ``bench`` over several GPUs: local worker processes, or Ray tasks.

The work is cut into shards of (definition, batch size): every candidate of one batch size is
timed on one GPU (identical GPUs differ by a few percent, so a table whose entries compare
candidates across GPUs would rank the GPUs, not the kernels). Each shard runs in a worker:

- local (``devices=["0", "1"]``, ``decodekit tune --devices 0,1``): one process per entry,
  with ``CUDA_VISIBLE_DEVICES`` set to it (an entry may repeat: two workers on device 0);
- Ray (``ray="auto"`` or an address, ``--ray auto``): one task per shard with
  ``num_gpus=1`` (Ray sets ``CUDA_VISIBLE_DEVICES``), on any machine of the cluster.

A worker returns its rows to this process, which writes them as each shard completes: bench
records through one :class:`decodekit.records.Recorder` (one run id, one file, the same
records as a one-GPU run, each row naming in ``timed_on`` the GPU that timed it), the tuning
table once at the end from every shard's candidates (each entry names its ``timed_on``). A
worker that fails or dies is reported and its shard re-queued once; shards already written
stay written. Ctrl-C stops every worker.

>>> [s.label for s in tune_shards((1, 64))]
['gdn_decode_qk4_v8_d128_k_last B=1', 'gdn_decode_qk4_v8_d128_k_last B=64']
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

import pandas as pd

from decodekit import records

DEFINITION = "gdn_decode_qk4_v8_d128_k_last"
RETRIES = 1  # a failed shard runs once more, on whichever worker is free


class WorkerError(RuntimeError):
    """A shard's worker failed: it raised, or its process died."""


@dataclass(frozen=True)
class Shard:
    """One batch size of one definition, for ``command`` (``tune`` or ``bench``), with that
    command's other arguments in ``params`` (JSON values)."""

    command: str
    batch_size: int
    definition: str = DEFINITION
    workloads: tuple[str, ...] = ()  # bench: the uuids of this batch size
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.definition} B={self.batch_size}"

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "workloads": list(self.workloads)})

    @classmethod
    def from_json(cls, text: str) -> Shard:
        d = json.loads(text)
        return cls(**{**d, "workloads": tuple(d["workloads"])})


def tune_shards(batch_sizes: Iterable[int], **params) -> list[Shard]:
    """One shard per batch size."""
    return [Shard("tune", int(b), params=params) for b in dict.fromkeys(batch_sizes)]


def bench_shards(workloads: str | Iterable = "representative", **params) -> list[Shard]:
    """The selected workloads grouped by batch size, one shard per batch size."""
    from decodekit.problem.workloads import select

    by_b: dict[int, list[str]] = {}
    for w in select(workloads):
        by_b.setdefault(w.batch_size, []).append(w.uuid)
    return [Shard("bench", b, workloads=tuple(u), params=params) for b, u in sorted(by_b.items())]


# --- in the worker ------------------------------------------------------------------------


def _hook(spec: str | None):
    """``"module:attribute"`` (tests' stand-ins for the timer and the kernel builder)."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    obj = getattr(import_module(module), name)
    return obj() if isinstance(obj, type) else obj


def where() -> str:
    """This worker's GPU as recorded: host, visible device and the GPU's UUID where known."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    gpu = ""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f" {props.name} {str(getattr(props, 'uuid', ''))[:8]}".rstrip()
    return f"{socket.gethostname()}:cuda{visible or '0'}{gpu}"


def run_shard(shard: Shard | str) -> dict:
    """Run one shard here (a worker process or a Ray task): ``{"rows", "env", "timed_on"}``."""
    from decodekit.records.env import capture

    shard = Shard.from_json(shard) if isinstance(shard, str) else shard
    p = dict(shard.params)
    hooks = p.pop("hooks", None) or {}
    timer = _hook(hooks.get("timer"))
    device = p.pop("device", None)
    if shard.command == "tune":
        from decodekit.measure import tuning

        make = _hook(hooks.get("make")) or tuning.build
        incumbent = {int(b): c for b, c in (p.pop("incumbent", None) or {}).items()}
        df = tuning.tune(
            p.get("variants"), [shard.batch_size], p.get("configs"), p.get("preset", "quick"),
            per_batch=p.get("per_batch", 1), incumbent=incumbent or None,
            margin=p.get("margin", tuning.MARGIN), device=device, out_dir=None, verbose=False,
            timer=timer, make=make,
        )  # fmt: skip
        rows = df.to_dict("records")
    elif shard.command == "bench":
        from decodekit.measure import sweep

        df = sweep.run(
            p.get("impls"), list(shard.workloads), preset=p.get("preset", "quick"),
            methods=p.get("methods", ()), out_dir=None, progress=False, device=device,
            timer=timer, contracts=p.get("contracts", ("native",)),
        )  # fmt: skip
        # the records as this run wrote them, less the stamp the merging recorder gives
        rows = [{k: v for k, v in r.items() if k not in ("run_id", "schema")}
                for r in df.attrs["rows"]]  # fmt: skip
    else:
        raise ValueError(f"argument 'shard': command must be tune or bench, got {shard.command!r}")
    return {"rows": rows, "env": capture(device or "cuda"), "timed_on": where()}


def _worker_main(argv: list[str]) -> int:
    """``python -m decodekit.measure.fleet worker IN OUT``: the shard in IN, the result to OUT."""
    shard_path, out_path = argv
    result = run_shard(Path(shard_path).read_text())
    records.write_text(out_path, json.dumps(result, default=str))
    return 0


# --- the pools ------------------------------------------------------------------------------


class LocalWorkers:
    """One worker process per entry of ``devices``, each with ``CUDA_VISIBLE_DEVICES`` set."""

    def __init__(self, devices: Iterable[str], *, env: dict | None = None):
        self.slots = [str(d) for d in devices]
        self.env = {**os.environ, **(env or {})}
        self.tmp = tempfile.TemporaryDirectory(prefix="decodekit-fleet-")
        self.procs: dict[int, tuple[subprocess.Popen, Path, Path]] = {}
        self.n = 0

    def start(self, shard: Shard, slot: str) -> int:
        self.n += 1
        base = Path(self.tmp.name) / str(self.n)
        (inp, out, err) = (base.with_suffix(x) for x in (".in", ".out", ".err"))
        inp.write_text(shard.to_json())
        proc = subprocess.Popen(
            [sys.executable, "-m", "decodekit.measure.fleet", "worker", str(inp), str(out)],
            env={**self.env, "CUDA_VISIBLE_DEVICES": slot}, stdout=subprocess.DEVNULL,
            stderr=err.open("w"), start_new_session=True,
        )  # fmt: skip
        self.procs[self.n] = (proc, out, err)
        return self.n

    def wait(self, handles: list[int], timeout: float) -> list[tuple[int, dict | Exception]]:
        deadline = time.monotonic() + timeout
        while True:
            done = []
            for h in handles:
                proc, out, err = self.procs[h]
                if proc.poll() is None:
                    continue
                del self.procs[h]
                if proc.returncode == 0 and out.is_file():
                    done.append((h, json.loads(out.read_text())))
                else:
                    tail = err.read_text().strip().splitlines()[-1:] if err.is_file() else []
                    why = tail[0] if tail else "no message"
                    done.append((h, WorkerError(f"exit {proc.returncode}: {why}")))
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def stop(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started
                except ProcessLookupError:
                    pass
            proc.wait()
        self.procs.clear()

    def close(self) -> None:
        self.stop()
        self.tmp.cleanup()


class RayTasks:
    """One Ray task per shard with ``num_gpus=1``; Ray places them on the cluster's GPUs."""

    def __init__(self, address: str = "auto", *, init: dict | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError(
                "argument '--ray': Ray is not installed: pip install 'decodekit[ray]' (or use "
                "--devices 0,1,... for local workers)"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(**(init or {"address": address}))
        self.task = ray.remote(num_gpus=1)(run_shard)
        self.slots = None  # Ray queues every shard itself
        self.refs: dict = {}

    def start(self, shard: Shard, slot) -> object:
        ref = self.task.remote(shard.to_json())
        self.refs[ref] = shard
        return ref

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict | Exception]]:
        ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=timeout)
        out = []
        for ref in ready:
            self.refs.pop(ref, None)
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as e:  # RayTaskError, WorkerCrashedError, ...
                out.append((ref, WorkerError(str(e).strip().splitlines()[-1])))
        return out

    def stop(self) -> None:
        for ref in list(self.refs):
            self.ray.cancel(ref, force=True)
        self.refs.clear()

    def close(self) -> None:
        self.stop()


def pool(devices: Iterable[str] | None = None, ray: str | None = None, **kw):
    """The pool for ``--devices`` or ``--ray`` (exactly one of them)."""
    if (devices is None) == (ray is None):
        raise ValueError("argument '--devices': give --devices 0,1,... or --ray ADDRESS, not both")
    return RayTasks(ray, **kw) if ray is not None else LocalWorkers(devices, **kw)


def execute(
    shards: list[Shard],
    workers,
    on_result: Callable[[Shard, dict], None],
    *,
    retries: int = RETRIES,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> list[tuple[Shard, str]]:
    """Run every shard on ``workers``; ``on_result(shard, result)`` as each completes.
    Returns the shards that failed ``retries + 1`` times, with why."""
    queue = deque((s, 0) for s in shards)
    running: dict = {}
    failed: list[tuple[Shard, str]] = []
    free = list(workers.slots) if workers.slots is not None else None
    try:
        while queue or running:
            while queue and (free is None or free):
                shard, tries = queue.popleft()
                slot = free.pop(0) if free is not None else None
                running[workers.start(shard, slot)] = (shard, tries, slot)
            for handle, result in workers.wait(list(running), timeout=0.5):
                shard, tries, slot = running.pop(handle)
                if free is not None:
                    free.append(slot)
                if isinstance(result, Exception):
                    who = f"worker on device {slot}" if slot is not None else "Ray task"
                    again = tries < retries
                    log(f"{who} failed on {shard.label}: {result}"
                        + ("; re-queued" if again else "; giving up on it"))  # fmt: skip
                    if again:
                        queue.append((shard, tries + 1))
                    else:
                        failed.append((shard, str(result)))
                else:
                    on_result(shard, result)
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} worker(s)")
        raise
    finally:
        workers.close()
    return failed


# --- the commands ---------------------------------------------------------------------------


def tune(
    batch_sizes: Iterable[int], *, devices=None, ray=None, out_dir=None, pool_kw=None,
    **params,
) -> tuple[pd.DataFrame, list]:  # fmt: skip
    """``tune`` sharded by batch size; writes one table (``out_dir``, None: none) whose every
    entry names the GPU that timed it. Returns (the candidates' rows, the failed shards)."""
    from decodekit.measure.tuning import write_table

    frames, envs = [], []

    def keep(shard: Shard, result: dict) -> None:
        frames.append(pd.DataFrame(result["rows"]).assign(timed_on=result["timed_on"]))
        envs.append(result["env"])

    shards = tune_shards(batch_sizes, **params)
    failed = execute(shards, pool(devices, ray, **(pool_kw or {})), keep)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if out_dir is not None and not df.empty:
        incumbent = {int(b): c for b, c in (params.get("incumbent") or {}).items()}
        df.attrs["path"] = str(
            write_table(df, None, method=str(df["method"].iloc[0]), env=envs[0],
                        preset=params.get("preset", "quick"), out_dir=out_dir,
                        incumbent=incumbent or None, margin=params.get("margin", 0.01))
        )  # fmt: skip
    return df, failed


def bench(
    workloads="representative", *, devices=None, ray=None, out_dir=records.AUTO, pool_kw=None,
    **params,
) -> tuple[pd.DataFrame, list]:  # fmt: skip
    """``bench`` sharded by batch size: each shard's records are written through one
    recorder (one run id) as it completes. Returns (the run's records, the failed shards)."""
    rec: list[records.Recorder] = []
    rows: list[dict] = []

    def keep(shard: Shard, result: dict) -> None:
        if not rec:
            rec.append(records.Recorder(out_dir, env=result["env"]))
        rows.extend(rec[0].append([{**r, "timed_on": result["timed_on"]} for r in result["rows"]]))

    failed = execute(bench_shards(workloads, **params), pool(devices, ray, **(pool_kw or {})), keep)
    df = records.to_frame(rows)
    df.attrs["path"] = str(rec[0].path) if rec and rec[0].path else None
    return df, failed


def parse_devices(text: str | None, available: int | None = None) -> list[str] | None:
    """``"0,1"`` -> ``["0", "1"]``; each a device index below ``available`` when given."""
    if text is None:
        return None
    out = [d.strip() for d in str(text).split(",") if d.strip()]
    bad = [d for d in out if not d.isdigit() or (available is not None and int(d) >= available)]
    if not out or bad:
        seen = f"{available} visible" if available is not None else "indices"
        raise ValueError(
            f"argument '--devices': expected GPU indices like 0,1 ({seen}), got {text!r}"
        )
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit("usage: python -m decodekit.measure.fleet worker SHARD_JSON RESULT_JSON")
