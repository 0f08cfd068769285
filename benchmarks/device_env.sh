# Sourced by the prepared GPU runs (device_check.sh, gpu_profile.sh): tolsim from this checkout
# on PYTHONPATH, and the Python packages missing on a lent machine, carried as wheels in .whl/,
# installed with --no-deps into a private directory ahead of it.
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/tolsim-site .whl/*.whl
    export PYTHONPATH=/tmp/tolsim-site:$PWD/src
else
    export PYTHONPATH=$PWD/src
fi
