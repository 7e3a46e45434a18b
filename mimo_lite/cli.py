"""`mimo-lite`: the kit's command line. Each sub-command calls the same function a notebook calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .artifacts import repo_root, runs_dir
from .notebook import find_notebooks
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
                  overrides: dict | None = None, resume: bool = False) -> list[Path]:
    """Execute the notebooks in order with papermill; executed copies go to runs/<profile>/notebooks/.

    `resume`: skip the notebooks that finished in an earlier call (their executed copy is there and
    their time is in its run_times.json), so that a sequence cut into commands of limited length
    (`timeout 540 mimo-lite notebooks --resume`, repeated) goes on where the last one stopped; a
    notebook cut off midway runs again, its stages resuming from their checkpoints."""
    import papermill

    from .notebook import note_run_time
    from .train.run import BATCH_ENV

    name = load_profile(profile, overrides).name   # fail early, with the profile's own message
    folder = Path(notebooks_dir) if notebooks_dir else (repo_root() or Path.cwd()) / "notebooks"
    notebooks = find_notebooks(folder, only)
    if not notebooks:
        raise SystemExit(f"No notebooks found in {folder} (selection {only}): run from the kit's "
                         f"checkout or pass --notebooks DIR.")
    out = runs_dir(name, runs_root) / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    # The kernels inherit these: the kit's progress bars as text, saved at their end (a widget's
    # saved copy shows its first state, 0%), and no loading/saving bars of transformers or datasets.
    batch = {BATCH_ENV: "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    was = {k: os.environ.get(k) for k in batch}
    os.environ.update(batch)
    done = []
    finished = json.loads((out / "run_times.json").read_text()) if (out / "run_times.json").exists() else {}
    try:
        for nb in notebooks:
            if resume and (out / nb.name).exists() and finished.get(nb.stem, {}).get("profile") == name:
                print(f"[mimo-lite] {nb.stem} ran earlier ({finished[nb.stem]['wall_s']:.0f} s): skipped", flush=True)
                continue
            t0 = time.time()
            print(f"[mimo-lite] {nb.stem} at profile {profile!r} ...", flush=True)
            params = {"profile": profile, "overrides": dict(overrides or {})}
            if runs_root:
                params["runs_root"] = str(runs_root)
            papermill.execute_notebook(str(nb), str(out / nb.name), parameters=params,
                                       cwd=str(folder), kernel_name="python3", progress_bar=False)
            note_run_time(out, nb.stem, name, time.time() - t0)
            print(f"[mimo-lite] {nb.stem} done in {time.time() - t0:.0f} s -> {out / nb.name}", flush=True)
            done.append(out / nb.name)
    finally:
        for k, v in was.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    return done


def run_eval(args) -> list[dict]:
    """`mimo-lite eval`: a checkpoint on a suite; prints pass@k and avg@n with 95% intervals."""
    from .eval import evaluate, load_checkpoint, load_suite, summarise
    from .eval.intervals import fmt
    from .eval.stage import eval_dir

    problems = load_suite(args.suite, args.profile, args.runs, args.format)[:args.limit]
    if args.backend == "vllm":                  # vLLM reads the checkpoint folder itself
        from transformers import AutoTokenizer

        from .eval.stage import checkpoint_dir
        model = checkpoint_dir(args.model, args.profile, args.runs)
        tokenizer = AutoTokenizer.from_pretrained(model)
    else:
        model, tokenizer = load_checkpoint(args.model, args.profile, args.runs)
        model = model.to(args.device or load_profile(args.profile).torch_device)
    out = Path(args.out) if args.out else eval_dir(args.profile, args.model, args.suite, args.runs)
    print(f"[mimo-lite] {len(problems)} problems of {args.suite}, {args.model} -> {out}", flush=True)
    table = evaluate(model, problems, out, k=tuple(args.k), samples=args.samples, tokenizer=tokenizer,
                     temperature=args.temperature, top_p=args.top_p,
                     max_new_tokens=args.max_new_tokens, seed=args.seed, backend=args.backend,
                     speculative=args.speculative,
                     engine_args=dict(tensor_parallel_size=args.tensor_parallel_size))
    summary = summarise(table)
    for row in summary:
        group = ", ".join(f"{k}={v}" for k, v in row["group"].items()) or "all"
        metrics = "  ".join(f"{m} {fmt(v)}" for m, v in row.items() if "@" in m)
        print(f"{group:<24} {row['problems']:>5} problems  {metrics}")
    from .artifacts import write_json
    write_json(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mimo-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override one profile setting, e.g. --set pretrain.log_every=5 "
                               "(repeatable; values are read as YAML)")
    p = sub.add_parser("notebooks", parents=[settings], help="execute the notebooks at a profile")
    p.add_argument("--profile", default="toy")
    p.add_argument("--only", nargs="*", help="notebook numbers, e.g. 03 05 05b")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--resume", action="store_true",
                   help="skip the notebooks that finished in an earlier call (go on where it stopped)")
    p.add_argument("--notebooks", default=None, metavar="DIR",
                   help="the folder of notebooks to run (default: the checkout's notebooks/)")
    p = sub.add_parser("pretrain", parents=[settings], help="three-stage pre-training (resumes a killed run)")
    p.add_argument("--config", default="toy", help="a profile name or a profile YAML file")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--control", action="store_true", help="also run the stage-1 control")
    p = sub.add_parser("sft", parents=[settings], help="long-CoT SFT from the base model (resumes a killed run)")
    p.add_argument("--config", default="toy", help="a profile name or a profile YAML file")
    p.add_argument("--variant", default="full", choices=["full", "lora", "light"],
                   help="full fine-tune, LoRA adapters (merged), or format-only light SFT")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p = sub.add_parser("grpo", parents=[settings], help="GRPO (MiMo's RL) from the SFT model, or RL-Zero "
                                                         "from the base model (resumes a killed run)")
    p.add_argument("--config", default="toy", help="a profile name or a profile YAML file")
    p.add_argument("--start", default="sft", choices=["sft", "base"],
                   help="sft: MiMo-RL, into runs/<profile>/rl/; base: MiMo-RL-Zero, into rl_zero/")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p = sub.add_parser("eval", help="evaluate a checkpoint on a suite: pass@k, avg@n with intervals "
                                    "(resumes a killed evaluation)")
    p.add_argument("--model", required=True,
                   help="a Hugging Face checkpoint directory, or a run name: base, sft, rl, rl_zero")
    p.add_argument("--suite", default="heldout",
                   help="'heldout' (the profile's held-out problems) or a local file: kit JSONL, "
                        "HumanEval, MBPP, stdin/stdout contest, GSM8K or MATH records")
    p.add_argument("--format", default=None, help="the file's format when it cannot be recognised")
    p.add_argument("--k", type=int, nargs="+", default=[1], help="pass@k for each k, e.g. --k 1 4 8")
    p.add_argument("--samples", type=int, default=None, help="replies per problem (default: largest k)")
    p.add_argument("--temperature", type=float, default=0.6, help="0 for greedy (one sample)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--limit", type=int, default=None, help="the first N problems only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None,
                   help="engine only: where the model generates (default: the profile's device, "
                        "a GPU when there is one)")
    p.add_argument("--backend", choices=("engine", "vllm"), default="engine",
                   help="who generates: the kit's engine, or vLLM serving the checkpoint (scaled env)")
    p.add_argument("--speculative", action="store_true",
                   help="vLLM only: MiMo's MTP layer drafts one token a step (speculative decoding)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM only: GPUs per copy")
    p.add_argument("--profile", default="toy", help="where run names and 'heldout' are looked up")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--out", default=None, help="default: runs/<profile>/eval/<model>-<suite>/")
    p = sub.add_parser("report", help="write runs/<profile>/report/: the four models side by side, "
                                      "pass@k, MTP acceptance and the speed figures of record")
    p.add_argument("--profile", default="toy")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p = sub.add_parser("book", help="render the executed notebooks of runs/<profile>/notebooks/ as HTML "
                                    "pages with their figures, and a front page")
    p.add_argument("--profile", default="toy")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--out", default=None, help="default: runs/<profile>/book/")
    p = sub.add_parser("pack", help="one archive of a profile's artifacts (models, data, metrics) "
                                    "with a manifest, for `mimo-lite unpack` on another machine")
    p.add_argument("--profile", default="toy")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--out", default=None, help="the archive (default: mimo-lite-<profile>.tar.gz)")
    p.add_argument("--notebooks", action="store_true", help="also pack the executed notebooks")
    p = sub.add_parser("unpack", help="check a `mimo-lite pack` archive and move its artifacts into "
                                      "runs/<profile>/; says which are current here")
    p.add_argument("archive")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p = sub.add_parser("record-times", help="copy the notebooks' run times of runs/<profile>/ into the "
                                            "kit's record, which each notebook prints at its top")
    p.add_argument("--profile", default="toy")
    p.add_argument("--runs", default=None, help="root of the runs/ folder")
    p.add_argument("--how", default="", help='a few words on the run, e.g. "fresh clone, nothing pre-built"')
    p = sub.add_parser(
        "export-lm-eval", help="write a suite as lm-evaluation-harness tasks",
        description="Write a suite as lm-evaluation-harness tasks, one per domain, then score a "
                    "checkpoint with: lm_eval --model hf --model_args "
                    "pretrained=runs/toy/rl,trust_remote_code=True --apply_chat_template "
                    "--include_path OUT --tasks mimo_lite_heldout_math,mimo_lite_heldout_code "
                    "(the kit checkpoint's modeling_mimo.py imports the installed kit: "
                    "transformers does not ship model type 'mimo').")
    p.add_argument("--suite", default="heldout")
    p.add_argument("--format", default=None)
    p.add_argument("--profile", default="toy")
    p.add_argument("--runs", default=None)
    p.add_argument("--out", required=True, help="folder for the task YAML files (--include_path)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_settings(getattr(args, "set", None))
        if args.command == "notebooks":
            run_notebooks(args.profile, args.only, args.runs, args.notebooks, overrides=overrides,
                          resume=args.resume)
        elif args.command == "pretrain":
            from .train import parallel
            from .train.pretrain import ensure_base_model, run_control
            profile = load_profile(args.config, overrides)
            with parallel.session():                 # under torchrun: every rank leaves the group
                ensure_base_model(profile, args.runs)
                if args.control:
                    run_control(profile, args.runs)
        elif args.command == "sft":
            from .train import parallel
            from .train.sft import ensure_sft_model
            with parallel.session():
                print(ensure_sft_model(load_profile(args.config, overrides), args.runs, args.variant))
        elif args.command == "grpo":
            from .rl.runs import ensure_rl_model
            from .train import parallel
            with parallel.session():
                print(ensure_rl_model(load_profile(args.config, overrides), args.start, args.runs))
        elif args.command == "eval":
            run_eval(args)
        elif args.command == "report":
            from .report import write_report
            print(write_report(args.profile, args.runs))
        elif args.command == "book":
            from .book import build_book
            print(build_book(args.profile, args.out, args.runs))
        elif args.command == "pack":
            from .share import pack
            out = pack(args.profile, args.runs, args.out, args.notebooks)
            print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB")
        elif args.command == "unpack":
            from .share import unpack
            for name, state in unpack(args.archive, args.runs).items():
                print(f"{name:<28} {'reused' if state == 'current' else state}")
        elif args.command == "record-times":
            from .notebook import record_run_times
            entry = record_run_times(args.profile, args.runs, args.how)
            print(f"{args.profile}: {len(entry['notebooks'])} notebooks, {entry['total_s'] / 60:.1f} min in all")
        elif args.command == "export-lm-eval":
            from .eval import export_lm_eval_tasks, load_suite
            problems = load_suite(args.suite, args.profile, args.runs, args.format)
            for path in export_lm_eval_tasks(problems, args.out):
                print(path)
    except ValueError as err:        # config and profile errors: one sentence, no traceback
        sys.exit(f"mimo-lite: {err}")


if __name__ == "__main__":
    main()
