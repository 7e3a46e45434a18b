"""The model on CUDA in bf16, compiled: skipped on machines without a GPU."""

import pytest
import torch

from mimo_lite.config import preset
from mimo_lite.model import MiMoForCausalLM

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bf16_training_step_compiles_and_tracks_fp32():
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy")).cuda()
    ids = torch.randint(0, model.config.vocab_size, (4, 128), device="cuda")
    with torch.no_grad():
        reference = model(ids, labels=ids).loss.item()
    compiled = torch.compile(model, fullgraph=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = compiled(ids, labels=ids)
    out.loss.backward()
    assert abs(out.loss.item() - reference) < 0.05 * reference
    assert all(p.grad is not None for n, p in model.named_parameters())


def test_bf16_weights_generate_on_gpu():
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy")).cuda().to(torch.bfloat16).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 8), device="cuda")
    out = model.generate(ids, max_new_tokens=16, do_sample=False)
    assert out.shape == (2, 24) and out.device.type == "cuda"
