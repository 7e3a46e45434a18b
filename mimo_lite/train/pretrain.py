"""Pre-training on the kit's corpus: `pretrain(profile)` and `ensure_base_model(profile)`.

Glue between the data pipeline (notebooks 01 and 02: stage samplers and held-out splits), the
tokenizer (notebook 02) and the loop (`loop.train`). The run lives in `runs/<profile>/pretrain/` (metrics,
checkpoints: a killed run resumes), the result in `runs/<profile>/base/`, a transformers
checkpoint with its tokenizer: `MiMoForCausalLM.from_pretrained("runs/toy/base")`, or
`AutoModelForCausalLM.from_pretrained("runs/toy/base", trust_remote_code=True)`.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import torch

from ..artifacts import (FORMAT, build_all, building, claim, current, fingerprint, one_builder,
                         run_folder, runs_dir, torch_threads, write_json)
from ..model import MiMoForCausalLM
from ..profile import DOMAINS, as_profile
from . import parallel
from .loop import PretrainSection, set_rope_theta, train


class SamplerStream:
    """A stage sampler read from a position onwards (the loop's TokenStream)."""

    def __init__(self, sampler, position: int):
        self.sampler, self.position = sampler, position

    def take(self, n: int) -> torch.Tensor:
        rows, _ = self.sampler.batch(self.position, n)
        self.position += n
        return rows


def model_config(profile, tokenizer):
    """The profile's model config, with the tokenizer's special ids and room for stage 3's context."""
    longest = max(profile.data.stage(s).seq_len for s in (1, 2, 3))
    base = profile.model.config()
    return profile.model.config(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=max(base.max_position_embeddings, longest))


def _setup(profile, runs_root):
    from ..data.mixture import CONTROL, ensure_packed, heldout_sequences, section, stage_sampler
    from ..tokenizer import ensure_tokenizer

    tokenizer = ensure_tokenizer(profile, runs_root)
    ensure_packed(profile, runs_root)
    cfg: PretrainSection = profile.pretrain
    config = model_config(profile, tokenizer)
    seq_lens = {s: section(profile, s).seq_len for s in (1, 2, 3, CONTROL)}
    samplers = {}

    def streams(stage: int, position: int) -> SamplerStream:
        if stage not in samplers:
            samplers[stage] = stage_sampler(profile, stage, runs_root)
        return SamplerStream(samplers[stage], position)

    heldout = {}
    for domain in DOMAINS:
        rows = heldout_sequences(profile, domain, seq_lens[1], runs_root)[:cfg.heldout_sequences]
        if len(rows):
            heldout[domain] = rows
    return tokenizer, config, seq_lens, streams, heldout, base_fingerprint(profile)


def base_fingerprint(profile) -> str:
    """What decides the base model (and the pretrain/ runs): the packed data (and through it
    the corpus and tokenizer), the `model` and `pretrain` sections, seed, dtype, FORMAT["base"]."""
    from ..data.mixture import packed_fingerprint

    profile = as_profile(profile)
    return fingerprint("pretrain", FORMAT["base"], packed_fingerprint(profile), profile.model,
                       profile.pretrain, profile.seed, profile.dtype)


def _run(folder: Path, digest: str, profile, config, cfg, streams, seq_lens, heldout,
         curriculum=True, max_steps=None, progress=True, stop_at_stage=None, threads=None):
    """Train in `folder`, resuming what a run with the same fingerprint left there; on `threads`
    torch threads (default: the profile's `threads`)."""
    run_folder(folder, digest)
    profile.use_threads()
    parallel.init()
    device = profile.torch_device
    # built whole in one process; under torchrun on the meta device, each rank filling its shards
    model = parallel.build(config, profile.seed, device, profile.torch_dtype)
    with torch_threads(threads):
        state = train(model, cfg, streams, seq_lens, folder, heldout=heldout, device=device,
                      dtype=profile.torch_dtype, max_steps=max_steps, curriculum=curriculum,
                      progress=progress, compile=profile.compile, tracker=profile.tracker,
                      stop_at_stage=stop_at_stage, activation_checkpointing=profile.activation_checkpointing,
                      async_checkpoints=profile.async_checkpoints)
    return model, state


def pretrain(profile, runs_root: str | Path | None = None, progress: bool = True,
             control: bool = False):
    """Run (or resume) the three-stage pre-training of `profile`; returns (model, tokenizer, state).

    With `control=True` it also runs the control for notebook 04: from the end of stage 1, the
    same tokens on one flat mixture of stages 2–3's domains (runs/<profile>/pretrain_control/).
    """
    profile = as_profile(profile)
    tokenizer, config, seq_lens, streams, heldout, digest = _setup(profile, runs_root)
    root = runs_dir(profile.name, runs_root)
    model, state = _run(root / "pretrain", digest, profile, config, profile.pretrain, streams,
                        seq_lens, heldout, progress=progress)
    if control:
        run_control(profile, runs_root, progress)
    return model, tokenizer, state


@one_builder("control")
def run_control(profile, runs_root=None, progress: bool = True):
    """From stage 1's end, the tokens of stages 2–3 on one flat mixture of their domains.

    The mixture (`mixture.control_stage`) gives each domain its average share over stages 2–3,
    at stage 2's context and RoPE base: the same domains and tokens as the curriculum, without
    the ordering and without stage 3's longer context.
    """
    from . import checkpoint

    profile = as_profile(profile)
    tokenizer, config, seq_lens, streams, heldout, digest = _setup(profile, runs_root)
    root = runs_dir(profile.name, runs_root)
    folder = root / "pretrain_control"
    stage1_end = checkpoint.checkpoints(root / "pretrain" / "stage_ends")[-1]   # oldest = stage 1's end
    if not (folder / "checkpoints").exists() or (folder / "FINGERPRINT").read_text() != digest:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "checkpoints").mkdir(parents=True)
        shutil.copytree(stage1_end, folder / "checkpoints" / stage1_end.name)
        shutil.copy(root / "pretrain" / "metrics.jsonl", folder / "metrics.jsonl")
        (folder / "FINGERPRINT").write_text(digest)   # so that _run resumes from stage 1's end
    return _run(folder, digest, profile, config, profile.pretrain, streams, seq_lens, heldout,
                curriculum=False, progress=progress)


def ensure_pretraining(profile, runs_root: str | Path | None = None, progress: bool = True):
    """Notebook 04's two runs: the base model (three stages) and the control (`run_control`);
    returns (model, tokenizer, control_model, control_state).

    The two share stage 1. With `profile.processes` above 1 (on one machine) the main run stops
    at stage 1's end (trained alone, on every process's threads), then stages 2–3 and the control
    train side by side, one process each; with 1 they run one after the other. Either way the
    weights are the same: each run resumes from its checkpoint as if it had never stopped.
    """
    profile = as_profile(profile)
    if profile.processes > 1 and parallel.world_size() == 1:
        tokenizer, config, seq_lens, streams, heldout, digest = _setup(profile, runs_root)
        root = runs_dir(profile.name, runs_root)
        # stage 1 trains in the base model's run folder: under the base model's lock, so never beside
        # another process's `ensure_base_model` (a `mimo-lite grpo` in a terminal); released before the
        # workers start, since one of them takes it again
        with claim(root / ".base.lock"):
            if not current(root / "base", digest):
                print(f"[mimo-lite] pre-training stage 1 for profile {profile.name!r}; then stages 2–3 and the "
                      f"control side by side ({profile.processes} processes)", flush=True)
                # alone on the machine: on every process's threads (the same bits as on one: `share_cores`)
                _run(root / "pretrain", digest, profile, config, profile.pretrain, streams, seq_lens, heldout,
                     progress=progress, stop_at_stage=2, threads=profile.processes * profile.threads)
        build_all([partial(_quietly, ensure_base_model, profile, runs_root),
                   partial(_quietly, run_control, profile, runs_root)], profile.processes)
    model, tokenizer = ensure_base_model(profile, runs_root, progress)
    control_model, control_state = run_control(profile, runs_root, progress)
    return model, tokenizer, control_model, control_state


def _quietly(build, profile, runs_root) -> None:
    """`build(profile, runs_root)` without progress bars, returning nothing (a worker process's job)."""
    build(profile, runs_root, progress=False)


def stage_end_model(profile, stage: int, runs_root: str | Path | None = None,
                    run: str = "pretrain") -> MiMoForCausalLM:
    """The model as it was at the end of stage 1 or 2 of `run` (its `stage_ends/`), in eval mode,
    with the RoPE base it trained with (10k: stages 1–2 run at the short context)."""
    import json

    from . import checkpoint
    from ..tokenizer import ensure_tokenizer

    profile = as_profile(profile)
    folder = runs_dir(profile.name, runs_root) / run / "stage_ends"
    ends = {json.loads((p / "trainer_state.json").read_text())["stage"]: p
            for p in checkpoint.checkpoints(folder)}
    if stage not in ends:
        raise ValueError(f"No end-of-stage-{stage} checkpoint in {folder} (found stages "
                         f"{sorted(ends)}): run pretrain({profile.name!r}) to the end first.")
    model = MiMoForCausalLM(model_config(profile, ensure_tokenizer(profile, runs_root)))
    model.load_state_dict(checkpoint.model_weights(ends[stage]))
    set_rope_theta(model, 10_000.0)
    return model.to(profile.torch_device).eval()


@one_builder("base")
def ensure_base_model(profile, runs_root: str | Path | None = None, progress: bool = True):
    """The pre-trained base model and tokenizer of `profile` (runs/<profile>/base/), trained if missing."""
    from transformers import AutoTokenizer

    profile = as_profile(profile)
    tokenizer, config, *_, digest = _setup(profile, runs_root)
    folder = runs_dir(profile.name, runs_root) / "base"
    if not current(folder, digest):
        print(f"[mimo-lite] no base model for profile {profile.name!r} yet: pre-training it "
              f"(three stages, {profile.pretrain.total_tokens:,} tokens) -> {folder}", flush=True)
        model, tokenizer, state = pretrain(profile, runs_root, progress)
        model = parallel.whole_model(model)        # under torchrun gathered on rank 0, which saves it
        if parallel.rank() == 0:
            with building(folder, digest, tokens=state.tokens, steps=state.step) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                write_json(tmp / "pretrain_summary.json", {"heldout_loss": state.heldout,
                                                           "tokens": state.tokens, "steps": state.step})
        parallel.barrier()
    # whole in one process; under torchrun sharded, each rank reading only its shards
    model = parallel.load_pretrained(folder, profile.torch_device, profile.torch_dtype).eval()
    return model, AutoTokenizer.from_pretrained(folder)
