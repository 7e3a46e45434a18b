#!/usr/bin/env bash
# Evaluate a run of runs/mimo_7b/ (base, sft, rl, rl_zero) or a Hugging Face checkpoint directory
# with the paper's sampling (scaled/configs/eval_7b.yaml; report §3.5.1): temperature 0.6,
# top-p 0.95, up to 32,768 new tokens, pass@1 averaged over 32 samples. vLLM generates (scaled
# environment: make scaled-env), with MiMo's MTP layer drafting one token a step; one GPU.
#   scaled/launch/eval.sh sft                       # the kit's held-out problems
#   scaled/launch/eval.sh sft --suite aime24.jsonl  # a local problem file
# Never run at this size by the kit's tests (scaled/README.md).
set -euo pipefail
MODEL=${1:?usage: eval.sh base|sft|rl|rl_zero|CHECKPOINT_DIR [mimo-lite eval options]}; shift
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # NVLink multicast off
python -m mimo_lite.cli eval --model "$MODEL" --profile mimo_7b --backend vllm --speculative --samples 32 --k 1 \
  --temperature 0.6 --top-p 0.95 --max-new-tokens 32768 "$@"
