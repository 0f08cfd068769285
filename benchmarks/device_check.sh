#!/usr/bin/env bash
# The GPU checks, as one prepared run for a machine lent for a few minutes (issue 7).
#
#   bash benchmarks/device_check.sh [OUT_DIR]   # ~8 min on an H100, at most 9 min 25 s: a 600 s limit
#
# 1. benchmarks/gpu.py with --sweep (kernel, end to end, diffrax if installed, sweep): first,
#    so that its compile times are those of a fresh machine (~2 min on an H200), with fresh
#    processes' first calls with and without the prebuilt kernels (tolsim.cuda_prebuilt);
# 2. the ODE CUDA tests on the device (~3 min on an H200: each test compiles its kernels),
#    with the check that a prebuilt kernel gives the compiled kernel's results;
# 3. the stochastic CUDA tests on the device (raw streams, tau paths, portable log/exp;
#    ~1.5 min on an H100);
# 4. register caps 128 and 168 timed against each other, each generic, with the kernel family's
#    constants (crowding law, Hill coefficients of 1) and with the design's constants compiled
#    in (benchmarks/gpu_variants.py).
# Each step has its own time limit and its own log; a failing step does not stop the next.
# Python packages missing on the machine are carried as wheels in .whl/ (fetch them first
# with benchmarks/device_wheels.sh; installed with --no-deps into a private directory; name
# .whl in the run's carry). Results land in OUT_DIR (default $OUT or
# /tmp/tolsim-device-check): *.log, gpu.json, and summary.txt with each step's exit status.
set -u
out=${1:-${OUT:-/tmp/tolsim-device-check}}
mkdir -p "$out"
source benchmarks/device_env.sh
TOLSIM_CACHE_DIR=$(mktemp -d)
export TOLSIM_CACHE_DIR
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1

step() {  # name, time limit (s), command...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$out/summary.txt"
}

step benchmark 150 python3 benchmarks/gpu.py --repeats 3 --cpu-samples 5000 \
    --max-registers 128 --sweep --out "$out/gpu.json"
step ode_tests 165 env TOLSIM_TEST_CUDA=device \
    python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_cuda.py tests/test_cuda_prebuilt.py
step stochastic_tests 110 env TOLSIM_TEST_CUDA=device \
    python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_cuda_stochastic.py tests/test_elementary.py
# the register cap: 168 halves the generic kernel's spills, the family's constants halve its
# code (benchmarks/kernel_sass.py); timed against 128, each generic, with the family's and with
# the design's constants compiled in (6 compiles, ~10 s each, then 1e6 samples)
step variants 140 python3 benchmarks/gpu_variants.py c128=256:128 c168=256:168 \
    --family --specialise --repeats 5 --out "$out/variants.json"
tail -n 3 "$out"/*_tests.log >> "$out/summary.txt"
cat "$out/summary.txt"
