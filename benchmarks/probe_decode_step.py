"""Where a decode step's time goes with CUDA graphs: the replay alone against a whole engine step.

    python benchmarks/probe_decode_step.py        # needs a CUDA GPU; gpu size, random weights, bf16

The engine-step figure averages 60 steps from length 20 to 80, so it includes recording the
span-128 bucket when the rows pass 64 tokens; the replay figure is 100 replays of one recorded
step, with nothing else in between.
"""
import time
import torch
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Engine, SamplingParams

torch.manual_seed(0)
model = MiMoForCausalLM(preset("gpu")).to(device="cuda", dtype=torch.bfloat16).eval()
g = torch.Generator().manual_seed(0)
for B in (1, 64):
    engine = Engine(model, SamplingParams(temperature=0, max_new_tokens=128), max_batch_size=B, max_length=144)
    for _ in range(B):
        engine.add_request(torch.randint(0, 8192, (16,), generator=g).tolist())
    for _ in range(4):
        engine.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(60):
        engine.step()
    torch.cuda.synchronize()
    step = (time.perf_counter() - t0) / 60
    graph = next(s[3] for k, s in engine.graphs.steps.items() if k[0] == B)
    with torch.inference_mode():
        for _ in range(3):
            graph.replay()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(100):
            graph.replay()
        torch.cuda.synchronize()
    replay = (time.perf_counter() - t0) / 100
    print(f"batch {B}: engine step {step * 1e3:.3f} ms, graph replay alone {replay * 1e3:.3f} ms, "
          f"recorded buckets {sorted(engine.graphs.steps)}")
