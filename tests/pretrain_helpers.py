"""A learnable toy token stream for exercising the pre-training loop without building a corpus."""

import torch

from mimo_lite.config import preset
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.train.loop import PretrainSection

VOCAB = 64


class CountingStream:
    """Sequences a, a+k, a+2k, … (mod VOCAB): the next token and the one after are predictable."""

    def __init__(self, stage: int, position: int, seq_len: int):
        self.stage, self.position, self.seq_len = stage, position, seq_len

    def take(self, n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(1000 * self.stage + self.position)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        step = torch.randint(1, 4, (n, 1), generator=g)
        self.position += n
        return (start + step * torch.arange(self.seq_len)) % VOCAB


SEQ_LENS = {1: 16, 2: 16, 3: 32}


def streams(stage: int, position: int) -> CountingStream:
    return CountingStream(stage, position, SEQ_LENS[stage])


def tiny_model_config():
    return preset("smoke", vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                  num_attention_heads=2, num_key_value_heads=1)


def tiny_model(seed: int = 0) -> MiMoForCausalLM:
    torch.manual_seed(seed)
    return MiMoForCausalLM(tiny_model_config())


def tiny_config(**overrides) -> PretrainSection:
    base = dict(total_tokens=24_000, peak_lr=3e-3, batch_tokens=256, micro_batch=8,
                min_warmup_tokens=1000, log_every=1, checkpoint_every=5, heldout_sequences=4)
    return PretrainSection(**{**base, **overrides})


def run(out_dir, max_steps=None):
    from mimo_lite.train.loop import train
    torch.manual_seed(0)
    model = tiny_model()
    heldout = {"counting": streams(1, 10_000).take(8)}
    return train(model, tiny_config(), streams, SEQ_LENS, out_dir, heldout=heldout,
                 max_steps=max_steps, progress=False), model


if __name__ == "__main__":   # the process the resume test kills
    import sys
    torch.set_num_threads(1)
    run(sys.argv[1])


def torchrun_two(script, text: str) -> None:
    """Write `text` to `script` and run it as 2 processes on the gloo backend (torchrun); fails
    with their error output when they do, and when a rank still runs gloo's worker threads once
    its work has ended (they would run on into the interpreter's shutdown).

    A launch in which a rank was killed by a signal (SIGABRT, SIGSEGV) runs again once, from the
    folder as it was before it, with a warning that carries the first launch's report: gloo's
    CPU transport has, rarely, aborted a rank in the middle of work that runs clean hundreds of
    times in a row. A rank killed twice fails the test, as does any other failure at once."""
    import json
    import shutil
    import warnings

    script.write_text(text + THREADS_LEFT.format(out=str(script)))
    before = set(script.parent.iterdir())
    run = _launch_two(script)
    if run.returncode != 0 and _killed_by_signal(run):
        first_log = script.with_suffix(".first.log")
        warnings.warn("a rank was killed by a signal; launched again once, from a clean folder. "
                      f"The first launch: {failure_report(script, run, first_log)}")
        for made in set(script.parent.iterdir()) - before - {first_log}:
            shutil.rmtree(made) if made.is_dir() else made.unlink()
        run = _launch_two(script)
    assert run.returncode == 0, failure_report(script, run)
    for rank in range(2):       # Linux lists a process's threads under /proc
        left = script.parent / f"{script.name}.threads-{rank}.json"
        if left.exists():
            names = json.loads(left.read_text())
            assert "pt_gloo_runloop" not in names, (
                f"rank {rank} still runs gloo's worker threads after parallel.session() ended "
                f"({names}): the process group is still referenced, and a thread left running "
                "into the interpreter's shutdown can abort the process")


def _launch_two(script):
    import os
    import subprocess
    import sys

    # PYTHONFAULTHANDLER: a rank that aborts prints every thread's Python stack
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1",
           "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script)],
                          capture_output=True, text=True, timeout=600, env=env)


def _killed_by_signal(run) -> bool:
    """Did torchrun report a rank that ended on SIGABRT or SIGSEGV (not on its own error)?"""
    import re
    return re.search(r"exitcode\s*:\s*-(6|11)\b", run.stderr) is not None


def failure_report(script, run, log=None) -> str:
    """What a failed 2-process launch printed, for the assertion: the lines that name an error
    (a rank that aborts prints its C++ message, unprefixed, before the other rank's traceback
    fills the end of the output), then the end of the output; the whole of it is kept next to
    the script (in `log`, by default `<script>.log`)."""
    import re

    log = log or script.with_suffix(".log")
    log.write_text(f"{run.stdout}\n----- stderr -----\n{run.stderr}")
    named = [line for line in run.stderr.splitlines()
             if re.search(r"terminate called|what\(\)|Error|Exception|Abort|Signal|signal", line)]
    # the faulthandler's stacks of an aborted rank: from "Fatal Python error" to its list of
    # extension modules
    stacks = re.findall(r"Fatal Python error.*?(?=\nExtension modules|\n\[rank|\Z)", run.stderr,
                        flags=re.S)
    return (f"the 2 processes failed (torchrun exit {run.returncode}; the whole output is in {log}).\n"
            "Lines that name an error:\n" + "\n".join(dict.fromkeys(named))[-4000:]
            + "\n\nStacks of an aborted rank:\n" + "".join(stacks)[:4000]
            + "\n\nThe end of the output:\n" + run.stderr[-2000:])


# Appended to every 2-process script: the threads each rank still runs once its work has ended
THREADS_LEFT = """
import json as _json, os as _os
if _os.path.isdir("/proc/self/task"):
    _names = []
    for _t in _os.listdir("/proc/self/task"):
        try:
            _names.append(open(f"/proc/self/task/{{_t}}/comm").read().strip())
        except OSError:                         # a thread that ended meanwhile
            pass
    open({out!r} + f".threads-{{_os.environ['RANK']}}.json", "w").write(_json.dumps(sorted(_names)))
"""
