#!/usr/bin/env bash
# Several nodes, one torchrun per node, joined by a c10d rendezvous. Run the same line on every node:
#   NNODES=4 RDZV_HOST=node0 scaled/launch/multi_node.sh pretrain
# RDZV_HOST is any one node's address, reachable from the others; RDZV_PORT defaults to 29400.
# Never run at this size by the kit's tests (scaled/README.md).
set -euo pipefail
STAGE=${1:?usage: multi_node.sh pretrain|sft|grpo [mimo-lite options]}; shift
case "$STAGE" in
  pretrain) CONFIG=scaled/configs/pretrain_7b.yaml ;;
  sft)      CONFIG=scaled/configs/sft_7b.yaml ;;
  grpo)     CONFIG=scaled/configs/grpo_7b.yaml ;;
  *) echo "multi_node.sh: '$STAGE' has no launcher; the CLI trains pretrain, sft and grpo" >&2; exit 2 ;;
esac
: "${NNODES:?set NNODES, the number of nodes}" "${RDZV_HOST:?set RDZV_HOST, the address of one node}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # NVLink multicast off
torchrun --nnodes "$NNODES" --nproc_per_node "${GPUS:-8}" \
  --rdzv_backend c10d --rdzv_endpoint "$RDZV_HOST:${RDZV_PORT:-29400}" --rdzv_id "${RUN_ID:-mimo_7b_$STAGE}" \
  -m mimo_lite.cli "$STAGE" --config "$CONFIG" "$@"
