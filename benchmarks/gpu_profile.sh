#!/usr/bin/env bash
# Where the CUDA kernel's time and compile time go, as one prepared GPU run (issue 7).
#
#   bash benchmarks/gpu_profile.sh [OUT_DIR]        # ~3 min on an H100
#
# 1. compile phases in a fresh process and the kernel's PTX (benchmarks/gpu.py --compile-only),
#    then ptxas on that PTX at -O3/-O2/-O1 (the "link" phase is ptxas), and which linker
#    numba-cuda uses;
# 2. Nsight Compute, full set, on the second launch of benchmarks/gpu_profile.py (1e5 samples,
#    lineinfo): the details page, and per source line of cuda_template.py.
# Results land in OUT_DIR (default $OUT or /tmp/tolsim-gpu-profile): summary.txt (logs and
# timings), details.txt, source_cuda.csv, source_sass.csv, profile.ncu-rep.
set -u
out=${1:-${OUT:-/tmp/tolsim-gpu-profile}}
mkdir -p "$out"
source benchmarks/device_env.sh
export PYTHONUNBUFFERED=1
log="$out/summary.txt"
work=$(mktemp -d)
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2> /dev/null | head -n 1)

{
    nvidia-smi --query-gpu=name,driver_version --format=csv
    python3 -c "from numba.cuda.cudadrv import driver; from numba.cuda import config; \
print('nvjitlink available:', driver._have_nvjitlink(), \
'CUDA_ENABLE_PYNVJITLINK:', getattr(config, 'CUDA_ENABLE_PYNVJITLINK', None))"
    echo "== compile-only (fresh cache), max registers 128"
    TOLSIM_CACHE_DIR=$(mktemp -d) timeout 120 python3 benchmarks/gpu.py --compile-only \
        --max-registers 128 --ptx-out "$work/kernel.ptx" | grep -v '^ *[0-9]*,\?$'
    ptxas --version | tail -n 1
    # numba-cuda's NVVM may write a newer PTX ISA than the system ptxas reads; the kernel
    # uses nothing newer than 9.0
    sed -i 's/^\.version 9\.[0-9]*/.version 9.0/' "$work/kernel.ptx"
    for level in 3 2 1; do
        TIMEFORMAT="ptxas -O$level: %R s"
        time ptxas -arch=sm_90a -O$level -maxrregcount=128 "$work/kernel.ptx" \
            -o "$work/k$level.cubin"
        stat -c "  %s bytes" "$work/k$level.cubin"
    done
    echo "== ncu ($ncu)"
} >> "$log" 2>&1

TOLSIM_CACHE_DIR=$(mktemp -d) timeout 300 "$ncu" --set full --import-source yes \
    --kernel-name regex:solve_kernel --launch-skip 1 --launch-count 1 -f -o "$out/profile" \
    python3 benchmarks/gpu_profile.py --samples 100000 >> "$log" 2>&1
echo "ncu exit $?" >> "$log"
"$ncu" -i "$out/profile.ncu-rep" --page details > "$out/details.txt" 2>&1
"$ncu" -i "$out/profile.ncu-rep" --page source --csv --print-source cuda \
    > "$out/source_cuda.csv" 2>&1
"$ncu" -i "$out/profile.ncu-rep" --page source --csv --print-source sass \
    > "$out/source_sass.csv" 2>&1
"$ncu" -i "$out/profile.ncu-rep" --page raw --csv > "$out/raw.csv" 2>&1
ls -la "$out" >> "$log"
cat "$log"
