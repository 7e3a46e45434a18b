"""`mimo-lite`: the kit's command line. Each sub-command calls the same function a notebook calls."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .artifacts import repo_root, runs_dir
from .profile import load_profile


def parse_settings(pairs: list[str] | None) -> dict[str, str]:
    """`--set section.key=value` pairs as overrides; the values are read as YAML by the profile.

    >>> parse_settings(["pretrain.peak_lr=3e-3", "seed=1"])
    {'pretrain.peak_lr': '3e-3', 'seed': '1'}
    """
    overrides = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"--set {pair} is not of the form section.key=value, as in "
                             f"--set pretrain.log_every=5.")
        overrides[key.strip()] = value.strip()
    return overrides


def run_notebooks(profile: str, only: list[str] | None = None, runs_root: str | None = None,
                  notebooks_dir: str | Path | None = None,
                  overrides: dict | None = None) -> list[Path]:
    """Execute the notebooks in order with papermill; executed copies go to runs/<profile>/notebooks/."""
    import papermill

    load_profile(profile, overrides)   # fail early, with the profile's own message
    folder = Path(notebooks_dir) if notebooks_dir else (repo_root() or Path.cwd()) / "notebooks"
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(o) for o in only)]
    if not notebooks:
        raise SystemExit(f"No notebooks found in {folder} (selection {only}): run from the kit's "
                         f"checkout or pass --notebooks DIR.")
    out = runs_dir(profile, runs_root) / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in notebooks:
        t0 = time.time()
        print(f"[mimo-lite] {nb.stem} at profile {profile!r} ...", flush=True)
        params = {"profile": profile, "overrides": dict(overrides or {})}
        if runs_root:
            params["runs_root"] = str(runs_root)
        papermill.execute_notebook(str(nb), str(out / nb.name), parameters=params,
                                   cwd=str(folder), kernel_name="python3", progress_bar=False)
        print(f"[mimo-lite] {nb.stem} done in {time.time() - t0:.0f} s -> {out / nb.name}", flush=True)
        done.append(out / nb.name)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mimo-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override one profile setting, e.g. --set pretrain.log_every=5 "
                               "(repeatable; values are read as YAML)")
    p = sub.add_parser("notebooks", parents=[settings], help="execute the notebooks at a profile")
    p.add_argument("--profile", default="toy")
    p.add_argument("--only", nargs="*", help="notebook prefixes, e.g. 03 05")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p = sub.add_parser("pretrain", parents=[settings], help="three-stage pre-training (resumes a killed run)")
    p.add_argument("--config", default="toy", help="a profile name or a profile YAML file")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--control", action="store_true", help="also run the stage-1 control")
    p = sub.add_parser("sft", parents=[settings], help="long-CoT SFT from the base model (resumes a killed run)")
    p.add_argument("--config", default="toy", help="a profile name or a profile YAML file")
    p.add_argument("--variant", default="full", choices=["full", "lora", "light"],
                   help="full fine-tune, LoRA adapters (merged), or format-only light SFT")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    args = parser.parse_args(argv)
    try:
        overrides = parse_settings(args.set)
        if args.command == "notebooks":
            run_notebooks(args.profile, args.only, args.runs, overrides=overrides)
        elif args.command == "pretrain":
            from .train.pretrain import ensure_base_model, run_control
            profile = load_profile(args.config, overrides)
            ensure_base_model(profile, args.runs)
            if args.control:
                run_control(profile, args.runs)
        elif args.command == "sft":
            from .train.sft import ensure_sft_model
            print(ensure_sft_model(load_profile(args.config, overrides), args.runs, args.variant))
    except ValueError as err:        # config and profile errors: one sentence, no traceback
        sys.exit(f"mimo-lite: {err}")


if __name__ == "__main__":
    main()
