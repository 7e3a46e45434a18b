"""Small models for the generation tests: a random one, and one whose MTP drafts pass about half the time."""

from functools import lru_cache

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import extend_mtp_layers


@lru_cache
def random_model(vocab_size: int = 64, seed: int = 0, mtp_layers: int = 1) -> MiMoForCausalLM:
    torch.manual_seed(seed)
    return MiMoForCausalLM(preset("smoke", vocab_size=vocab_size,
                                  num_nextn_predict_layers=mtp_layers)).eval()


def markov_batch(generator: torch.Generator, n: int, length: int, vocab_size: int) -> torch.Tensor:
    """Sequences where x_{t+1} = 3·x_t + 1 mod V nine times in ten, a random token otherwise."""
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, vocab_size, (n,), generator=generator)
    for t in range(1, length):
        jump = torch.rand(n, generator=generator) < 0.1
        noise = torch.randint(0, vocab_size, (n,), generator=generator)
        x[:, t] = torch.where(jump, noise, (3 * x[:, t - 1] + 1) % vocab_size)
    return x


@lru_cache
def trained_model(vocab_size: int = 32, steps: int = 30) -> MiMoForCausalLM:
    """Smoke size, trained briefly with L_main + λ·L_mtp on `markov_batch`: its MTP layer drafts well."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=vocab_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = markov_batch(g, 16, 24, vocab_size)
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@lru_cache
def drafting_model(mtp_layers: int = 3, noise: float = 3.0) -> MiMoForCausalLM:
    """`trained_model` with `mtp_layers` MTP layers whose weights are blurred by noise, so that
    drafts are accepted about half the time: every acceptance count 0..K occurs."""
    model = extend_mtp_layers(trained_model(), mtp_layers) if mtp_layers > 1 else trained_model()
    g = torch.Generator().manual_seed(0)
    blurred = MiMoForCausalLM(model.config).eval()
    blurred.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in blurred.model.mtp_layers.parameters():
            if p.dim() > 1:
                p.add_(noise * p.std() * torch.randn(p.shape, generator=g))
    return blurred


@pytest.fixture(autouse=True)
def one_thread():
    """Decode-sized tensors run faster on one thread than they pay for waking a second one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
