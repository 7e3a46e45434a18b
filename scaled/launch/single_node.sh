#!/usr/bin/env bash
# One node, all its GPUs: pre-training, SFT or GRPO at MiMo-7B's shape through the kit's CLI.
#   scaled/launch/single_node.sh pretrain          # GPUS=8 by default; extra args go to mimo-lite
#   GPUS=4 scaled/launch/single_node.sh sft --set sft.log_every=1
# Run from the kit's checkout. Never run at this size by the kit's tests (scaled/README.md).
set -euo pipefail
STAGE=${1:?usage: single_node.sh pretrain|sft|grpo [mimo-lite options]}; shift
case "$STAGE" in
  pretrain) CONFIG=scaled/configs/pretrain_7b.yaml ;;
  sft)      CONFIG=scaled/configs/sft_7b.yaml ;;
  grpo)     CONFIG=scaled/configs/grpo_7b.yaml ;;
  *) echo "single_node.sh: '$STAGE' has no launcher; the CLI trains pretrain, sft and grpo" >&2; exit 2 ;;
esac
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # NVLink multicast off
torchrun --standalone --nproc_per_node "${GPUS:-8}" -m mimo_lite.cli "$STAGE" --config "$CONFIG" "$@"
