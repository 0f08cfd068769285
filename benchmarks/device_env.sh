# Sourced by the prepared GPU runs (device_check.sh, gpu_profile.sh): tolsim from this checkout
# on PYTHONPATH, and the Python packages missing on a lent machine, carried as wheels in .whl/,
# installed with --no-deps into a private directory ahead of it.
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/tolsim-site .whl/*.whl
    export PYTHONPATH=/tmp/tolsim-site:$PWD/src
    # The carried numpy (tolsim[cuda]'s pin) goes ahead of the image's; if the image's compiled
    # packages refuse it, drop it and let tolsim name the trap instead.
    if ! python3 -c "import numpy, scipy, pandas, xarray, numba, numba.cuda, matplotlib" \
        > /tmp/tolsim-env-check.log 2>&1; then
        cat /tmp/tolsim-env-check.log >&2
        echo "device_env: the carried numpy fails with the image's packages; using the image's" >&2
        rm -rf /tmp/tolsim-site/numpy /tmp/tolsim-site/numpy-*.dist-info \
            /tmp/tolsim-site/numpy.libs /tmp/tolsim-site/bin
    fi
else
    export PYTHONPATH=$PWD/src
fi
python3 -c "
import importlib.metadata as m, sys
print('python', sys.version.split()[0], *(f'{p} {m.version(p)}' for p in
      ('numpy', 'scipy', 'numba', 'numba-cuda', 'llvmlite', 'cuda-core', 'cuda-bindings', 'xarray')))
" >&2
