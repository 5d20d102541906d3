"""``study``: the product's command line (names and options are stable: scripts call them)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _churn_synth(args) -> int:
    from study.churn.data import twin_dir
    from study.churn.twin import generate

    out = Path(args.out) if args.out else twin_dir(args.scale, args.seed)
    s = generate(out, scale=args.scale, seed=args.seed, progress=not args.quiet, label_rule=args.label_rule)
    print(f"twin ({s.scale}, seed {s.seed}) written to {out} in {s.seconds:.1f} s")
    for name, n in s.rows.items():
        print(f"  {name:<22} {n:>12,} rows")
    for name, c in s.churn.items():
        print(f"  churn in {name:<13} {c:.2%}")
    return 0


def _churn_validate(args) -> int:
    from study.churn.data import FILES, RawDataError, read_table, resolve_source

    src = resolve_source(args.raw, scale=args.scale, seed=args.seed, generate=False)
    print(src.describe())
    bad = 0
    for name in FILES:
        path = src.file(name)
        if not path.is_file():
            print(f"  {name:<22} absent")
            continue
        try:
            df = read_table(path, limit=args.limit)
            print(f"  {name:<22} ok ({len(df):,} rows checked)")
        except RawDataError as exc:
            bad += 1
            print(f"  {name:<22} INVALID\n    " + str(exc).replace("\n", "\n    "))
    return 1 if bad else 0


def _churn_features(args) -> int:
    import time

    from study import paths
    from study.churn.data import resolve_source
    from study.churn.features import build

    src = resolve_source(args.raw, scale=args.scale, seed=args.seed)
    out = Path(args.out) if args.out else paths.PROCESSED / (f"{src.scale}-seed{src.seed}" if src.kind == "twin" else "real")
    t0 = time.perf_counter()
    df = build(src, args.recipe, out, months=tuple(args.months))
    print(f"{args.recipe}: {len(df):,} rows x {df.shape[1]} columns from {src.describe()} "
          f"in {time.perf_counter() - t0:.1f} s → {out}")
    return 0


def _run(args) -> int:
    from study.runner import run_study

    result = run_study(args.scale, only=args.only, params_file=args.params)
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="study", description="KKBOX churn and door-state study")
    sub = p.add_subparsers(dest="command", required=True)

    churn = sub.add_parser("churn", help="the churn case").add_subparsers(dest="churn_command", required=True)
    synth = churn.add_parser("synth", help="generate the simulated KKBOX twin (Kaggle file layout)")
    synth.add_argument("--scale", choices=["tiny", "quick", "default", "full"], default="quick")
    synth.add_argument("--seed", type=int, default=2017)
    synth.add_argument("--out", help="output folder (default: data/raw/twin/<scale>-seed<seed>)")
    synth.add_argument("--quiet", action="store_true", help="no progress bars")
    synth.add_argument("--label-rule", choices=["rule", "rebased"], default="rule",
                       help="rule: the organisers' rule (FACTS.md); rebased: the March experiment of notebooks/20")
    synth.set_defaults(func=_churn_synth)

    val = churn.add_parser("validate", help="check the raw files (real or twin) against the schemas")
    val.add_argument("--raw", help="folder with the Kaggle files (default: data/raw/kkbox, else the twin)")
    val.add_argument("--scale", default="quick")
    val.add_argument("--seed", type=int, default=2017)
    val.add_argument("--limit", type=int, default=None, help="check only the first N rows of each file")
    val.set_defaults(func=_churn_validate)

    feat = churn.add_parser("features", help="build a per-user dataset (parquet under data/processed/)")
    feat.add_argument("--raw", help="folder with the Kaggle files (default: data/raw/kkbox, else the twin)")
    feat.add_argument("--out", help="output folder (default: data/processed/<scale>-seed<seed>)")
    feat.add_argument("--recipe", choices=["original", "pit"], default="original",
                      help="original: the original study's 33 columns; pit: point-in-time features")
    feat.add_argument("--months", nargs="+", default=["2017-01", "2017-02", "2017-03"],
                      help="expiry months of the point-in-time set (YYYY-MM)")
    feat.add_argument("--scale", default="quick", help="twin scale when no real files are given")
    feat.add_argument("--seed", type=int, default=2017)
    feat.set_defaults(func=_churn_features)

    run = sub.add_parser("run", help="run the notebooks through Papermill and render reports/")
    run.add_argument("--scale", choices=["quick", "default", "full"], default="default")
    run.add_argument("--params", help="a parameter file instead of params/<scale>.yaml")
    run.add_argument("--only", nargs="*", help="notebook names to run (e.g. 00_data)")
    run.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from study.churn.data import RawDataError

    try:
        return args.func(args)
    except RawDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
