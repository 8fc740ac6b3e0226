#!/usr/bin/env bash
# The `paper` profile for MNIST and Fashion-MNIST in one GPU run: executed notebooks, results JSON,
# timings and what the machine has (GPU, Inception weights) under $OUT. Goal: 5 minutes, one H100.
#
# On a lent GPU (the device tool), from the repository root, carrying
#   .devdata  the gzipped IDX files (.devdata/{mnist,fashion}/*.gz) and pytorch-fid's wheel,
#   .whl      papermill, ipykernel and what they need, as Python 3.12 wheels (the GPU image has
#             torch, scikit-learn, pandas, matplotlib, pyyaml, but no Jupyter),
#   bash bench/gpu_paper.sh
# Test it on a CPU first (what the tests do not cover: the data and wheel steps):
#   OUT=/tmp/gpu PROFILE=smoke DATASETS=digits ONLY=figure3_4 JOBS=2 bash bench/gpu_paper.sh
set -euo pipefail
OUT=${OUT:?set OUT: the folder that comes back}
PROFILE=${PROFILE:-paper}
DATASETS=${DATASETS:-mnist fashion_mnist}
JOBS=${JOBS:-8}  # models trained at once on the one GPU
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
wheels=$(ls .whl/*.whl .devdata/*.whl 2>/dev/null || true)
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $wheels
  export PYTHONPATH=$PYTHONPATH:/tmp/site PATH=/tmp/site/bin:$PATH
fi
if [ -d .devdata/mnist ]; then  # torchvision's layout: <root>/MNIST/raw/<IDX files>
  for pair in mnist:MNIST fashion:FashionMNIST; do
    mkdir -p "/tmp/data/${pair#*:}/raw"
    for f in ".devdata/${pair%%:*}"/*.gz; do gunzip -c "$f" > "/tmp/data/${pair#*:}/raw/$(basename "$f" .gz)"; done
  done
  export SIGMAVAE_DATA=/tmp/data
fi
export SIGMAVAE_CACHE=$OUT/cache
{
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  echo "pytorch-fid Inception weights (pt_inception-*.pth) on this machine:"
  find / -xdev -name 'pt_inception*' 2>/dev/null | head -5 || true
  ls ~/.cache/torch/hub/checkpoints 2>/dev/null || echo "(no torch hub checkpoint cache)"
} > "$OUT/device.txt" 2>&1
start=$SECONDS
for ds in $DATASETS; do
  python3 -m sigmavae.cli reproduce --profile "$PROFILE" --jobs "$JOBS" --out "$OUT/notebooks-$ds" \
      ${ONLY:+--only "$ONLY"} -p dataset "$ds" -p results_dir "$OUT/results" 2>&1 | tee -a "$OUT/timings.txt"
done
echo "all datasets: $((SECONDS - start)) s" | tee -a "$OUT/timings.txt"
