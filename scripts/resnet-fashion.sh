#!/usr/bin/env bash
# The README's vision evidence: the bundled ImageNet ResNet-18 (imported from ONNX) fine-tuned on a fixed subset of
# the real Fashion-MNIST (the first 2,000 training images, 1,000 validation and 1,000 test images; 64 x 64, grey
# replicated to RGB), seed 42, 3 epochs, batch 16: Quantum-PEFT on every convolution (K = 4, L = 1 and K = 8, L = 2),
# LoRA r = 4 and 8 on the same convolutions, the head alone and full fine-tuning, each with its default learning rate.
# Runs go one after another; a finished run (its results.json exists) is skipped, so the script can be re-run.
# QPEFT=PATH runs another qpeft binary (e.g. a copy of the build, so that edits to the sources do not trigger rebuilds mid-run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/resnet-fashion}
run() {
  local name=$1; shift
  if [ -f "$OUT/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  ${QPEFT:-./qpeft} train --task fashion-mnist --model resnet18 --image-size 64 --train-limit 2000 --eval-limit 1000 \
    --epochs 3 --seed 42 --out "$OUT/$name" "$@"
}
run quantum-k4-l1 --method quantum --rank 4 --layers 1
run quantum-k8-l2 --method quantum --rank 8 --layers 2
run lora-r4 --method lora --rank 4
run lora-r8 --method lora --rank 8
run head --method head
run full --method full
names=(quantum-k4-l1 quantum-k8-l2 lora-r4 lora-r8 head full)
${QPEFT:-./qpeft} report "${names[@]/#/$OUT/}" --out "$OUT/table"
