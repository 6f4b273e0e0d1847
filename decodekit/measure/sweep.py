"""Sweeps: every implementation x workload through :func:`decodekit.measure.bench.bench`.

Records are appended as each implementation x workload finishes, so an interrupted sweep
keeps what it measured. The progress bar is ``tqdm.auto`` (a widget in notebooks).

>>> df = run(["torch-fp32"], "B1,B3", preset="quick", methods=["wall"], out_dir=None,
...          progress=False, device="cpu")
>>> df[["workload", "method", "status"]].values.tolist()  # no GPU method on the CPU
[['B1', 'events-cold', 'unavailable'], ['B1', 'wall', 'ok'], ['B3', 'events-cold', 'unavailable'], ['B3', 'wall', 'ok']]
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from tqdm.auto import tqdm

from decodekit import records
from decodekit.impls import registry
from decodekit.measure import as_impl
from decodekit.measure.bench import bench, open_run
from decodekit.measure.timing import Timer
from decodekit.problem.workloads import Workload, select


def run(
    impls: Iterable | str | None = None,
    workloads: str | Iterable = "representative",
    *,
    preset: str = "quick",
    methods: Iterable[str] | str | None = (),
    hot: bool = False,
    out_dir=records.AUTO,
    progress: bool = True,
    device: str | None = None,
    timer: Timer | None = None,
    floors: bool | None = None,
    contracts: Iterable[str] | str | None = ("native",),
    rounds: int = 1,
) -> pd.DataFrame:
    """Check and time each implementation on each workload; return the run's records.

    ``rounds`` > 1 repeats every workload's implementations that many times, alternating
    them (A, B, A, B, ...), so a paired A/B (:mod:`decodekit.views.compare`) sees both under the
    same conditions; each record carries its ``round``.

    ``contracts``: ``native`` (each implementation's own calling mode) and/or named ones
    (``dps``, ``inplace``, ``pool``); each implementation runs in those of them it supports
    (:mod:`decodekit.problem.contracts`), each contract its own records.

    ``impls``: registry names, Impls or DPS callables (``None`` or ``"all"``: every one).
    ``workloads``: ``contest``, ``representative``, ``"B1,B3,17"`` or a list.
    ``methods``: timing methods beyond the preset's own (``graph-hot``, ``host-dispatch``,
    ``wall``, ...; a list or ``"a,b"``); ``hot=True`` adds ``graph-hot``. On a CPU-only
    machine the preset's GPU method is recorded as unavailable and only host methods run.
    """
    impl_list = [as_impl(i) for i in _impls(impls)]
    methods = _names(methods) + (["graph-hot"] if hot else [])
    wl: list[Workload] = select(workloads)
    r = open_run(device, out_dir=out_dir, timer=timer, floors=floors)
    bar = tqdm(total=len(impl_list) * len(wl), disable=not progress, desc=f"bench {preset}")
    wanted = _names(contracts) or ["native"]
    if rounds < 1:
        raise ValueError(f"argument 'rounds': expected an int >= 1, got {rounds!r}")
    bar.total = bar.total * rounds
    rows = []
    for w in wl:
        for i in range(rounds):
            for im in impl_list:
                bar.set_postfix_str(f"{im.name} {w.name}", refresh=False)
                for c in _contracts(im, wanted):
                    tags = {"round": i} if rounds > 1 else None
                    rows.extend(
                        bench(im, w, preset=preset, methods=tuple(methods), run=r, contract=c,
                              tags=tags)
                    )  # fmt: skip
                bar.update()
    bar.close()
    df = records.to_frame(rows)
    df.attrs["path"] = str(r.recorder.path) if r.recorder.path else None
    df.attrs["rows"] = rows  # the records as written (the frame adds labels and derived columns)
    return df


def _contracts(im, wanted: list[str]) -> list[str]:
    """The contracts ``im`` runs in: ``native`` is its own; named ones where it has them."""
    from decodekit.problem.contracts import check_contract

    out = [im.contract if c == "native" else check_contract(c) for c in wanted]
    return list(dict.fromkeys(c for c in out if c in im.contracts))


def _names(x) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [s.strip() for s in x.split(",") if s.strip()]
    return list(x)


def _impls(impls) -> list:
    """Names (a list, or ``"a,b"``; ``all`` for every registered one), Impls or callables."""
    if impls is None:
        return registry.names()
    out = []
    for x in _names(impls):
        out.extend(_names(x) if isinstance(x, str) else [x])
    return registry.names() if out == ["all"] else out


def speedups(df: pd.DataFrame, kit: str = "best", method: str | None = None) -> pd.DataFrame:
    """How much faster ``kit`` is than each peer, per batch size (columns) and overall
    (``geomean``, ``min`` over workloads), each peer against ``kit`` in the peer's own
    contract: FLA (dps) against best, FlashInfer (inplace) against best in place. A pool
    peer is set against ``kit`` in place where ``kit`` has no pool contract (identity
    indices move the same bytes); the ``vs`` column says which row each one was set against.
    """
    import numpy as np

    d = df[df["status"] == "ok"]
    if "impl_kind" in d:
        d = d[~records.is_floor(d)]
    if method is not None:
        d = d[d["method"] == method]
    if d.empty or "impl_name" not in d:
        return pd.DataFrame()
    contract = d["contract"].fillna("dps")
    mine = {c: g for c, g in d[d["impl_name"] == kit].groupby(contract[d["impl_name"] == kit])}
    rows = {}
    for (_peer, c), g in d[d["impl_name"] != kit].groupby(["impl_name", contract]):
        ref = mine.get(c) if c in mine else mine.get("inplace") if c == "pool" else None
        if ref is None:
            continue
        pair = g.set_index("uuid")["latency_us"] / ref.set_index("uuid")["latency_us"]
        pair = pair.dropna()
        if pair.empty:
            continue
        by_b = pair.groupby(g.set_index("uuid")["batch_size"].reindex(pair.index)).apply(
            lambda x: float(np.exp(np.log(x).mean()))
        )
        row = {int(b): round(v, 3) for b, v in by_b.items()}
        row.update(geomean=round(float(np.exp(np.log(pair).mean())), 4),
                   min=round(float(pair.min()), 3), vs=ref["impl"].iloc[0])  # fmt: skip
        rows[g["impl"].iloc[0]] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns.name = f"{kit} speedup (peer / {kit}, same contract)"
    return out


def tuning_note(df: pd.DataFrame) -> str | None:
    """The headline a run of an untuned GPU carries: ``untuned on <gpu>: best ran the table
    of <other GPU>``, with the command that tunes it; None when tuned or not recorded."""
    if "tuned" not in df:
        return None
    rows = df[df["tuned"].notna() & (df["tuned"] == False)]  # noqa: E712 (a column of bools)
    if rows.empty:
        return None
    r = rows.iloc[-1]
    table_of = f"the table of {r['tuned_on']}" if pd.notna(r.get("tuned_on")) else "defaults"
    return (
        f"untuned on {r['gpu']}: {r['impl']} ran {table_of} ({r['tuning_table']}); "
        "tune this GPU: decodekit tune --quick"
    )


def table(df: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Median latency (µs) per implementation (rows) and batch size (columns), the mean over
    each batch size's workloads; a refused or failed implementation shows its status."""
    d = df[~records.is_floor(df)]
    if method is None:
        ok = d[d["status"] == "ok"]
        method = ok["method"].iloc[0] if len(ok) else None
    d = d[d["method"] == method]
    ok = d[d["status"] == "ok"].pivot_table(
        index="impl", columns="batch_size", values="latency_us", aggfunc="mean"
    )
    out = ok.map(lambda x: f"{x:.1f}").astype(object) if len(ok) else pd.DataFrame()
    for _, r in d[d["status"] != "ok"].iterrows():
        out.loc[r["impl"], r["batch_size"]] = r["status"]
    return out.reindex(sorted(out.columns), axis=1) if len(out) else out
