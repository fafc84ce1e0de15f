#!/usr/bin/env bash
# The cpu schedule's cuts against the official schedule on one cell (issue 17, section 4):
# cifar10-real, CIFAR-10 / ResNet-32 (published teacher), Num 10, ratio 100, seed 0, variant none.
# Each run's record (config, seed, code version, environment, timings) is written to <name>.json here.
# Resumable: a run whose JSON exists is skipped.  Run from the repository root:
#   bash results/studies/schedule/run.sh
set -euo pipefail
out=results/studies/schedule
py=${PYTHON:-.venv/bin/python}
base=(--dataset cifar10 --data-root ../shared/data --arch resnet32 --num 10 --imbalance-ratio 100 --seed 0
      --oe none --schedule cpu --teacher ../shared/data/teachers/cifar10_resnet32-d509ac18.th --ood cifar100
      --device cpu --json)
run() {
  local name=$1; shift
  [[ -s $out/$name.json ]] && { echo "[schedule] $name: done"; return; }
  echo "[schedule] $name: $* ($(date -u +%H:%M))"
  "$py" -m benchmark run "${base[@]}" "$@" | tail -n 1 > "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}
run mir-cpu                       --method mir
run mir-official                  --method mir --set mir.iters=2000
run practise-cpu                  --method practise
run practise-augment              --method practise --set practise.adaptor_augment=true
run practise-adaptor2000          --method practise --set practise.adaptor_iters=2000
run practise-adaptor2000-augment  --method practise --set practise.adaptor_iters=2000 --set practise.adaptor_augment=true
run practise-official             --method practise --set practise.adaptor_iters=2000 --set practise.adaptor_augment=true \
                                  --set practise.mir_iters=2000
