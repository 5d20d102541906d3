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
    from study.churn.data import FILES, RawDataError, is_url, read_table, resolve_source

    if is_url(args.raw or ""):
        raise RawDataError(
            f"{args.raw}: validate checks local files (copy a sample here); URLs are read by --engine spark"
        )
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

    from study.churn import data
    from study.churn.features import build

    src = data.resolve_source(args.raw, scale=args.scale, seed=args.seed)
    out = Path(args.out) if args.out else data.processed_dir(src)
    t0 = time.perf_counter()
    df = build(src, args.recipe, out, months=tuple(args.months), engine=args.engine, master=args.master)
    print(
        f"{args.recipe}: {len(df):,} rows x {df.shape[1]} columns from {src.describe()} "
        f"on {args.engine} in {time.perf_counter() - t0:.1f} s → {out}"
    )
    return 0


def _churn_train(args) -> int:
    import json

    from study.churn.data import resolve_source
    from study.churn.scoring import train_original

    src = resolve_source(args.raw, scale=args.scale, seed=args.seed)
    if args.model == "champion":
        from study.churn import champion, cohorts, features, lineage

        pit = features.point_in_time(src, months=tuple(args.months))
        held_out = cohorts.held_out(src, tuple(args.months))
        folder, selection, table, _ = champion.train_champion(
            pit,
            list(args.months),
            args.out,
            src.describe(),
            held_out,
            extra=lineage.card_lineage(src, lineage.CLI_REPORT),
        )
        print(
            f"champion ({selection.model[0]}) saved to {folder} (trained on {src.describe()}, without the "
            f"{len(held_out):,} users of the dashboard's test cohorts)"
        )
        for _, r in selection.iterrows():
            print(f"  temporal protocol, {r['model']}: log loss {r['log loss']:.4f}, ROC AUC {r['ROC AUC']:.4f}")
        cal = table.iloc[1]
        print(
            f"  {args.months[-1]} with isotonic calibration from {args.months[1]}: log loss {cal['log loss']:.4f}, "
            f"Brier {cal['Brier']:.4f}, ROC AUC {cal['ROC AUC']:.4f}"
        )
        return 0
    from study.churn import cohorts, lineage

    folder = train_original(
        src, args.out, held_out=cohorts.held_out(src), extra=lineage.card_lineage(src, lineage.CLI_REPORT)
    )
    card = json.loads((folder / "card.json").read_text())
    m = card["metrics (validation, threshold 0.5)"]
    print(f"original-format model saved to {folder} (trained on {src.describe()})")
    print(
        f"  validation: ROC AUC {m['ROC AUC']:.4f}, log loss {m['log loss']:.4f}; "
        f"MCC-F1 threshold {card['threshold']:.3f}"
    )
    return 0


def _churn_score(args) -> int:
    from study import spreadsheet
    from study.churn import features, scoring

    model = scoring.load(args.model_dir or args.model)
    if args.engine == "spark":
        return _churn_score_spark(args, model)
    if args.model == "champion":
        from study.churn.data import RawDataError, resolve_source

        if not args.month:
            raise RawDataError(
                "the champion scores raw tables: give --raw DIR (or none for the twin) and --month YYYY-MM"
            )
        src = resolve_source(args.raw, scale=args.scale, seed=args.seed)
        frame = features.point_in_time(src, months=(args.month,))
        what = f"users expiring in {args.month} with the champion"
    else:
        if not args.input:
            from study.churn.data import RawDataError

            raise RawDataError("--input CSV is required for the original-format model")
        try:
            frame = features.read_processed(args.input)
        except Exception as exc:  # pandera / parser errors → one clear line
            from study.churn.data import RawDataError

            raise RawDataError(f"{args.input}: not a valid processed CSV: {str(exc).splitlines()[0]}") from None
        what = f"users with the {args.model} model"
    out = scoring.score(model, frame).drop(columns="expiry_date")
    spreadsheet.write_csv(out, args.output)
    print(f"scored {len(out):,} {what} → {args.output}")
    if "is_churn" in frame.columns and frame.is_churn.nunique() == 2:
        s, y, _ = scoring.labelled_metrics(out, frame)
        print(
            f"  labelled input: ROC AUC {s['ROC AUC']:.4f}, log loss {s['log loss']:.4f}, "
            f"F1 {s['F1']:.4f}, MCC {s['MCC']:.4f} at 0.5; churn {y.mean():.2%}"
        )
    return 0


def _churn_score_spark(args, model) -> int:
    """The same scoring on Spark: the features of the month (champion, built on Spark) or the
    --input rows (parquet file or folder, or a processed CSV) → a parquet folder of scores."""
    import time

    from study.churn import features, scoring, spark_scoring
    from study.churn.data import RawDataError, resolve_source

    t0 = time.perf_counter()
    folder = scoring.model_folder(args.model_dir or args.model)
    if args.model == "champion" and not args.input:
        if not args.month:
            raise RawDataError(
                "the champion scores raw tables: give --raw DIR (or none for the twin) and --month YYYY-MM"
            )
        src = resolve_source(args.raw, scale=args.scale, seed=args.seed)
        rows = features.point_in_time(src, months=(args.month,), engine="spark", master=args.master)
    elif args.input:
        rows = args.input
    else:
        raise RawDataError("--input (parquet or processed CSV) is required for the original-format model")
    n = spark_scoring.score_to_parquet(folder, args.output, rows, args.master, args.partitions)
    print(f"scored {n:,} users with the {model.card.get('name', args.model)} model on Spark in "
          f"{time.perf_counter() - t0:.1f} s → {args.output} (parquet: msno, expiry_date, risk, band, reason_1..3)")  # fmt: skip
    return 0


def _churn_export_db(args) -> int:
    import time

    from tqdm.auto import tqdm

    from study.churn import database as db
    from study.churn.data import resolve_source

    if not 0 < args.sample_fraction <= 1:  # checked before anything is written
        raise ValueError(f"sample fraction must be in (0, 1], got {args.sample_fraction}")
    src = resolve_source(args.raw, scale=args.scale, seed=args.seed)
    app = db.app_url(args.url)
    analytic = db.analytic_url(args.analytic_url, app=app)
    print(f"{src.describe()}\n  application database: {db.redact(app)}\n  analytic database:    {db.redact(analytic)}")
    bars: dict = {}

    def progress(table, done, total):
        if args.quiet:
            return
        bar = bars.get(table) or bars.setdefault(table, tqdm(total=total, desc=f"  {table}", unit=" rows", leave=False))
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    counts = db.export_application(src, app, progress=progress)
    t_app = time.perf_counter() - t0
    t0 = time.perf_counter()
    an_counts = db.export_analytic(
        src, analytic, fraction=args.sample_fraction, seed=args.sample_seed, progress=progress
    )
    t_an = time.perf_counter() - t0
    for bar in bars.values():
        bar.close()
    print(f"application: {sum(counts.values()):,} rows in {t_app:.1f} s (one transaction)")
    for name, n in counts.items():
        print(f"  {name:<20} {n:>12,}")
    print(f"analytic ({args.sample_fraction:g} stratified sample): {sum(an_counts.values()):,} rows in {t_an:.1f} s")
    for name, n in an_counts.items():
        print(f"  {name:<20} {n:>12,}")
    return 0


def _doors_synth(args) -> int:
    from study.doors.data import generate
    from study.doors.train import synthetic_folder

    out = args.out or synthetic_folder(args.scale)
    meta = generate(out, args.scale, seed=args.seed)
    print(f"wrote {meta['scenes']} scenes to {out}")
    return 0


def _doors_predict(args) -> int:
    import json

    from study.doors.pipeline import DoorPipeline, predict_files

    pipe = DoorPipeline.load(
        args.models, classifier=args.classifier, confidence=args.confidence, state_threshold=args.state_threshold
    )
    results = predict_files(args.images, pipe, out_dir=args.annotate)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: error: {r['error']}")
                continue
            print(f"{r['image']} ({r['width']}×{r['height']}): {len(r['doors'])} door(s)")
            for d in r["doors"]:
                x0, y0, x1, y1 = d["box_xyxy"]
                print(
                    f"  box xyxy ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f})  score {d['score']:.2f}  "
                    f"{d['state']} {d['probability']:.0%}"
                )
    return 0 if all("error" not in r for r in results) else 2


def _doors_train(args) -> int:
    from study.doors.train import train_all

    train_all(
        args.scale,
        out=args.out,
        source=args.source,
        use_real=not args.no_real,
        cnn_epochs=args.cnn_epochs,
        detector_epochs=args.detector_epochs,
        seed=args.seed,
    )
    return 0


def _serve(args) -> int:
    from study.serve import serve

    return serve(
        args.port,
        args.token,
        args.preheat,
        args.scale,
        args.seed,
        args.raw,
        args.no_prepare,
        args.token_file,
        args.max_kernels,
    )


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _run(args) -> int:
    from study.runner import run_study

    result = run_study(
        args.scale, only=args.only, params_file=args.params, force=args.force, progress=not args.quiet, jobs=args.jobs
    )
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
    synth.add_argument(
        "--label-rule",
        choices=["as released", "rule", "rebased"],
        default="as released",
        help="as released: March labelled like the real train_v2 (outcome window to 2017-05-31); "
        "rule: the organisers' published rule (FACTS.md) for both months; "
        "rebased: the March experiment of notebooks/20",
    )
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
    feat.add_argument(
        "--recipe",
        choices=["original", "pit"],
        default="original",
        help="original: the original study's 33 columns; pit: point-in-time features",
    )
    feat.add_argument(
        "--months",
        nargs="+",
        default=["2017-01", "2017-02", "2017-03"],
        help="expiry months of the point-in-time set (YYYY-MM)",
    )
    feat.add_argument("--scale", default="quick", help="twin scale when no real files are given")
    feat.add_argument("--seed", type=int, default=2017)
    feat.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="duckdb: embedded (default); spark: the same SQL on Apache Spark (needs Java 17+)",
    )
    feat.add_argument(
        "--master",
        help="Spark master URL: local[2] (default), spark://host:7077, yarn, k8s://… ($STUDY_SPARK_MASTER)",
    )
    feat.set_defaults(func=_churn_features)

    train = churn.add_parser("train", help="fit and save a model (native formats, model card, sha256 manifest)")
    train.add_argument(
        "--model",
        choices=["original", "champion"],
        default="original",
        help="original: the original study's tuned XGBoost on its top-30 features; champion: the "
        "temporal-protocol winner on point-in-time features, calibrated on a later month",
    )
    train.add_argument(
        "--months",
        nargs=3,
        default=["2017-01", "2017-02", "2017-03"],
        help="champion: fit month, calibration month, test month",
    )
    train.add_argument("--raw", help="folder with the Kaggle files (default: data/raw/kkbox, else the twin)")
    train.add_argument("--scale", default="quick", help="twin scale when no real files are given")
    train.add_argument("--seed", type=int, default=2017)
    train.add_argument("--out", help="model folder (default: data/models/<model>)")
    train.set_defaults(func=_churn_train)

    score = churn.add_parser("score", help="score a processed CSV: msno, risk, band, top-3 reasons")
    score.add_argument("--model", choices=["original", "champion"], default="original")
    score.add_argument("--model-dir", help="a saved model folder (default: data/models/<model>)")
    score.add_argument("--input", help="original model: CSV in the original study's 33-column format")
    score.add_argument("--raw", help="champion: folder with the raw Kaggle files (default: real files, else the twin)")
    score.add_argument("--month", help="champion: the expiry month to score (YYYY-MM)")
    score.add_argument("--scale", default="quick", help="champion: twin scale when no real files are given")
    score.add_argument("--seed", type=int, default=2017)
    score.add_argument(
        "--output", required=True, help="where to write the scores (CSV; with --engine spark a parquet folder)"
    )
    score.add_argument(
        "--engine",
        choices=["pandas", "spark"],
        default="pandas",
        help="pandas: in this process (default); spark: each partition loads the saved model and scores its rows",
    )
    score.add_argument("--master", help="Spark master URL (default local[2], $STUDY_SPARK_MASTER)")
    score.add_argument("--partitions", type=int, help="Spark: repartition the feature rows into N parts first")
    score.set_defaults(func=_churn_score)

    exp = churn.add_parser("export-db", help="write the application and analytic databases (SQLite by default)")
    exp.add_argument(
        "--url",
        help="SQLAlchemy URL of the application database (default: $STUDY_DB_URL, "
        "else data/db/application.sqlite), e.g. mysql+pymysql://user:pw@host/crm",
    )
    exp.add_argument(
        "--analytic-url",
        help="SQLAlchemy URL of the analytic database (default: "
        "$STUDY_ANALYTIC_DB_URL, else beside the application one, name + _analytic)",
    )
    exp.add_argument(
        "--sample-fraction",
        type=float,
        default=0.01,
        help="stratified share of the labelled users in the analytic database (the original study: 0.01)",
    )
    exp.add_argument("--sample-seed", type=int, default=40)
    exp.add_argument("--raw", help="folder with the Kaggle files (default: data/raw/kkbox, else the twin)")
    exp.add_argument("--scale", default="quick", help="twin scale when no real files are given")
    exp.add_argument("--seed", type=int, default=2017)
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    exp.set_defaults(func=_churn_export_db)

    doors = sub.add_parser("doors", help="the doors case").add_subparsers(dest="doors_command", required=True)
    dsyn = doors.add_parser("synth", help="generate synthetic door scenes (DeepDoors2-like layout)")
    dsyn.add_argument("--scale", choices=["tiny", "quick", "default"], default="quick")
    dsyn.add_argument("--seed", type=int, default=2017)
    dsyn.add_argument("--out", help="output folder (default: data/doors/<scale>)")
    dsyn.set_defaults(func=_doors_synth)

    pred = doors.add_parser("predict", help="find doors and their state in images (boxes are xyxy pixels)")
    pred.add_argument("images", nargs="+", help="image files (JPEG, PNG, …)")
    pred.add_argument("--json", action="store_true", help="print JSON (one object per image)")
    pred.add_argument("--models", help="model folder (default: data/models/doors)")
    pred.add_argument(
        "--classifier",
        choices=["two_view", "finetuned", "transfer", "original_cnn"],
        default=None,
        help="default: the one chosen on the real Valid crops when the models were trained (metrics.json)",
    )
    pred.add_argument("--confidence", type=float, default=0.3, help="minimum detector score of a box")
    pred.add_argument(
        "--state-threshold", type=float, default=0.0, help="below this probability the state is reported as 'uncertain'"
    )
    pred.add_argument("--annotate", metavar="DIR", help="also write annotated images into DIR")
    pred.set_defaults(func=_doors_predict)

    dtrain = doors.add_parser("train", help="train the detector and the four state classifiers, evaluate, save")
    dtrain.add_argument("--scale", choices=["tiny", "quick", "default", "full"], default="quick")
    dtrain.add_argument(
        "--source",
        default="synthetic",
        help="'synthetic' (generated scenes) or a DeepDoors2 folder (Train|Valid|Test/Closed|Open|Semi)",
    )
    dtrain.add_argument("--no-real", action="store_true", help="do not use the real photos of ../shared/doors")
    dtrain.add_argument("--cnn-epochs", type=int, help="epochs of the original CNN (default by scale)")
    dtrain.add_argument("--detector-epochs", type=int, help="epochs of the detector head (default by scale)")
    dtrain.add_argument("--seed", type=int, default=2017)
    dtrain.add_argument("--out", help="model folder (default: data/models/doors)")
    dtrain.set_defaults(func=_doors_train)

    srv = sub.add_parser("serve", help="serve the dashboards (Voilà on 127.0.0.1, token authentication)")
    srv.add_argument("--port", type=int, default=8866)
    srv.add_argument(
        "--token",
        help="the access token (visible in `ps`: prefer $STUDY_TOKEN or --token-file; "
        "default: a fresh random one written to data/serve-token)",
    )
    srv.add_argument("--token-file", help="read the access token from this file")
    srv.add_argument(
        "--max-kernels",
        type=int,
        default=8,
        help="open pages served at once (each holds a kernel of 300-600 MB); more get a 'busy' page",
    )
    srv.add_argument("--preheat", action="store_true", help="keep one executed kernel ready (faster first render)")
    srv.add_argument("--scale", default="default", help="twin scale used to prepare missing models or database")
    srv.add_argument("--seed", type=int, default=2017)
    srv.add_argument("--raw", help="folder with the Kaggle files (default: data/raw/kkbox, else the twin)")
    srv.add_argument("--no-prepare", action="store_true", help="do not train or export what is missing")
    srv.set_defaults(func=_serve)

    run = sub.add_parser("run", help="run the notebooks through Papermill and render reports/")
    run.add_argument("--scale", choices=["quick", "default", "full"], default="default")
    run.add_argument("--params", help="a parameter file instead of params/<scale>.yaml")
    run.add_argument("--only", nargs="*", help="notebook names to run (e.g. 00_data)")
    run.add_argument(
        "--force",
        action="store_true",
        help="run every step, even those whose inputs, parameters and code are unchanged since their last run",
    )
    run.add_argument("--quiet", action="store_true", help="no cell-by-cell progress while a notebook runs")
    run.add_argument(
        "--jobs",
        type=_at_least_one,
        default=1,
        help="steps run at once when they do not wait for each other (each kernel gets its share of the threads)",
    )
    run.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from study.churn.data import RawDataError

    try:
        return args.func(args)
    except (RawDataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from study.churn.models import ModelIntegrityError

        from sqlalchemy.exc import SQLAlchemyError

        from study.churn.database import DatabaseError

        if isinstance(exc, (SQLAlchemyError, DatabaseError)):
            print(f"error: database: {str(exc).splitlines()[0][:300]}", file=sys.stderr)
            return 2
        if isinstance(exc, ValueError) and "sample fraction" in str(exc):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, ModelIntegrityError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
