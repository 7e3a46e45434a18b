import pytest
import torch

from infer_models import markov_batch, one_thread, random_model, trained_model  # noqa: F401
from mimo_lite.infer import extend_mtp_layers, finetune_new_mtp_layers


def test_extension_replicates_the_trained_layer():
    base = trained_model()
    extended = extend_mtp_layers(base, 3)
    assert extended.config.num_nextn_predict_layers == 3
    assert base.config.num_nextn_predict_layers == 1             # the original is left alone
    base_state, state = base.state_dict(), extended.state_dict()
    for key, value in base_state.items():
        assert torch.equal(state[key], value)
    for k in (1, 2):
        for name, value in extended.model.mtp_layers[0].state_dict().items():
            assert torch.equal(extended.model.mtp_layers[k].state_dict()[name], value)
        assert extended.model.mtp_layers[k].self_attn.layer_idx == base.config.num_hidden_layers + k


def test_finetuning_moves_only_the_new_layers_and_lowers_their_loss():
    extended = extend_mtp_layers(trained_model(), 3)
    before = {k: v.clone() for k, v in extended.state_dict().items()}
    g = torch.Generator().manual_seed(1)

    def batches():
        while True:
            ids = markov_batch(g, 16, 24, 32)
            yield ids, ids

    history = finetune_new_mtp_layers(extended, batches(), steps=40, lr=3e-3)
    assert len(history) == 40 and len(history[0]) == 2
    for key, value in extended.state_dict().items():
        new_layer = key.startswith(("model.mtp_layers.1.", "model.mtp_layers.2."))
        changed = not torch.equal(value, before[key])
        if not new_layer:
            assert not changed, key
        elif key.endswith("proj.weight"):
            assert changed, key
    first = sum(map(sum, history[:5])) / 5
    last = sum(map(sum, history[-5:])) / 5
    assert last < first
    assert all(p.requires_grad for p in extended.parameters())   # flags restored


def test_bad_extension_requests_are_refused():
    with pytest.raises(ValueError, match="no trained MTP layer"):
        extend_mtp_layers(random_model(mtp_layers=0), 3)
    with pytest.raises(ValueError, match="already has 1"):
        extend_mtp_layers(random_model(), 1)
    with pytest.raises(ValueError, match="after the first"):
        finetune_new_mtp_layers(random_model(), iter([]), steps=1)
