#!/usr/bin/env bash
# The README's comparison on `sentiment`: Quantum-PEFT (the main job's K = 8, L = 1; and K = 4 with L = 1 and 2),
# LoRA (r = 1 and 8), head only and full fine-tuning, all with seed 42, 3 epochs, batch 16, max length 64 and each
# method's default learning rate; then Quantum-PEFT K = 8 and LoRA r = 8 again with seed 1, to show seed variance.
# Runs go one after another so that their training times are comparable, then one table from their results.json.
# A finished run (its results.json exists) is skipped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/compare}
run() {
  local name=$1; shift
  if [ -f "$OUT/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  ./qpeft train --task sentiment --epochs 3 --out "$OUT/$name" "$@"
}
run quantum-k8-l1 --method quantum --rank 8 --layers 1 --seed 42
run quantum-k4-l1 --method quantum --rank 4 --layers 1 --seed 42
run quantum-k4-l2 --method quantum --rank 4 --layers 2 --seed 42
run lora-r1 --method lora --rank 1 --seed 42
run lora-r8 --method lora --rank 8 --seed 42
run head --method head --seed 42
run full --method full --seed 42
run quantum-k8-l1-seed1 --method quantum --rank 8 --layers 1 --seed 1
run lora-r8-seed1 --method lora --rank 8 --seed 1
names=(quantum-k8-l1 quantum-k4-l1 quantum-k4-l2 lora-r1 lora-r8 head full quantum-k8-l1-seed1 lora-r8-seed1)
./qpeft report "${names[@]/#/$OUT/}" --out "$OUT/table"
