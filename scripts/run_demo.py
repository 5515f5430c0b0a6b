# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The bundle's main job on its embedded default data: generate, train, evaluate, report.

1. generates the synthetic OCT-like volumes into ``data/synthetic_oct`` (skipped when present);
2. trains MIMS-CNN with ``python -m monai.bundle run`` (configs/common.json + configs/train.json),
   tracked in MLflow;
3. evaluates the promoted best checkpoint ``models/model.pt`` on the test split
   (configs/common.json + configs/evaluate.json);
4. prints the test metrics and where the checkpoints, predictions and MLflow runs are.

Every bundle command it runs is printed first, so it can be copied and changed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bundle_command(configs: list[str], overrides: dict[str, str], tracking: bool) -> list[str]:
    config_list = "[" + ",".join(f"'{c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_list]
    for key, value in overrides.items():
        cmd += [f"--{key}", value]
    if tracking:
        cmd += ["--tracking", "mlflow"]
    return cmd


def _display(arg: str) -> str:
    """Shell quoting that keeps ``"['a.json','b.json']"`` readable (as in the README)."""
    if "'" in arg and not any(c in arg for c in '"$`\\'):
        return f'"{arg}"'
    return shlex.quote(arg)


def _run(cmd: list[str], cwd: Path) -> None:
    print("\n$ " + " ".join(_display(c) for c in cmd), flush=True)
    result = subprocess.run(cmd, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"command failed with exit code {result.returncode}: {' '.join(cmd[:6])} ...")


def run_demo(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the test metrics (``eval/metrics.json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bundle-root",
        default=str(ROOT),
        help="folder for everything the demo writes: data/, runs/, models/, eval/ (default: the repository root)",
    )
    parser.add_argument(
        "--data-dir",
        default="data/synthetic_oct",
        help="where the demo volumes are written (relative to --bundle-root)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data generator")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: configs/train.json)")
    parser.add_argument(
        "--num-train", type=int, default=None, help="training volumes to generate (default: the generator's)"
    )
    parser.add_argument("--no-tracking", action="store_true", help="do not track the runs in MLflow")
    parser.add_argument("--regenerate", action="store_true", help="regenerate the demo data even if it exists")
    args = parser.parse_args(argv)

    from bundle.data.synthetic_oct import make_synthetic_oct_dataset

    start = time.time()
    out_root = Path(args.bundle_root).expanduser().resolve()
    data_dir = out_root / args.data_dir
    datalist = data_dir / "datalist.json"
    if datalist.is_file() and not args.regenerate:
        print(f"[demo] using the existing demo data {datalist} (--regenerate to make it anew)")
    else:
        kwargs = {"num_train": args.num_train} if args.num_train else {}
        print(f"[demo] generating synthetic OCT-like volumes into {data_dir}")
        make_synthetic_oct_dataset(data_dir, seed=args.seed, overwrite=args.regenerate, **kwargs)

    overrides = {"bundle_root": str(out_root), "dataset_dir": str(data_dir)}
    train_overrides = dict(overrides)
    if args.epochs is not None:
        train_overrides["epochs"] = str(args.epochs)
    tracking = not args.no_tracking
    _run(_bundle_command(["configs/common.json", "configs/train.json"], train_overrides, tracking), ROOT)
    _run(_bundle_command(["configs/common.json", "configs/evaluate.json"], overrides, tracking), ROOT)

    metrics_path = out_root / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    runs = sorted((out_root / "runs").glob("*/"), key=lambda p: p.stat().st_mtime)
    print("\n" + "=" * 72)
    print(f"MIMS-CNN demo finished in {(time.time() - start) / 60:.1f} min")
    print(
        f"test split ({metrics.get('num_cases', '?')} volumes): AUROC {metrics['auroc']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}, F1 {metrics['f1']:.3f}"
    )
    print(f"best checkpoint:      {out_root / 'models' / 'model.pt'}")
    if runs:
        print(
            f"this run's folder:    {runs[-1]} (best model.pt, resumable checkpoint_*.pt, "
            "overlays/: validation heatmap montages per epoch)"
        )
    print(f"metrics, predictions: {metrics_path}, {out_root / 'eval' / 'predictions.csv'}")
    if tracking:
        db = out_root / "eval" / "mlruns.db"
        print(f"MLflow runs:          {db} (experiment 'mims_cnn')")
        print(f"  view them with:     .venv/bin/mlflow ui --backend-store-uri sqlite:///{db}")
    print("=" * 72)
    return metrics


def main(argv: list[str] | None = None) -> int:
    run_demo(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
