"""The commands that run measurements: ``decodekit bench`` and ``decodekit tune``, on one GPU
or spread over several (:mod:`decodekit.measure.fleet`); the CLI (:mod:`decodekit.cli`) parses
their arguments and calls these.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from decodekit import records
from decodekit.measure import fleet, tuning
from decodekit.measure.sweep import _impls, _names, run, speedups, table, tuning_note
from decodekit.measure.tuning import (
    BATCH_SIZES,
    MARGIN,
    TUNING_DIR,
    _label,
    load_table,
    quick_space,
    table_path,
    this_gpu,
    winners,
)


def bench_family(
    definition: str,
    impls: Iterable[str],
    workloads: str = "all",
    preset: str = "contest",
    out_dir=records.AUTO,
    as_json: bool = False,
) -> int:
    """``decodekit bench --definition NAME``: the member's cases, each implementation
    (``kit``, ``best``, ``torch-fp32``, a peer) checked with the member's contracts and timed,
    beside the member's floors, in one run (:func:`decodekit.measure.family_bench.bench_member`);
    a peer that cannot run the member is recorded with why. Returns 1 when a check failed or
    a timing errored."""
    import json

    from decodekit.impls import family_peers
    from decodekit.impls.family_kernels import build_defines, implementation, needs_gpu
    from decodekit.measure.family_bench import bench_member
    from decodekit.problem import family
    from decodekit.records.schema import Status
    from decodekit.views.family_tables import table

    member = family.parse(definition)
    built, cannot = {}, {}
    for name in impls:
        if name in family_peers.PEERS and family_peers.why_not(name, member):
            api = family_peers.supports(name, member)  # no such call, or not installed here
            status = Status.UNSUPPORTED if api else Status.UNAVAILABLE
            cannot[name] = (status, api or family_peers.why_not(name, member))
            print(f"{name}: {status.value} for {member.name}: {cannot[name][1]}")
        elif why := needs_gpu(name):
            if name.startswith("family["):
                build_defines(name)  # a misspelt build is an error, GPU or not
            raise RuntimeError(f"bench --impl {why}")
        else:
            built[name] = implementation(name, member)
    sizes = None
    if workloads not in ("all", "representative", "contest"):
        sizes = set(family.parse_batch_sizes(workloads, "--workloads"))
    rows = bench_member(member, built, preset, batch_sizes=sizes, out_dir=out_dir, cannot=cannot)
    if as_json:
        for r in rows:
            print(json.dumps(r, default=str))
    else:
        print(f"{member.name}: median latency (µs), preset {preset}, mean over each B's cases")
        print(table(rows).to_string())
        print(f"records: {rows[0].get('run_id') if rows else 'none'}")
    bad = [r for r in rows if r["status"] in ("check-failed", "error")]
    for r in bad:
        print(f"{r['impl']} B={r['batch_size']}: {r['status']}: {str(r.get('note'))[:300]}")
    return 1 if bad or not rows else 0


def bench(
    impls: Iterable | str | None,
    workloads: str | Iterable = "representative",
    preset: str = "quick",
    methods: Iterable[str] | str | None = (),
    out_dir=records.AUTO,
    contracts: Iterable[str] | str | None = ("native",),
    rounds: int = 1,
    as_json: bool = False,
    devices: str | None = None,
    ray: str | None = None,
) -> int:
    """``decodekit bench``: run the sweep, print a headline (tuned or not), a compact
    impl x batch-size table, flagged kernel sets and where the records went (``as_json``:
    the records as JSON lines instead). ``devices`` (``"0,1"``) or ``ray`` (an address or
    ``auto``): the batch sizes spread over local worker processes or Ray tasks, one run
    (:mod:`decodekit.measure.fleet`). Returns 1 when a check failed, a timing errored, a shard
    failed or nothing was measured (a run that measured nothing leaves no file behind),
    else 0."""
    from decodekit.measure import get_preset
    from decodekit.measure.timing import HOST_METHODS

    p = get_preset(preset)
    wanted = [p.method, *_names(methods)]
    local = ray is None
    if local and not torch.cuda.is_available() and not any(m in HOST_METHODS for m in wanted):
        raise RuntimeError(
            f"bench --preset {preset} times with {p.method}, which needs a CUDA GPU "
            "(torch.cuda.is_available() is False); without one only host methods run: "
            "--methods wall,host-dispatch"
        )
    failed = []
    if devices is None and ray is None:
        df = run(impls, workloads, preset=preset, methods=methods, out_dir=out_dir,
                 contracts=contracts, rounds=rounds)  # fmt: skip
    else:
        if rounds > 1:
            raise ValueError("argument '--repeat-interleaved': runs on one GPU, not --devices")
        devs = fleet.parse_devices(devices, torch.cuda.device_count() if local else None)
        df, failed = fleet.bench(
            workloads, devices=devs, ray=ray, out_dir=out_dir, impls=_impls(impls),
            preset=preset, methods=_names(methods), contracts=_names(contracts) or ["native"],
        )  # fmt: skip
        for shard, why in failed:
            print(f"{shard.label}: not measured: {why}")
    measured = (df["status"] == "ok") & ~records.is_floor(df)
    path = df.attrs.get("path")
    if not measured.any() and path and Path(path).exists():
        Path(path).unlink()  # nothing measured: no file of "unavailable" rows in data/
        df.attrs["path"] = None
    if as_json:
        print(
            df.drop(columns=["provenance"], errors="ignore").to_json(orient="records", lines=True)
        )
        return 0 if measured.any() else 1
    head = df[measured]
    method = head["method"].iloc[0] if len(head) else None
    note = tuning_note(df)
    if note:
        print(note)
    print(f"median latency (us), method {method}, preset {preset}, mean over each B's workloads")
    print(table(df, method).to_string())
    fast = speedups(df, method=method)
    if not fast.empty:
        print(f"\nhow much faster best is, geomean over each B's workloads ({method}):")
        print(fast.to_string())
    if "kernel_flag" in df:
        for (impl, flag), _ in df[df["kernel_flag"].notna()].groupby(["impl", "kernel_flag"]):
            print(f"{impl}: {flag}")
    bad = df[df["status"].isin(["check-failed", "unavailable", "error"])].fillna({"note": ""})
    for (impl, method, status, note), g in bad.groupby(
        ["impl", "method", "status", "note"], sort=False
    ):
        where = ", ".join(str(w) for w in g["workload"].dropna()) or "-"
        print(f"{impl} [{method}] {status} on {where}: {note}")
    if df.attrs.get("path"):
        print(f"records: {df.attrs['path']}")
    elif not measured.any():
        print("nothing was measured: no records written")
        return 1
    return int(df["status"].isin(["check-failed", "error"]).any() or bool(failed))


def tune(
    batch_sizes: Iterable[int] = BATCH_SIZES,
    preset: str = "quick",
    variants: Iterable[str] | None = None,
    configs: str | list | None = None,
    per_batch: int = 1,
    fresh: bool = False,
    margin: float = MARGIN,
    quick: bool = False,
    out_dir: str | Path = TUNING_DIR,
    devices: str | None = None,
    ray: str | None = None,
) -> int:
    """``decodekit tune``: run the sweep, write the table, print the winners and every
    candidate that failed. Unless ``fresh``, this GPU's current table is the incumbent.
    ``quick``: the candidates of :func:`quick_space` for this GPU's architecture, one
    workload per batch size. ``devices`` (``"0,1"``) or ``ray`` (an address or ``auto``):
    the batch sizes spread over local worker processes or Ray tasks
    (:mod:`decodekit.measure.fleet`). Returns 0 when every batch size has a winner, else 1 (2
    without a GPU, with the reason)."""
    if ray is None and not torch.cuda.is_available():
        raise RuntimeError(
            "tune needs a CUDA GPU (torch.cuda.is_available() is False); on a GPU machine: "
            "decodekit tune --quick (or --ray ADDRESS for a cluster's GPUs)"
        )
    local = torch.cuda.is_available()
    devs = fleet.parse_devices(devices, torch.cuda.device_count() if local else None)
    sizes = [int(b) for b in batch_sizes]
    if quick:
        if not local:
            raise ValueError(
                "argument '--quick': picks candidates for this machine's GPU architecture, and "
                "no GPU is visible here; with --ray from such a machine give --configs"
            )
        configs, per_batch = quick_space(this_gpu()["capability"]), 1
    incumbent = None if fresh or not local else load_table(table_path(directory=out_dir))
    if devs is None and ray is None:
        df = tuning.tune(
            variants, sizes, configs, preset, per_batch=per_batch, incumbent=incumbent,
            margin=margin, out_dir=out_dir,
        )  # fmt: skip
        failed = []
    else:
        df, failed = fleet.tune(
            sizes, devices=devs, ray=ray, out_dir=out_dir, variants=variants, configs=configs,
            preset=preset, per_batch=per_batch, margin=margin,
            incumbent={str(b): c for b, c in (incumbent or {}).items()},
        )  # fmt: skip
        if df.attrs.get("path"):
            print(f"wrote {df.attrs['path']}")
    table = winners(df, incumbent, margin) if not df.empty else {}
    for b, c in sorted(table.items()):
        kept = f"  ({c['kept']})" if "kept" in c else ""
        print(f"B={b:<4} {c['latency_us']:8.2f} us  {c['variant']}[{_label(c['defines'])}]{kept}")
    for r in df[df["status"] != "ok"].itertuples() if not df.empty else ():
        print(f"B={r.batch_size} {r.workload} {r.config}: {r.status}: {str(r.note)[:300]}")
    for shard, why in failed:
        print(f"{shard.label}: not tuned: {why}")
    return 0 if len(table) == len(set(sizes)) else 1


def tune_family(definition: str, preset: str = "quick", batch_sizes: str | None = None,
                quick: bool = False, margin: float = MARGIN, out_dir=None,
                given: dict | None = None, configs: str | None = None) -> int:  # fmt: skip
    """``decodekit tune --definition NAME``: the family kernel tuned for one member
    (:func:`decodekit.measure.family_tune.tune_member`), one case per batch size (default the
    manifest's), over ``configs``: ``full`` (the default), ``quick`` (also with ``quick``) or a JSON
    file of candidates (:func:`~decodekit.impls.family_tuning.load_candidates`); ``given``
    are the contest tune's flags, each an error here when set, but ``--fresh`` (the kernel's
    defaults as every size's incumbent, not this GPU's table). 0 when every size has a
    winner."""
    from decodekit.impls.family_tuning import load_candidates
    from decodekit.measure.family_tune import tune_member
    from decodekit.problem import family

    member = family.parse(definition)
    given = dict(given or {})
    fresh = bool(given.pop("--fresh", None))
    for flag, value in given.items():
        if value is not None:
            raise ValueError(f"argument '{flag}': expected nothing with --definition (one "
                             f"kernel, one case per batch size, one GPU), got {value!r}")  # fmt: skip
    if configs in (None, "full", "quick"):
        space = "quick" if quick or configs == "quick" else "full"
    elif quick:
        raise ValueError(f"argument '--quick': expected no candidate file with it, got "
                         f"--configs {configs!r}")  # fmt: skip
    else:
        space = load_candidates(configs)
    sizes = sorted({c.batch_size for c in family.load_cases(member)})
    if batch_sizes:
        sizes = family.parse_batch_sizes(batch_sizes, "--batch-sizes")
    table = tune_member(member, preset, sizes, space, margin=margin,
                        out_dir=out_dir or records.AUTO, fresh=fresh)  # fmt: skip
    return 0 if all(b in table for b in sizes) else 1


def sass_against(kernel: str, rev: str, arch: str | None = None, defines: dict | None = None,
                 step: int = 20, workers: int | None = None) -> int:  # fmt: skip
    """``decodekit sass KERNEL --against REV``: did a kernel change leave the code alone? Each
    build is compiled from this tree's ``kernels/`` and from REV's (``git archive``) and
    compared instruction by instruction: the ``-D`` build, or for the family kernel without
    ``-D`` its tables' entries and every ``step``-th candidate of each checked member
    (:func:`decodekit.impls.family_kernels.sass_builds`). 0 when every build is the same."""
    import io
    import os
    import subprocess
    import tarfile
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from decodekit.build import sass
    from decodekit.build.compile import KERNELS_DIR, default_arch
    from decodekit.build.family_launch import SOURCE
    from decodekit.impls.family_kernels import sass_builds

    if arch is None:
        try:
            arch = default_arch()
        except ValueError:
            arch = "sm_90a"  # no GPU here: Hopper's, which NVRTC builds without one
    if defines or Path(kernel).name != SOURCE:
        builds = [dict(defines or {})]
    else:
        builds = sass_builds(step)
    got = subprocess.run(["git", "-C", str(KERNELS_DIR.parent), "archive", "--format=tar", rev,
                          "kernels"], capture_output=True)  # fmt: skip
    if got.returncode != 0:
        raise ValueError(f"argument '--against': git could not archive kernels/ at {rev!r}: "
                         f"{got.stderr.decode().strip()[:200]}")  # fmt: skip
    n = max(1, min(workers or os.cpu_count() or 1, len(builds)))
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        theirs = Path(tmp) / "kernels"
        chunks = [builds[i::n] for i in range(n)]
        with ProcessPoolExecutor(n) as ex:
            rows = [r for part in ex.map(sass.compare, [kernel] * n, [arch] * n, chunks,
                                         [theirs] * n) for r in part]  # fmt: skip
    counts: dict[str, int] = {}
    for d, status in rows:
        counts[status] = counts.get(status, 0) + 1
        if status != "same":
            print(f"{status}: {', '.join(f'{k}={v}' for k, v in d.items() if v)}")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"{kernel} ({arch}) against {rev}: {len(rows)} builds: {summary}")
    return 0 if set(counts) <= {"same", "fails both"} else 1
