#!/usr/bin/env bash
# The README's comparison on `sentiment`: Quantum-PEFT (K = 4, L = 1 and 2), LoRA (r = 1 and 8), head only and
# full fine-tuning, all with the same seed, epochs, batch size and max length, run one after another so that
# their training times are comparable; then one table from their results.json files.
# A finished run (its results.json exists) is skipped, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/compare}
run() {
  local name=$1; shift
  if [ -f "$OUT/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  ./qpeft train --task sentiment --seed 42 --epochs 3 --out "$OUT/$name" "$@"
}
run quantum-k4-l1 --method quantum --rank 4 --layers 1
run quantum-k4-l2 --method quantum --rank 4 --layers 2
run lora-r1 --method lora --rank 1
run lora-r8 --method lora --rank 8
run head --method head
run full --method full
./qpeft report "$OUT"/quantum-k4-l1 "$OUT"/quantum-k4-l2 "$OUT"/lora-r1 "$OUT"/lora-r8 "$OUT"/head "$OUT"/full --out "$OUT/table"
