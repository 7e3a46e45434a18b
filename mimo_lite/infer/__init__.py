"""Fast generation: KV cache, sampling, continuous batching (CUDA graphs on a GPU), MTP speculative
decoding (notebooks 05 and 05b)."""

from .cache import CacheWindow, KVCache, kv_bytes_per_token
from .engine import Completion, Engine
from .generate import generate
from .mtp_extension import completion_batches, extend_mtp_layers, finetune_new_mtp_layers
from .sampling import SamplingParams, probabilities, sample
from .speculative import (SpecStats, StepCosts, accept_drafts, batch_one_speedup, batch_one_timings,
                          speculative_generate, step_costs, teacher_forced_acceptance,
                          weights_read_ratio)

__all__ = ["CacheWindow", "Completion", "Engine", "KVCache", "SamplingParams", "SpecStats", "StepCosts",
           "accept_drafts", "batch_one_speedup", "batch_one_timings", "completion_batches",
           "extend_mtp_layers", "finetune_new_mtp_layers", "generate", "kv_bytes_per_token",
           "probabilities", "sample", "speculative_generate", "step_costs", "teacher_forced_acceptance",
           "weights_read_ratio"]
