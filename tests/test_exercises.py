"""The exercises: each checker accepts the reference solution and rejects planted mistakes with the
right explanation; the chapter notebooks' exercise cells run, their stubs read "not attempted yet",
and their "try this" commands name settings the profile accepts.

The solutions live only in notebooks/solutions/: their code cells are executed here as they are.
"""

import contextlib
import io
import json
import math
import re
import statistics
from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F

import mimo_lite.exercises as ex
from conftest import NOTEBOOKS
from mimo_lite.notebook import find_notebooks
from mimo_lite.exercises.checking import FAILED, NOT_ATTEMPTED

SOLUTIONS = NOTEBOOKS / "solutions"
IGNORE = -100


def code_cells(path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@lru_cache(maxsize=None)
def solutions(chapter: str) -> tuple[dict, str]:
    """Execute a solutions notebook's code cells; its namespace and what it printed."""
    [path] = SOLUTIONS.glob(f"{chapter}_*_solutions.ipynb")
    namespace, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in code_cells(path):
            exec(compile(source, str(path), "exec"), namespace)
    return namespace, out.getvalue()


EXERCISES = [   # checker, the notebook's function name, chapter
    ("check_rmsnorm", "rms_norm", "03"), ("check_rope", "rope", "03"), ("check_swiglu", "swiglu", "03"),
    ("check_mtp_input", "mtp_input", "03"), ("check_sft_mask", "sft_labels", "06"),
    ("check_group_advantages", "group_advantages", "08"), ("check_clip_higher_loss", "clip_higher_loss", "08"),
    ("check_fifo_selection", "fifo_selection", "09"), ("check_pass_at_k", "pass_at_k", "10"),
]


def test_every_checker_has_an_exercise_and_a_solution():
    assert sorted(c for c, _, _ in EXERCISES) == sorted(n for n in ex.__all__ if n.startswith("check_"))


@pytest.mark.parametrize("checker, name, chapter", EXERCISES)
def test_the_solution_passes(checker, name, chapter):
    namespace, printed = solutions(chapter)
    result = getattr(ex, checker)(namespace[name])
    assert result.passed, str(result)
    assert str(result) in printed                   # the notebook printed the same verdict


@pytest.mark.parametrize("checker", [c for c, _, _ in EXERCISES])
def test_a_stub_reads_not_attempted_and_an_exception_is_explained(checker):
    def stub(*args):
        raise NotImplementedError

    def broken(*args):
        raise KeyError("no such thing")

    assert getattr(ex, checker)(stub).status == NOT_ATTEMPTED
    result = getattr(ex, checker)(broken)
    assert result.status == FAILED and "raised KeyError: 'no such thing'" in str(result).replace("\n", " ")
    assert getattr(ex, checker)("rms_norm").status == FAILED          # not a function


# ---- planted mistakes: what a learner plausibly writes, and the words the verdict must use ------

def rms_eps_outside(x, w, eps):
    return w * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)


def rms_wrong_axis(x, w, eps):
    return w * x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps)


def rms_float32_out(x, w, eps):
    x = x.float()
    return w.float() * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rope_gptj(x, positions, theta):
    d = x.shape[-1]
    angles = positions.float()[..., None] * theta ** (-torch.arange(0, d, 2).float() / d)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], -1).flatten(-2)


def rope_from_zero(x, positions, theta):
    return solutions("03")[0]["rope"](x, torch.arange(x.shape[2]).expand(x.shape[0], -1), theta)


def swiglu_swapped(x, wg, wu, wd):
    return (F.silu(x @ wu.T) * (x @ wg.T)) @ wd.T


def mtp_parts(hidden, ids, model, shift=1, hidden_first=True, keep_last=False):
    layer = model.model.mtp_layers[0]
    T = hidden.shape[1] - (0 if keep_last else 1)
    h = layer.hidden_layernorm(hidden[:, :T])
    e = layer.token_layernorm(model.model.embed_tokens(ids[:, shift:shift + T] if shift else ids[:, :T]))
    return layer.input_proj(torch.cat([h, e] if hidden_first else [e, h], -1))


def sft_variant(tokenizer, messages, end=True, last_only=False, shift=False, everything=False):
    good = solutions("06")[0]["sft_labels"](tokenizer, messages)
    ids = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    if everything:
        return ids
    if not end:
        good = [IGNORE if i == tokenizer.convert_tokens_to_ids("<|im_end|>") else l for l, i in zip(good, ids)]
    if last_only:
        start = max(t for t in range(1, len(good)) if good[t] != IGNORE and good[t - 1] == IGNORE)
        good = [IGNORE if t < start else l for t, l in enumerate(good)]
    if shift:
        good = good[1:] + [IGNORE]
    return good


def advantages_population(rewards):
    return [(r - statistics.mean(rewards)) / (statistics.pstdev(rewards) + 1e-6) for r in rewards]


def advantages_no_eps(rewards):
    return [(r - statistics.mean(rewards)) / statistics.stdev(rewards) for r in rewards]


def advantages_none_as_zero(rewards):
    return solutions("08")[0]["group_advantages"]([0.0 if r is None else r for r in rewards])


def loss_variant(lp, old, adv, mask, lo, hi, symmetric=False, per_answer=False, masked=True):
    hi = lo if symmetric else hi
    mask = mask if masked else torch.ones_like(mask)
    ratio = (lp - old).exp()
    per_token = -torch.minimum(ratio * adv[:, None], ratio.clamp(1 - lo, 1 + hi) * adv[:, None]) * mask
    return (per_token.sum(1) / mask.sum(1)).mean() if per_answer else per_token.sum() / mask.sum()


def fifo_take_finished(order, valid, B):
    done = [g for g in order if valid[g]]
    return (sorted(done[:B]), order.index(done[B - 1]) + 1) if len(done) >= B else None


def fifo_barrier(order, valid, B):
    chosen = [g for g in range(len(valid)) if valid[g]][:B]
    return (chosen, len(order)) if len(chosen) == B else None


def fifo_unsorted(order, valid, B):
    result = solutions("09")[0]["fifo_selection"](order, valid, B)
    return result and ([g for g in order if g in result[0]], result[1])


MISTAKES = [   # checker, wrong function, words the verdict must contain
    ("check_rmsnorm", rms_eps_outside, "eps added outside the square root"),
    ("check_rmsnorm", rms_wrong_axis, "wrong axis"),
    ("check_rmsnorm", rms_float32_out, "expected dtype torch.bfloat16"),
    ("check_rope", rope_gptj, "GPT-J layout"),
    ("check_rope", rope_from_zero, "positions ignored"),
    ("check_swiglu", swiglu_swapped, "silu applied to the up projection"),
    ("check_mtp_input", lambda h, i, m: mtp_parts(h, i, m, shift=0), "embedding of x_t, not of the next token"),
    ("check_mtp_input", lambda h, i, m: mtp_parts(h, i, m, hidden_first=False), "DeepSeek-V3's order"),
    ("check_mtp_input", lambda h, i, m: mtp_parts(h, i, m, shift=0, keep_last=True), "T − 1 positions"),
    ("check_sft_mask", lambda t, m: sft_variant(t, m, end=False), "so the model learns to stop"),
    ("check_sft_mask", lambda t, m: sft_variant(t, m, everything=True), "only the assistant's reply is trained"),
    ("check_sft_mask", lambda t, m: sft_variant(t, m, last_only=True), "every assistant turn is trained"),
    ("check_sft_mask", lambda t, m: sft_variant(t, m, shift=True), "leave them unshifted"),
    ("check_group_advantages", advantages_population, "population std"),
    ("check_group_advantages", advantages_no_eps, "ZeroDivisionError"),
    ("check_group_advantages", advantages_none_as_zero, "unscored answer (None) counted as reward 0"),
    ("check_clip_higher_loss", lambda *a: loss_variant(*a, symmetric=True), "symmetric clip"),
    ("check_clip_higher_loss", lambda *a: loss_variant(*a, per_answer=True), "averaged over its own tokens"),
    ("check_clip_higher_loss", lambda *a: loss_variant(*a, masked=False), "padding tokens counted"),
    ("check_clip_higher_loss", lambda *a: -loss_variant(*a), "the sign"),
    ("check_clip_higher_loss", lambda *a: loss_variant(*a).item(), "Python float"),
    ("check_clip_higher_loss", lambda lp, *a: loss_variant(lp.detach(), *a), "loss.backward() failed"),
    ("check_fifo_selection", fifo_take_finished, "take_finished"),
    ("check_fifo_selection", fifo_barrier, "naive dynamic sampling"),
    ("check_fifo_selection", fifo_unsorted, "in launch order"),
    ("check_pass_at_k", lambda n, c, k: 1 - (1 - c / n) ** k, "without replacement"),
    ("check_pass_at_k", lambda n, c, k: c / n, "pass@1 only"),
    ("check_pass_at_k", lambda n, c, k: 1 - math.perm(n - c, k) / math.perm(n, k) if k > 1 else c / n + 0.1,
     "expected 0.3, got 0.4"),
]


@pytest.mark.parametrize("checker, wrong, words", MISTAKES,
                         ids=[f"{c}-{w[:24]}" for c, _, w in MISTAKES])
def test_a_planted_mistake_is_rejected_and_explained(checker, wrong, words):
    result = getattr(ex, checker)(wrong)
    text = " ".join(str(result).split())
    assert result.status == FAILED and not result
    assert words in text, text


def test_a_function_that_writes_into_its_inputs_does_not_change_the_reference():
    def in_place(x, w, eps):
        x.mul_(0)
        return solutions("03")[0]["rms_norm"](x, w, eps)

    assert ex.check_rmsnorm(in_place).status == FAILED
    assert ex.check_rmsnorm(solutions("03")[0]["rms_norm"]).passed


# ---- the exercise cells of the chapter notebooks ---------------------------------------------

CHAPTERS = find_notebooks(NOTEBOOKS)   # in course order, second parts included (05b, 08b)


def exercise_cells(path) -> tuple[str, list[str]]:
    """The notebook's "## Exercises" markdown and the code cells after it."""
    cells = json.loads(path.read_text())["cells"]
    at = max(i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## Exercises"))
    assert all(c["cell_type"] == "code" for c in cells[at + 1:])
    return "".join(cells[at]["source"]), ["".join(c["source"]) for c in cells[at + 1:]]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_exercises_name_real_settings_and_checkers(path):
    from mimo_lite.cli import parse_settings
    from mimo_lite.profile import load_profile

    text, stubs = exercise_cells(path)
    commands = re.findall(r"`(mimo-lite notebooks [^`]+)`", text)
    assert commands and 3 <= len(re.findall(r"^\d\. ", text, re.M)) <= 5
    number = path.stem.split("_")[0]
    for command in commands:
        assert re.search(rf"--only {number}\b", command) or number == "00", command
        sets = [a or b for a, b in re.findall(r"--set (?:'([^']+)'|(\S+))", command)]
        assert sets, command
        if path.name[:2] == "00" and "group_size=1" in command:   # the refused value, on purpose
            with pytest.raises(ValueError, match="group_size"):
                load_profile("toy", parse_settings(sets))
            continue
        load_profile("toy", parse_settings(sets))
    named = set(re.findall(r"check_\w+", text))
    assert named <= set(ex.__all__)
    assert named == {n for s in stubs for n in re.findall(r"check_\w+", s)}


@pytest.mark.parametrize("path", [p for p in CHAPTERS if exercise_cells(p)[1]],
                         ids=lambda p: p.stem)
def test_chapter_stub_cells_run_and_read_not_attempted(path):
    for source in exercise_cells(path)[1]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, str(path), "exec"), {})
        assert "not attempted yet" in out.getvalue() and "raise NotImplementedError" in source


def test_the_notebook_runner_leaves_the_solutions_out(tmp_path, monkeypatch):
    import papermill

    from mimo_lite.cli import run_notebooks

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, *a, **k: ran.append(source))
    run_notebooks("smoke", runs_root=str(tmp_path), notebooks_dir=NOTEBOOKS)
    assert len(ran) == len(CHAPTERS) and not [r for r in ran if "solutions" in r]
    assert len(list(SOLUTIONS.glob("*.ipynb"))) == len({c for _, _, c in EXERCISES})
