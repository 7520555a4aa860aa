#!/usr/bin/env bash
# Baseline vs adapted 2AFC on ../shared/data at a lavapipe-sized scale (see RESULTS.md for the settings and why).
# Usage: tools/evidence_issue4.sh OUT.jsonl NETS CONTEXTS   e.g. tools/evidence_issue4.sh results/issue4.jsonl alex,squeeze 0,1,2,3
set -euo pipefail
out=$1; nets=${2:-alex,squeeze}; contexts=${3:-0,1,2,3}
data=${DPS_DATA_DIR:-../shared/data}
bin=${DPS_GPU_BIN:-./target/release/dps-gpu}
TRAIN_LIMIT=${TRAIN_LIMIT:-500}; TEST_LIMIT=${TEST_LIMIT:-300}; EPOCHS=${EPOCHS:-4}; BATCH=${BATCH:-32}
for net in ${nets//,/ }; do
  for r in ${contexts//,/ }; do
    start=$(date +%s)
    $bin train --train "$data/cifar-10-batches-bin" --split train --limit "$TRAIN_LIMIT" --net "$net" --ranking "$r" \
      --epochs "$EPOCHS" --batch "$BATCH" --seed 0 -o "/tmp/evidence_${net}_$r.safetensors" --json > "/tmp/evidence_train.json"
    train_s=$(( $(date +%s) - start ))
    for scalars in none "/tmp/evidence_${net}_$r.safetensors"; do
      flag=(); [ "$scalars" != none ] && flag=(--scalars "$scalars")
      cifar=$($bin eval --test "$data/cifar-10-batches-bin" --split test --limit "$TEST_LIMIT" --net "$net" --ranking "$r" "${flag[@]}" --json)
      stl=$($bin eval --test "$data/stl10_binary/unlabeled_X.bin" --net "$net" --ranking "$r" "${flag[@]}" --json)
      python3 - "$net" "$r" "$scalars" "$train_s" "$cifar" "$stl" >> "$out" <<'PY'
import json, sys
net, r, scalars, train_s, cifar, stl = sys.argv[1:]
c, s = json.loads(cifar), json.loads(stl)
print(json.dumps({"net": net, "ranking": int(r), "metric": "baseline" if scalars == "none" else "adapted",
                  "cifar10_test_2afc": c["two_afc"], "cifar10_triplets": c["triplets"],
                  "stl10_2afc": s["two_afc"], "stl10_triplets": s["triplets"], "train_seconds": int(train_s),
                  "adapter": c["adapter"]}))
PY
    done
  done
done
