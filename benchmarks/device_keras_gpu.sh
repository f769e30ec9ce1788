#!/usr/bin/env bash
# The GPU run of benchmarks/bench_extractors.py, as executed on a lent GPU box
# (no registry access there; wheels for keras and its pure-Python needs are
# carried in .whl/). TensorFlow's CUDA wheels are too large to carry, so Keras 3
# runs on its JAX backend, which that machine has with CUDA.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, keras, sklearn; print(jax.devices(), keras.__version__, sklearn.__version__)"
for dev in gpu cpu; do
  python3 benchmarks/bench_extractors.py --frameworks keras --device $dev \
      --n-images 8192 --size 64 --batch-size 256 --repeat 5 | tee -a "$OUT/keras_$dev.md"
done
# single-thread ExactIndex vs sklearn on this box's quiet CPU (a second machine's figure)
timeout 240 python3 benchmarks/bench_exact.py --repeats 3 --out "$OUT/exact_gpu_host.md" | tail -8
