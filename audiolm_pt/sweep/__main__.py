"""Command line of sweeps (see `audiolm_pt.sweep`).

    python -m audiolm_pt.sweep --sweep=configs/sweeps/NAME.py[:ARG] --root=DIR
        [--only=a,b*] [--emit=tpu|slurm] [--dry_run]

Runs the points here (default), or with `--emit` writes DIR/launch_<mode>.sh (with
`--dry_run`: prints it). Every point's config and overrides are checked first.
"""

import argparse
import collections
import os
import sys

from audiolm_pt.sweep.emit import MODES, emit
from audiolm_pt.sweep.local import run_local
from audiolm_pt.sweep.spec import SweepError, check, load_sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.sweep")
    parser.add_argument("--sweep", required=True, help="sweep file[:arg]")
    parser.add_argument("--root", required=True, help="one directory per point goes here")
    parser.add_argument("--only", default="", help="comma-separated point names or patterns")
    parser.add_argument("--emit", choices=MODES, default=None, help="write a launch script")
    parser.add_argument("--dry_run", action="store_true", help="print commands, run nothing")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.emit and args.only:
        print("--only selects points to run here; --emit writes the whole sweep", file=sys.stderr)
        return 2
    # Local runs resolve {root} to an absolute path: commands must not depend on their cwd.
    root = args.root if "://" in args.root or args.emit else os.path.abspath(args.root)
    try:
        sweep = load_sweep(args.sweep)
        check(sweep, root)
    except SweepError as err:
        print(f"sweep {args.sweep}: {err}", file=sys.stderr)
        return 2
    if args.emit:
        script = emit(sweep, root, args.emit)
        if args.dry_run:
            print(script, end="")
        else:
            os.makedirs(root, exist_ok=True)
            path = os.path.join(root, f"launch_{args.emit}.sh")
            with open(path, "w", encoding="utf-8") as f:
                f.write(script)
            print(f"wrote {path}: bash {path}")
        return 0
    try:
        status = run_local(
            sweep, root, only=[o for o in args.only.split(",") if o], dry_run=args.dry_run
        )
    except SweepError as err:
        print(f"sweep {args.sweep}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to go on", file=sys.stderr)
        return 130
    if args.dry_run:
        return 0
    counts = collections.Counter(s["status"] for s in status.values())
    print("points: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    unfinished = sorted(n for n, s in status.items() if s["status"] in ("failed", "skipped"))
    for name in unfinished:
        print(f"{name}: {status[name]['status']}: {status[name]['reason']}", file=sys.stderr)
    return 1 if unfinished else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
