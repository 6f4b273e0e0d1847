"""Did my change help? Paired comparison of two recorded runs (or two implementations in one
run), per workload and per batch size, with a bootstrap confidence interval and a verdict.

The ratio is ``B / A`` of latency, so below 1 means B is faster. Each side's samples are the
trial statistics a record keeps (``trial_medians_us``; several records of one
implementation x workload, as ``decodekit bench --repeat-interleaved`` writes, are pooled).
A bootstrap resamples each side's trials with replacement; the ratio of the means of the
resamples gives the distribution, its 2.5 / 97.5 percentiles the interval. Per batch size and
overall, the geomean over workloads is bootstrapped the same way (the same resample index
for every workload). The verdict, as nvbench's compare reads it, against a noise band
(default 1%):

=========  ================================================================
faster     the whole interval below ``1 - noise``
slower     the whole interval above ``1 + noise``
same       the whole interval inside ``[1 - noise, 1 + noise]``
unclear    anything else: more trials, or a second run, will tell
=========  ================================================================

>>> verdict(0.95, 0.97), verdict(0.995, 1.004), verdict(0.97, 1.02)
('faster', 'same', 'unclear')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from decodekit import records

NOISE = 0.01
N_BOOT = 2000


def verdict(lo: float, hi: float, noise: float = NOISE) -> str:
    if hi < 1 - noise:
        return "faster"
    if lo > 1 + noise:
        return "slower"
    if lo >= 1 - noise and hi <= 1 + noise:
        return "same"
    return "unclear"


def _samples(rows: pd.DataFrame) -> np.ndarray:
    vals: list[float] = []
    for r in rows.itertuples():
        trials = getattr(r, "trial_medians_us", None)
        if isinstance(trials, (list, tuple, np.ndarray)) and len(trials):
            vals.extend(float(t) for t in trials)
        elif pd.notna(r.latency_us):
            vals.append(float(r.latency_us))
    return np.asarray(vals, dtype=float)


def _side(df: pd.DataFrame, run: str | None, impl: str | None, method: str) -> pd.DataFrame:
    d = df[(df["status"] == "ok") & (df["method"] == method)]
    if "impl_kind" in d:
        d = d[~records.is_floor(d)]
    if run is not None:
        d = d[d["run_id"].astype(str).str.startswith(run)]
    if impl is not None:
        d = d[d["impl"] == impl]
    return d


def _method(d: pd.DataFrame) -> str:
    from decodekit.views import kernel_method

    m = kernel_method(d)
    if m is None:
        have = set(d.loc[d["status"] == "ok", "method"].dropna())
        raise ValueError(f"argument 'method': no timed records to compare (methods: {have})")
    return m


def compare(
    df: pd.DataFrame,
    run_a: str,
    run_b: str | None = None,
    *,
    impl_a: str | None = None,
    impl_b: str | None = None,
    method: str | None = None,
    noise: float = NOISE,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_workload, per_batch)`` of B against A. Two runs: every implementation timed
    in both (``impl_a`` keeps one); one run (``run_b`` None): ``impl_a`` against ``impl_b``.
    ``per_batch`` has a row per implementation pair and batch size and an ``all`` row."""
    for name, run in (("run_a", run_a), ("run_b", run_b)):
        if run is not None and not (df["run_id"].astype(str).str.startswith(str(run))).any():
            raise ValueError(f"argument {name!r}: no recorded run {run!r}")
    if run_b is None and not (impl_a and impl_b):
        raise ValueError("argument 'impl_b': one run compares two implementations: name both")
    method = method or _method(df[df["run_id"].astype(str).str.startswith(run_a)])
    a = _side(df, run_a, impl_a, method)
    b = _side(df, run_b or run_a, impl_b or impl_a, method)
    pairs = (
        [(impl_a, impl_b)]
        if run_b is None
        else [(i, i) for i in sorted(set(a["impl"]) & set(b["impl"]))]
    )
    rng = np.random.default_rng(seed)
    work, boots = [], {}
    for ia, ib in pairs:
        for uuid, ga in a[a["impl"] == ia].groupby("uuid"):
            gb = b[(b["impl"] == ib) & (b["uuid"] == uuid)]
            sa, sb = _samples(ga), _samples(gb)
            if not len(sa) or not len(sb):
                continue
            ra = rng.choice(sa, (n_boot, len(sa))).mean(axis=1)
            rb = rng.choice(sb, (n_boot, len(sb))).mean(axis=1)
            boot = rb / ra
            lo, hi = np.percentile(boot, [2.5, 97.5])
            ratio = sb.mean() / sa.mean()
            label = ia if ia == ib else f"{ib} vs {ia}"
            boots[(label, uuid)] = boot
            work.append(
                dict(impl=label, uuid=uuid, workload=ga["workload"].iloc[0],
                     batch_size=int(ga["batch_size"].iloc[0]), a_us=round(sa.mean(), 4),
                     b_us=round(sb.mean(), 4), ratio=round(ratio, 4), ci_lo=round(lo, 4),
                     ci_hi=round(hi, 4), verdict=verdict(lo, hi, noise))
            )  # fmt: skip
    per_w = pd.DataFrame(work)
    if per_w.empty:
        raise ValueError(
            f"nothing to pair: no workload timed with {method} in both "
            f"({run_a}{', ' + run_b if run_b else ''})"
        )
    rows = []
    for label, g in per_w.groupby("impl", sort=False):
        groups = [(int(B), gb) for B, gb in g.groupby("batch_size")] + [("all", g)]
        for B, gb in groups:
            logs = np.log(np.vstack([boots[(label, u)] for u in gb["uuid"]]))
            boot = np.exp(logs.mean(axis=0))
            lo, hi = np.percentile(boot, [2.5, 97.5])
            ratio = float(np.exp(np.log(gb["ratio"]).mean()))
            counts = gb["verdict"].value_counts()
            rows.append(
                dict(impl=label, batch_size=B, workloads=len(gb), ratio=round(ratio, 4),
                     ci_lo=round(lo, 4), ci_hi=round(hi, 4), verdict=verdict(lo, hi, noise),
                     **{v: int(counts.get(v, 0)) for v in ("faster", "slower", "same", "unclear")})
            )  # fmt: skip
    per_w.attrs.update(method=method, runs=[run_a, run_b or run_a], noise=noise)
    per_b = pd.DataFrame(rows)
    per_b.attrs.update(per_w.attrs)
    return per_w, per_b


def latest_pair(
    df: pd.DataFrame, impl: str, gpu: str | None = None, method: str | None = None
) -> tuple[str, str] | None:
    """The two newest runs (older, newer) that timed ``impl`` (on ``gpu``) with ``method``
    (default: the kernel-timing method views show, so a run of host-cost records alone is
    never one of the pair), or None."""
    from decodekit.views import kernel_method

    d = df[(df["impl"] == impl) & (df["status"] == "ok")]
    if gpu is not None:
        d = d[d["gpu"] == gpu]
    d = d[d["method"] == (method or kernel_method(d))]
    runs = d.groupby("run_id")["timestamp"].max().sort_values().index.tolist()
    return (runs[-2], runs[-1]) if len(runs) >= 2 else None


def cli_compare(
    run_a: str,
    run_b: str | None = None,
    impl_a: str | None = None,
    impl_b: str | None = None,
    method: str | None = None,
    noise: float = NOISE,
    as_json: bool = False,
) -> int:
    """``decodekit compare``: the per-batch table and the overall verdict of B against A."""
    from decodekit.views import load_records

    per_w, per_b = compare(
        load_records(), run_a, run_b, impl_a=impl_a, impl_b=impl_b, method=method, noise=noise
    )
    if as_json:
        print(per_b.to_json(orient="records"))
        return 0
    a = f"run {run_a}" + (f" {impl_a}" if impl_a else "")
    b = f"run {run_b or run_a}" + (f" {impl_b or impl_a}" if (impl_b or impl_a) else "")
    print(f"{b} against {a}: ratio = B / A of latency ({per_b.attrs['method']}); below 1 is "
          f"faster; 95% bootstrap interval; noise band {noise:.0%}")  # fmt: skip
    print(per_b.to_string(index=False))
    for r in per_b[per_b["batch_size"] == "all"].itertuples():
        print(f"{r.impl}: {r.verdict} ({r.ratio:.4f}x, [{r.ci_lo:.4f}, {r.ci_hi:.4f}])")
    return 0
