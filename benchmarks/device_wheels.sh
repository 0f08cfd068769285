#!/usr/bin/env bash
# Download, into .whl/, the wheels of tolsim's dependencies that the lent GPU machines lack
# (their image's package list: ../.library/device/KINDS.md, read 2026-11-17; it has numpy,
# scipy, numba, numba-cuda, xarray, pandas, matplotlib, tqdm, and diffrax for the peer).
# device_env.sh installs them there with --no-deps ahead of the image's packages; name .whl
# in the device run's `carry`. Python 3.12, manylinux x86_64, the versions tested here.
# numpy: the image had numpy 2.5.2 on 2026-11-27, under which numba-cuda 0.30.4 fails on its
# first compile (np.row_stack); tolsim[cuda] pins numpy<2.5, so the run carries 2.4.6.
#
#   bash benchmarks/device_wheels.sh && du -sh .whl    # 40 MiB; the carry limit is 64 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=(
    netCDF4==1.7.5.1.post1 cftime==1.6.6.1 tomli_w==1.2.0 emcee==3.1.6
    dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2
    zict==3.0.0 tornado==6.6.1 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1
    google-crc32c==1.9.0 numpy==2.4.6
)
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${wheels[@]}"
