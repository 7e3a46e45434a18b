"""The report card of a profile's runs: `mimo-lite report --profile P` writes runs/<P>/report/.

Nothing in the report is recomputed from models; it is read from what the runs left behind:

  runs/<P>/eval/<model>-heldout_spread/       the four models on the held-out problems (notebook 10):
                                              table.jsonl, one row per problem, c of n right
  runs/<P>/notebooks/NN_name.json             the figures each notebook recorded: 05 the decoding
                                              speed, 05b and 06 the MTP acceptance and speculative
                                              decoding's speed, 07 the sandbox's rate, 09 the
                                              Seamless Rollout tables

and laid out like the paper: the Base / RL-Zero / SFT / RL table of its Table 5 with the paper's
numbers beside the kit's (facts file §6.3), pass@k curves, pass@1 per tier, MTP acceptance and
the speed figures. What a run has not produced yet is written "not run", with the command that
produces it, so the report can be written at any point of the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import runs_dir
from .eval import summarise
from .eval.intervals import bootstrap, compare, fmt
from .eval.stage import eval_dir
from .rl.seamless_sim import PAPER_TABLE2, PAPER_TABLE3

MODELS = {"base": "Base", "rl_zero": "RL-Zero", "sft": "SFT", "rl": "RL"}   # Table 5's column order
SUITE = "heldout_spread"   # notebook 10's held-out problems, taken tier by tier (`eval.spread`): kept apart
#                            from eval/<model>-heldout/, where `mimo-lite eval` keeps its own settings
DOMAINS = ("math", "code")
# Table 5 of the report (facts file §6.3): pass@1 in %, MiMo-7B at 32K context, temperature 0.6.
PAPER_TABLE5 = {
    "MATH500": {"base": 37.4, "rl_zero": 93.6, "sft": 93.0, "rl": 95.8},
    "AIME 2024": {"base": 32.9, "rl_zero": 56.4, "sft": 58.7, "rl": 68.2},
    "AIME 2025": {"base": 24.3, "rl_zero": 46.3, "sft": 44.3, "rl": 55.4},
    "LiveCodeBench v5": {"base": 32.9, "rl_zero": 49.1, "sft": 52.3, "rl": 57.8},
    "LiveCodeBench v6": {"base": 29.1, "rl_zero": 42.9, "sft": 45.5, "rl": 49.3},
}
PAPER_MTP = "about 90% for the first MTP layer, above 75% for the third (report §2.2, AIME24)"
GAINS = (("sft", "base"), ("rl", "sft"), ("rl_zero", "base"), ("rl", "rl_zero"))   # what each stage adds
NOTEBOOKS = {"05": "05_inference", "05b": "05b_mtp_speculative", "06": "06_sft", "07": "07_rewards",
             "09": "09_seamless_rollout"}


def eval_results(profile: str, runs_root: str | Path | None = None, resamples: int = 2000) -> dict:
    """{model: dict(table, summary, settings)} for each of the four models evaluated on the
    held-out suite of `profile`, or None for a model not evaluated yet. `summary` is
    `eval.summarise(table)`: every metric with its 95% bootstrap interval over problems."""
    results = {}
    for model in MODELS:
        folder = eval_dir(profile, model, SUITE, runs_root)
        if not (folder / "table.jsonl").is_file():
            results[model] = None
            continue
        table = [json.loads(line) for line in (folder / "table.jsonl").read_text().splitlines() if line]
        results[model] = dict(table=table, summary=summarise(table, resamples=resamples),
                              settings=json.loads((folder / "settings.json").read_text()))
    return results


def metric(result: dict, name: str, **group) -> dict | None:
    """One summary figure ({estimate, low, high, n}) of a model for a group, e.g. domain="math"."""
    for row in result["summary"]:
        if row["group"] == group:
            return row.get(name)
    return None


def paired_gain(results: dict, better: str, than: str, name: str, domain: str,
                tiers=None) -> dict:
    """How much model `better` raises metric `name` over model `than` on `domain` (only its
    `tiers`, when given): the mean over problems of the per-problem difference, with a 95%
    bootstrap interval over problems. Both models answered the same problems, so the difference is
    paired: what is common to a problem (its difficulty) cancels, and the interval is narrower than
    the two intervals side by side. Its verdict: "higher" when the interval lies above 0, "lower"
    below, else "within noise" ("not measured" when no problem is left)."""
    def rows(model):
        return {row["id"]: row[name] for row in results[model]["table"]
                if row["domain"] == domain and (tiers is None or row.get("tier") in tiers)}

    a, b = rows(better), rows(than)
    gain = bootstrap([a[i] - b[i] for i in a if i in b], lambda xs: sum(xs) / len(xs))
    zero = dict(low=0.0, high=0.0)
    return dict(gain, verdict=compare(gain, zero))


def largest_k(results: dict) -> int:
    """The largest k with pass@k in every evaluated table (pass@16 at the toy profile)."""
    ks = [{int(key[5:]) for row in r["table"] for key in row if key.startswith("pass@")}
          for r in results.values() if r]
    return max(set.intersection(*ks)) if ks else 1


def pass_at_k_figure(results: dict):
    """pass@k against k, per domain, one line per model with its 95% band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, len(DOMAINS))
    for ax, domain in zip(axes, DOMAINS):
        for model, label in MODELS.items():
            r = results.get(model)
            if not r or metric(r, "pass@1", domain=domain) is None:
                continue
            ks = sorted({int(key[5:]) for row in r["table"] for key in row if key.startswith("pass@")})
            points = [metric(r, f"pass@{k}", domain=domain) for k in ks]
            line, = ax.plot(ks, [p["estimate"] for p in points], "o-", label=label)
            ax.fill_between(ks, [p["low"] for p in points], [p["high"] for p in points],
                            color=line.get_color(), alpha=0.15)
        ax.set(xscale="log", xlabel="k (samples drawn)", ylabel="pass@k", ylim=(0, 1.02),
               title=f"held-out {domain}: pass@k, 95% interval over problems")
        ax.set_xticks([1, 2, 4, 8, 16, 32], ["1", "2", "4", "8", "16", "32"])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tier_figure(results: dict):
    """pass@1 (averaged over samples) per difficulty tier, per domain, one bar per model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, len(DOMAINS))
    present = [m for m in MODELS if results.get(m)]
    for ax, domain in zip(axes, DOMAINS):
        tiers = sorted({row["tier"] for m in present for row in results[m]["table"]
                        if row["domain"] == domain and row["tier"] is not None})
        width = 0.8 / max(1, len(present))
        for j, model in enumerate(present):
            points = [metric(results[model], "pass@1", domain=domain, tier=t) for t in tiers]
            x = [i + (j - (len(present) - 1) / 2) * width for i in range(len(tiers))]
            est = [p["estimate"] for p in points]
            err = [[e - p["low"] for e, p in zip(est, points)], [p["high"] - e for e, p in zip(est, points)]]
            ax.bar(x, est, width, yerr=err, capsize=3, label=MODELS[model])
        ax.set_xticks(range(len(tiers)), [f"tier {t}" for t in tiers])
        ax.set(ylabel="pass@1", ylim=(0, 1.05), title=f"held-out {domain}: pass@1 per tier")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_report(profile: str, runs_root: str | Path | None = None) -> Path:
    """Write runs/<profile>/report/report.md and its figures; returns the Markdown file's path."""
    name = getattr(profile, "name", str(profile))
    root = runs_dir(name, runs_root)
    if not root.is_dir():
        raise ValueError(f"{root} does not exist: nothing has run at profile {name!r} yet; run the "
                         f"notebooks first (`mimo-lite notebooks --profile {name}`).")
    out = root / "report"
    out.mkdir(exist_ok=True)
    results = eval_results(name, runs_root)
    records = {nb: _record(root, stem) for nb, stem in NOTEBOOKS.items()}
    lines = [f"# mimo-lite report: profile `{name}`", "",
             f"Written by `mimo-lite report --profile {name}` from `{root}`. Every number of the kit "
             "was measured by the runs of this profile, on the machine that ran them; the paper's "
             "numbers are MiMo-7B's (facts file §6), shown beside them for their shape, not to be "
             "matched. \"not run\" marks what this profile has not produced yet.", ""]
    lines += _models_section(name, results, out)
    lines += _mtp_section(name, records)
    lines += _speed_section(name, records)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- the sections ------------------------------------------------------------------------------

def _models_section(name: str, results: dict, out: Path) -> list[str]:
    lines = ["## 1. Base, RL-Zero, SFT and RL (the paper's Table 5)", ""]
    done = [m for m in MODELS if results[m]]
    missing = [m for m in MODELS if not results[m]]
    if not done:
        return lines + [f"Held-out evaluation: not run (notebook 10, `mimo-lite notebooks --profile {name} "
                        f"--only 10`).", ""]
    first = results[done[0]]
    s, k = first["settings"], largest_k(results)
    counts = {d: sum(row["domain"] == d for row in first["table"]) for d in DOMAINS}
    lines += [f"The kit: {counts['math']} math and {counts['code']} code held-out problems of this profile, "
              f"{s['samples']} sampled replies each (temperature {s['temperature']}, top-p {s['top_p']}, at most "
              f"{s['max_new_tokens']} new tokens). pass@1 is averaged over the samples (avg@{s['samples']}); "
              f"pass@k is the unbiased estimator; [low, high] is a 95% bootstrap interval over problems.", ""]
    lines += ["| held-out | " + " | ".join(MODELS.values()) + " |", "|---|" + "---|" * len(MODELS)]
    for domain in DOMAINS:
        if not counts[domain]:
            continue
        for m in ("pass@1", f"pass@{k}"):
            cells = [fmt(metric(results[model], m, domain=domain)) if results[model] else "not run"
                     for model in MODELS]
            lines.append(f"| {domain}, {m} | " + " | ".join(cells) + " |")
    lines += ["", "The paper (Table 5, pass@1 in %, MiMo-7B, up to 32K tokens per reply):", "",
              "| benchmark | " + " | ".join(MODELS.values()) + " |", "|---|" + "---|" * len(MODELS)]
    for bench, row in PAPER_TABLE5.items():
        lines.append(f"| {bench} | " + " | ".join(f"{row[m]:.1f}" for m in MODELS) + " |")
    lines.append("")
    if missing:
        lines += ["Not run: " + ", ".join(MODELS[m] for m in missing) + f" (notebook 10: `mimo-lite notebooks "
                  f"--profile {name} --only 10`).", ""]
    pass_at_k_figure(results).savefig(out / "pass_at_k.png", dpi=110, bbox_inches="tight")
    tier_figure(results).savefig(out / "tiers.png", dpi=110, bbox_inches="tight")
    lines += ["### pass@k curves", "", "![pass@k](pass_at_k.png)", "",
              "### pass@1 per tier", "", "![pass@1 per tier](tiers.png)", "",
              "| tier | " + " | ".join(MODELS.values()) + " |", "|---|" + "---|" * len(MODELS)]
    for domain in DOMAINS:
        tiers = sorted({row["tier"] for m in done for row in results[m]["table"]
                        if row["domain"] == domain and row["tier"] is not None})
        for t in tiers:
            cells = [fmt(metric(results[m], "pass@1", domain=domain, tier=t)) if results[m] else "not run"
                     for m in MODELS]
            lines.append(f"| {domain} tier {t} | " + " | ".join(cells) + " |")
    lines += ["", "### Gains, paired over the same problems", "",
              f"| gain | domain | pass@1 | pass@{k} |", "|---|---|---|---|"]
    for better, than in GAINS:
        if results[better] and results[than]:
            for domain in (d for d in DOMAINS if counts[d]):
                cells = [paired_gain(results, better, than, m, domain) for m in ("pass@1", f"pass@{k}")]
                lines.append(f"| {MODELS[better]} − {MODELS[than]} | {domain} | "
                             + " | ".join(f"{fmt(c, signed=True)} ({c['verdict']})" for c in cells) + " |")
    return lines + [""]


def _mtp_section(name: str, records: dict) -> list[str]:
    lines = ["## 2. MTP acceptance (speculative decoding with the MTP layers)", "",
             f"The paper: {PAPER_MTP}. The kit: the share of drafts the main model accepts while "
             "decoding held-out prompts, per MTP layer given the layers before it were accepted.", "",
             "| model (notebook) | 1 MTP layer | with 3 layers, per layer |", "|---|---|---|"]
    for nb, model, one, three in (("05b", "Base", "spec1_acceptance", "spec3_conditional_acceptance"),
                                  ("06", "SFT", "sft_spec1_acceptance", "sft_spec3_conditional_acceptance")):
        r = records[nb]
        if r is None:
            lines.append(f"| {model} ({nb}) | {_not_run(name, nb)} | |")
            continue
        layers = r.get(three)
        lines.append(f"| {model} ({nb}) | {_pct(r.get(one))} | "
                     + (", ".join(f"layer {i + 1} {_pct(a)}" for i, a in enumerate(layers)) if layers
                        else "not recorded") + " |")
    return lines + [""]


def _speed_section(name: str, records: dict) -> list[str]:
    lines = ["## 3. Speed figures of record", "",
             "Measured on the machine that ran each notebook (a CPU at the `toy` profile): ratios "
             "travel between machines, absolute rates do not.", ""]
    r = records["05"]
    lines.append("**Decoding (notebook 05, base model).** " + (_not_run(name, "05") if r is None else (
        f"KV cache {_x(r.get('cache_speedup'))} faster than recomputing ({_num(r.get('tok_s_cache'))} tok/s); "
        f"continuous batching {_ratio(r.get('batching_steps'), 'static', 'continuous')} fewer engine steps than "
        f"static batching.")))
    r = records["05b"]
    lines += ["", "**Speculative decoding (notebook 05b, base model).** " + (_not_run(name, "05b") if r is None else (
        f"at batch 1 {_x(r.get('spec1_speedup'))} with 1 MTP layer, {_x(r.get('spec3_speedup'))} with 3."))]
    r = records["06"]
    lines += ["", "**Decoding the SFT model's replies (notebook 06).** " + (_not_run(name, "06") if r is None else (
        f"speculative decoding at batch 1 {_x(r.get('sft_spec1_speedup'))} with 1 MTP layer, "
        f"{_x(r.get('sft_spec3_speedup'))} with 3."))]
    r = records["07"]
    lines += ["", "**Sandbox (notebook 07).** " + (_not_run(name, "07") if r is None else (
        f"{_num(r.get('sandbox_tests_per_s'))} tests per second, each in its own confined process."))]
    lines += ["", "**Seamless Rollout (notebook 09, the paper's Table 2; virtual clock, normalised to naive).**", ""]
    r = records["09"]
    if r is None or "table2" not in r:
        return lines + [_not_run(name, "09") if r is None else "Table 2: not recorded.", ""]
    lines += ["| method | overall | rollout | idle ratio | sample waste | paper: overall | paper: idle ratio | paper: waste |",
              "|---|---|---|---|---|---|---|---|"]
    for mode, p in PAPER_TABLE2.items():
        row = r["table2"].get(mode)
        if row is None:
            continue
        lines.append(f"| {mode} | {row['overall_speedup']:.2f}× | {row['rollout_speedup']:.2f}× | "
                     f"{row['idle_ratio']:.1%} | {row['sample_waste']:.1%} | {p['overall']:.2f}× | "
                     f"{p['idle_ratio']:.1%} | " + ("/" if p["waste"] is None else f"{p['waste']:.1%}") + " |")
    t3 = r.get("table3", {}).get("seamless")
    if t3:
        lines += ["", f"Validation with async reward (Table 3): {t3['speedup']:.2f}× here, "
                      f"{PAPER_TABLE3['seamless']['overall']:.2f}× in the paper."]
    return lines + [""]


def _record(root: Path, stem: str) -> dict | None:
    path = root / "notebooks" / f"{stem}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _not_run(name: str, nb: str) -> str:
    return f"not run (notebook {nb}: `mimo-lite notebooks --profile {name} --only {nb}`)"


def _pct(x) -> str:
    return "not recorded" if x is None else f"{x:.0%}"


def _x(x) -> str:
    return "(not recorded)" if x is None else f"{x:.2f}×"


def _num(x) -> str:
    return "not recorded" if x is None else f"{x:,.0f}"


def _ratio(d, a, b) -> str:
    return "(not recorded)" if not d or not d.get(b) else f"{d[a] / d[b]:.2f}×"
