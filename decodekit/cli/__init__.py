"""One CLI over the functions the notebooks call: compile, check, bench, tune, ncu, sanitize, report.

decodekit compile [--arch sm_100a] [KERNEL ...]
decodekit sass KERNEL [--arch sm_90a] [-D NAME=VALUE ...] [--only LDG,STG|all] [--against REV]
decodekit check --impl NAME --workloads contest|representative|B1,B3,...
decodekit bench --impl NAME... --workloads ... --preset contest|quick|...
decodekit tune [--definition NAME] [--batch-sizes 1,64] [--quick]
decodekit ncu --impl NAME --workloads ... [--definition NAME] [--section NAME ...] [--metrics M,...]
decodekit sanitize --impl NAME
decodekit report [--out DIR]
decodekit compare RUN_A [RUN_B] [--impl A] [--impl-b B]
"""

from __future__ import annotations

import argparse
import sys

from decodekit.cli.check import check_command, drift_command  # noqa: E402


def _lazy(module: str, func: str):
    def run(args) -> int:
        import importlib

        return importlib.import_module(f"decodekit.{module}").__dict__[func](args)

    return run


WORKLOADS_HELP = (
    "contest (the 54), representative (8), batch sizes B1,B3,300, uuids or their prefixes, "
    "or trace:/path/to/flashinfer-trace"
)
GPU_COMMANDS = ("tune", "overhead", "ncu", "sanitize")  # nothing to do without a GPU


def _impl_help() -> str:
    from decodekit.impls.registry import names

    return "one of: " + ", ".join(names())


def _preset_help() -> str:
    from decodekit.measure import PRESETS

    return "timing protocol, one of: " + ", ".join(
        f"{p.name} ({p.method} {p.n_warmup}/{p.n_iter}/{p.n_trials})" for p in PRESETS.values()
    )


def build_parser() -> argparse.ArgumentParser:
    from decodekit import __version__

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="decodekit", description=__doc__.splitlines()[0],
                                formatter_class=fmt)  # fmt: skip
    p.add_argument("--version", action="version", version=f"decodekit {__version__}")
    p.add_argument(
        "--data-dir",
        default=None,
        help="where records are written and read (also $DECODEKIT_DATA; default: the "
        "checkout's data/, else ~/.local/share/decodekit)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add(*a, formatter_class=fmt, **kw)  # defaults in --help

    c = sub.add_parser("compile", help="compile kernels/ (no GPU needed with --arch)")
    c.add_argument("kernels", nargs="*")
    c.add_argument("--arch", action="append", help="sm_90a, sm_100a, ... (repeatable)")
    c.set_defaults(run=_compile)

    c = sub.add_parser("sass", help="SASS of one kernel build (no GPU needed with --arch)")
    c.add_argument("kernel", help="a file in kernels/, e.g. gdn_decode_subwarp.cu")
    c.add_argument("--arch", default=None, help="sm_90a, sm_100a, ... (default: the GPU's)")
    c.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--only", default=None, help="opcode prefixes (LDG,STG,SHFL) or 'all'")
    c.add_argument("--against", default=None, metavar="REV",
                   help="compare with the kernels of a git revision instead: the -D build, or "
                   "for gdn_decode_family.cu its tables' entries and a sample of its spaces; "
                   "exit 1 when any build's instructions differ")  # fmt: skip
    c.add_argument(
        "--step",
        type=int,
        default=20,
        help="with --against: every STEP-th candidate of each checked member",
    )
    c.set_defaults(run=_sass)

    c = sub.add_parser("check", help="check an implementation against the fp64 oracle")
    c.add_argument("--impl", required=True, help=_impl_help())
    c.add_argument("--workloads", default="representative", help=WORKLOADS_HELP)
    c.add_argument("--profiles", default="random", help="input profiles: random,extreme")
    c.add_argument("--json", action="store_true", help="one JSON object per check, no table")
    c.add_argument(
        "--definition",
        default=None,
        help="a member of the decode family (decodekit.problem.family, e.g. "
        "gdn_decode_pool_qk4_v8_d128_k_last_l2norm): its workloads and contracts",
    )
    c.set_defaults(run=check_command)

    c = sub.add_parser("drift", help="a state fed back for many steps against fp64")
    c.add_argument("--definition", default="gdn_decode_qk4_v8_d128_k_last")
    c.add_argument(
        "--impl", default="torch-fp32", help="torch-fp32 (the family's reference) or kit"
    )
    c.add_argument("--steps", type=int, default=256)
    c.add_argument("--batch-size", type=int, default=4)
    c.set_defaults(run=drift_command)

    c = sub.add_parser("bench", help="time implementations; records go to data/results/")
    c.add_argument("--impl", nargs="+", default=None, help=_impl_help())
    c.add_argument("--workloads", default="representative", help=WORKLOADS_HELP)
    c.add_argument("--preset", default="quick", help=_preset_help())
    c.add_argument("--methods", default=None, help="extra methods: graph-hot,host-dispatch,wall")
    c.add_argument("--json", action="store_true", help="the run's records as JSON, no table")
    c.add_argument(
        "--repeat-interleaved",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="time two implementations alternately, workload by workload, --rounds times, in "
        "one run (then: decodekit compare RUN --impl A --impl-b B)",
    )
    c.add_argument("--rounds", type=int, default=3, help="rounds of --repeat-interleaved")
    c.add_argument(
        "--definition",
        default=None,
        help="a member of the decode family (e.g. gdn_decode_pool_qk4_v8_d128_k_last_l2norm): "
        "its manifest's cases, --impl kit and/or torch-fp32, in the member's contract, beside "
        "its copy floor (--workloads: all, or batch sizes 1,4,...)",
    )
    c.add_argument(
        "--contracts",
        default="native",
        help="calling contracts: native (each implementation's own), dps, inplace, pool "
        "(comma-separated; each implementation runs in those it supports)",
    )
    _fleet_args(c)
    c.set_defaults(run=_bench)

    c = sub.add_parser("tune", help="tuning sweep of kit variants; writes data/tuning/")
    c.add_argument("--batch-sizes", default=None,
                   help="default 1,4,8,16,32,48,64; with --definition the manifest's")  # fmt: skip
    c.add_argument("--preset", default="quick")
    c.add_argument(
        "--configs",
        default=None,
        help="search space: quick, full, or a JSON file of candidates "
        '([{"variant": ..., "defines": {...}}, ...]); default quick, with --definition full',
    )
    c.add_argument("--variants", nargs="+", default=None, help="only these variants' candidates")
    c.add_argument("--per-batch", type=int, default=1, help="contest workloads per batch size")
    c.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="a new winner must beat the "
        "current table's choice by more than this fraction (or the trials' spread)",
    )
    c.add_argument("--fresh", action="store_true", help="ignore the current table")
    c.add_argument(
        "--quick",
        action="store_true",
        help="a short sweep (about a minute): the recorded winners of GPUs of this "
        "architecture and a compact core of shapes, one workload per batch size (with "
        "--definition: the family's quick space and the member's recorded winners)",
    )
    c.add_argument("--out-dir", default=None, help="where the table goes (default data/tuning)")
    c.add_argument("--definition", default=None,
                   help="a family member: tune gdn_decode_family.cu for it, into "
                   "<out-dir, default data/tuning/family>/<gpu>/<name>.json")  # fmt: skip
    _fleet_args(c)
    c.set_defaults(run=_tune)

    c = sub.add_parser("overhead", help="steady-state host cost per call vs a bare CuPy launch")
    c.add_argument("--impl", nargs="+", default=["streaming", "best"])
    c.add_argument("-n", type=int, default=20000)
    c.set_defaults(run=_overhead)

    c = sub.add_parser("table", help="regenerate the variant table of kernels/README.md")
    c.add_argument("--print-only", action="store_true")
    c.add_argument("--json", action="store_true", help="the tables as JSON (writes nothing)")
    c.set_defaults(run=_table)

    c = sub.add_parser("ncu", help="profile under Nsight Compute; exports to data/ncu/")
    c.add_argument("--impl", required=True)
    c.add_argument("--workloads", default=None,
                   help="the contest's (default representative), or with --definition the "
                   "member's batch sizes (1,64) or all (default)")  # fmt: skip
    c.add_argument(
        "--definition",
        default=None,
        help="a member of the decode family: --impl is one of its implementations",
    )
    c.add_argument("--clock-control", default="base")
    c.add_argument("--cache-control", default="all")
    c.add_argument("--section", action="append", default=None, metavar="NAME",
                   help="an Nsight Compute section to collect as well (repeatable; e.g. "
                   "WarpStateStats, SchedulerStats, MemoryWorkloadAnalysis; ncu --list-sections)")  # fmt: skip
    c.add_argument("--metrics", default=None,
                   help="comma-separated metrics to collect beside the table's")  # fmt: skip
    c.set_defaults(run=_ncu)

    c = sub.add_parser("sanitize", help="compute-sanitizer over an implementation")
    c.add_argument("--impl", required=True)
    c.add_argument("--batch-sizes", default="1,3,64")
    c.add_argument("--tools", default="memcheck,racecheck,initcheck,synccheck")
    c.set_defaults(run=_sanitize)

    c = sub.add_parser("compare", help="did my change help? B against A, with a verdict")
    c.add_argument("run_a", help="run id (or its prefix) of the baseline A")
    c.add_argument("run_b", nargs="?", default=None, help="run id of B (default: the same run)")
    c.add_argument("--impl", default=None, help="A's implementation (default: all in both)")
    c.add_argument("--impl-b", default=None, help="B's implementation (one run: required)")
    c.add_argument("--method", default=None, help="timing method (default: the headline one)")
    c.add_argument("--noise", type=float, default=0.01, help="noise band of 'same' (fraction)")
    c.add_argument("--json", action="store_true", help="the per-batch table as JSON")
    c.set_defaults(run=_compare)

    c = sub.add_parser("export-solution", help="a flashinfer-bench Solution of a kit kernel")
    c.add_argument("--impl", default="best")
    c.add_argument("--arch", default="sm_90a", help="target arch (sm_90a, sm_100a, ...)")
    c.add_argument("--table", default=None, help="tuning table for best (default: this GPU's, "
                   "else the newest recorded one of the arch)")  # fmt: skip
    c.add_argument("--out", default=None, help="JSON file (default <name>.json)")
    c.set_defaults(run=_export_solution)

    c = sub.add_parser("export-traces", help="flashinfer-bench Traces of a recorded run")
    c.add_argument("run_id", help="run id (or its prefix)")
    c.add_argument("--impl", default="best")
    c.add_argument("--out", default=None, help="JSONL file (default traces_<impl>_<run>.jsonl)")
    c.set_defaults(run=_export_traces)

    c = sub.add_parser("report", help="execute the notebooks headless and export HTML")
    c.add_argument("--out", default="reports")
    c.add_argument("--notebooks", nargs="*", default=None)
    c.add_argument("--impl", default=None)
    c.add_argument("--workloads", default=None)
    c.add_argument("--preset", default=None)
    c.add_argument(
        "--definition",
        default=None,
        help="the family member notebook 06 shows (its records, checks and drift)",
    )
    c.set_defaults(run=_report)
    return p


def _compile(a) -> int:
    from decodekit.build.compile import cli_compile

    return cli_compile(a.kernels or None, ",".join(a.arch) if a.arch else None)


def _bench(a) -> int:
    from decodekit.views.commands import bench

    if bool(a.impl) == bool(a.repeat_interleaved):
        raise ValueError("argument '--impl': give --impl NAME... or --repeat-interleaved A B")
    if a.definition and a.definition != "gdn_decode_qk4_v8_d128_k_last":
        from decodekit.views.commands import bench_family

        return bench_family(a.definition, a.impl, a.workloads, a.preset, as_json=a.json)
    return bench(
        a.impl or a.repeat_interleaved, a.workloads, a.preset, a.methods,
        contracts=a.contracts, rounds=a.rounds if a.repeat_interleaved else 1, as_json=a.json,
        devices=a.devices, ray=a.ray,
    )  # fmt: skip


def _export_solution(a) -> int:
    from decodekit.views.export import cli_export_solution

    return cli_export_solution(a.impl, a.arch, a.out, a.table)


def _export_traces(a) -> int:
    from decodekit.views.export import cli_export_traces

    return cli_export_traces(a.run_id, a.impl, a.out)


def _compare(a) -> int:
    from decodekit.views.compare import cli_compare

    return cli_compare(a.run_a, a.run_b, a.impl, a.impl_b, a.method, a.noise, a.json)


def _sass(a) -> int:
    from decodekit.build.sass import cli_sass

    defines = {}
    for d in a.defines:
        name, eq, value = d.partition("=")
        if not name:
            raise ValueError(f"argument '-D': expected NAME or NAME=VALUE, got {d!r}")
        try:
            defines[name] = int(value, 0) if eq else None
        except ValueError:
            raise ValueError(f"argument '-D': {name} must be an int, got {value!r}") from None
    if a.against:
        from decodekit.views.commands import sass_against

        return sass_against(a.kernel, a.against, a.arch, defines, a.step)
    return cli_sass(a.kernel, a.arch, defines, a.only)


def _fleet_args(c) -> None:
    c.add_argument(
        "--devices", default=None,
        help="spread the batch sizes over these GPUs, one worker process each (0,1,...)",
    )  # fmt: skip
    c.add_argument(
        "--ray", default=None, metavar="ADDRESS",
        help="spread the batch sizes over a Ray cluster's GPUs (auto, or host:port)",
    )  # fmt: skip


def _tune(a) -> int:
    from decodekit.measure.tuning import BATCH_SIZES, TUNING_DIR
    from decodekit.views.commands import tune

    if a.definition and a.definition != "gdn_decode_qk4_v8_d128_k_last":
        return _tune_definition(a)
    return tune(
        [int(x) for x in a.batch_sizes.split(",")] if a.batch_sizes else list(BATCH_SIZES),
        a.preset,
        a.variants,
        configs=a.configs or "quick",
        per_batch=a.per_batch,
        fresh=a.fresh,
        margin=a.margin,
        quick=a.quick,
        out_dir=a.out_dir or TUNING_DIR,
        devices=a.devices,
        ray=a.ray,
    )


def _tune_definition(a) -> int:
    from decodekit.views.commands import tune_family

    given = {"--variants": a.variants, "--per-batch": a.per_batch if a.per_batch != 1 else None,
             "--fresh": a.fresh or None, "--devices": a.devices, "--ray": a.ray}  # fmt: skip
    return tune_family(a.definition, a.preset, a.batch_sizes, a.quick, a.margin, a.out_dir, given,
                       configs=a.configs)  # fmt: skip


def _overhead(a) -> int:
    from decodekit.measure.host import record_host_overhead

    for r in record_host_overhead(a.impl, a.n):
        if r["method"] == "host-steady" and not r.get("floor"):  # the bare launch beside it
            print(f"{r['impl']:<12} {r['latency_us']:6.2f} us  ({r.get('note')})")
    return 0


def _table(a) -> int:
    from decodekit.views.kernel_table import cli_table

    return cli_table(write_readme=not (a.print_only or a.json), as_json=a.json)


def _ncu(a) -> int:
    from decodekit.measure.ncu import cli_ncu

    workloads = a.workloads or ("all" if a.definition else "representative")
    metrics = [m for m in (a.metrics or "").split(",") if m.strip()]
    return cli_ncu(a.impl, workloads, clock_control=a.clock_control,
                   cache_control=a.cache_control, definition=a.definition,
                   sections=a.section, metrics=[m.strip() for m in metrics] or None)  # fmt: skip


def _sanitize(a) -> int:
    from decodekit.measure.sanitize import cli_sanitize

    return cli_sanitize(a.impl, [int(x) for x in a.batch_sizes.split(",")], a.tools.split(","))


def _report(a) -> int:
    from decodekit.views.report import cli_report

    return cli_report(a.out, a.notebooks, a.impl, a.workloads, a.preset, a.definition)


def _needs_gpu(cmd: str, definition: str | None = None) -> None:
    import torch

    # tune --definition checks its arguments first; tune_member then asks for the GPU
    if cmd in GPU_COMMANDS and not definition and not torch.cuda.is_available():
        raise RuntimeError(
            f"{cmd} needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU "
            "machine (.ci/gpu-session.sh does the whole session)"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir:
        import os

        os.environ["DECODEKIT_DATA"] = str(args.data_dir)
    try:
        _needs_gpu(args.cmd, getattr(args, "definition", None))
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head and the like: not an error
        sys.stderr.close()
        return 0
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as e:
        # bad input or a missing tool: one clear line, not a traceback
        print(f"decodekit {args.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
