#!/usr/bin/env bash
# The files a device run of bench/gpu_paper.sh returned (DIR: the device tool's files_at) → the
# repository: executed notebooks into notebooks/paper/ (MNIST) and notebooks/paper/fashion_mnist/,
# their results JSON into results/paper/, the evidence-store entries into evidence/ (`sigmavae evidence
# put`: an entry already there is kept, a different one reported), timings, the machine and the log
# into bench/results/gpu/.
# Only what came back complete is there (gpu_paper.sh drops a notebook the limit cut short); the
# rest of the repository is left as it is. Prints what it imported.
#
#   bash bench/import_gpu_run.sh DIR
set -euo pipefail
DIR=${1:?usage: bash bench/import_gpu_run.sh DIR (the folder of files the device run returned)}
[ -f "$DIR/device.txt" ] || { echo "$DIR has no device.txt: not what bench/gpu_paper.sh returns" >&2; exit 2; }
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
mkdir -p bench/results/gpu results/paper
cp "$DIR"/device.txt "$DIR"/timings.txt "$DIR"/log.txt bench/results/gpu/ 2>/dev/null || true
for archive in "$DIR"/notebooks-*.tar.gz; do
  [ -e "$archive" ] || continue
  ds=$(basename "$archive" .tar.gz); ds=${ds#notebooks-}
  case $ds in mnist) dest=notebooks/paper ;; *) dest=notebooks/paper/$ds ;; esac
  tmp=$(mktemp -d)
  tar -xzf "$archive" -C "$tmp"
  mkdir -p "$dest"
  for nb in "$tmp"/*.ipynb; do
    [ -e "$nb" ] || continue
    cp "$nb" "$dest/"
    echo "imported $dest/$(basename "$nb")"
  done
  for json in "$tmp"/results/*.json; do
    [ -e "$json" ] || continue
    cp "$json" results/paper/
    echo "imported results/paper/$(basename "$json")"
  done
  rm -rf "$tmp"
done
for archive in $(ls "$DIR"/evidence-*.tar.gz "$DIR"/evidence-*.tar.gz.aa 2>/dev/null); do
  tmp=$(mktemp -d)
  cat "${archive%.aa}"* | tar -xz -C "$tmp"  # one archive, or its parts .aa, .ab, … in order
  echo "$(basename "${archive%.aa}") into evidence/:"
  "$PY" -m sigmavae.cli evidence put "$tmp" --into evidence
  rm -rf "$tmp"
done
echo "timings: bench/results/gpu/timings.txt; the book shows the new pages after: python book/pages.py --write && python book/readme_results.py --write"
