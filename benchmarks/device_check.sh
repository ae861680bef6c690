#!/usr/bin/env bash
# Every benchmark on a lent accelerator, sized to finish in under 8 minutes;
# tables go to $OUT (default results/device). Run from the repository root:
#   OUT=/tmp/out bash benchmarks/device_check.sh
set -euo pipefail
OUT=${OUT:-results/device}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
test -x "$PY" || { python3 -m venv .venv && .venv/bin/pip install --quiet -e '.[dev]' && PY=.venv/bin/python; }
"$PY" -c "import jax; print(jax.devices())" | tee "$OUT/devices.txt"
run() { local name=$1; shift; echo "== $name: $*"; timeout 150 "$PY" "$@" 2>&1 | tee "$OUT/$name.txt" || echo "$name failed or timed out" | tee -a "$OUT/$name.txt"; }
run bench_env benchmarks/bench_env.py --batch 1 64 1024 4096 --reps 5 --ref-reps 1
run bench_taxi benchmarks/bench_taxi.py --batch 1 16 64
run bench_amod benchmarks/bench_amod.py --batch 1 64 1024 4096 --reps 3 --ref-steps 5
run bench_routing benchmarks/bench_routing.py --batch 1 64 1024 --fleets 28 --scaling-fleets 24 96 --reps 2 --ref-steps 50
run bench_adapters benchmarks/bench_adapters.py --num-envs 256 --steps 100 --reps 2
run bench_parking benchmarks/bench_parking.py --batch 1 64 1024 --reps 3 --ref-steps 10
run bench_parking_training benchmarks/bench_parking_training.py --reps 3
run bench_train_mappo benchmarks/bench_train.py --alg mappo --reps 3
run bench_train_hagps benchmarks/bench_train.py --alg hagps --scenario manhattan-106 --reps 3
run bench_train_madarl benchmarks/bench_train.py --env taxi --alg madarl --scenario nyc-hex-synthetic --set num_taxis=10000 --reps 3
run bench_scaling benchmarks/bench_scaling.py --devices 1 --reps 3 --out "$OUT"
