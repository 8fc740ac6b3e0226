#!/usr/bin/env bash
# The `paper` profile (appendix B.1's settings, 3 seeds) for MNIST and Fashion-MNIST, every artefact,
# in one call of the device tool (one command ≤ 600 s), sized to its limit: the GPU timings first
# (bench/train_speed.py: one model, then J processes sharing the card), then per block
# (MNIST latent 16: Tables 2-4, Figures 2-4, appendix, beyond the paper; MNIST latent 2: Table 1, Figure 1;
# Fashion-MNIST) the block's trainings, J processes at once (`reproduce --train-only --jobs J`), then
# its notebooks one at a time; what the limit cuts short is dropped: a notebook comes back executed
# to its end, with its results JSON, or not at all. Then bench/gmm_speed.py at CelebA's size if
# time is left. Models already in the repository's evidence store are not trained again (their pages
# read them there). What comes back ($OUT, ≤ 8 files of ≤ 16 MiB, one folder deep):
# notebooks-<ds>.tar.gz (executed notebooks + results/), evidence-<ds>.tar.gz (the evidence-store
# entries of every model this run finished, scores and figures included: bench/import_gpu_run.sh puts
# them into evidence/ with `sigmavae evidence put`), timings.txt, device.txt, log.txt.
#
#   bash bench/gpu_paper.sh prepare                 # here, once: .whl, .devdata; prints the travel size
#   DEVDATA=mnist bash bench/gpu_paper.sh prepare   # MNIST alone (the travel limit: Fashion's files are 26 MiB)
#   REHEARSE=1 OUT=/tmp/gpu bash bench/gpu_paper.sh  # here, on CPU: every step at the smoke profile
#   device run: command "OUT=$OUT bash bench/gpu_paper.sh", carry [".whl", ".devdata"], timeout_s 600
#   bash bench/import_gpu_run.sh DIR                # here: DIR (the files that came back) → the repo
#
# prepare: .whl = Python 3.12 wheels of what the device image lacks (bench/gpu_wheels.py: papermill,
# nbclient, ipykernel, jupyter_client, pytorch-fid and their needs), .devdata = the IDX files of
# $DATA (default ../shared/data) for $DEVDATA (default "mnist fashion"), xz-compressed, and this
# machine's FID classifiers (from $SIGMAVAE_CACHE, default ~/.cache/sigmavae): the FIDs already in
# the store were computed with them, and a classifier trained there would give FIDs not comparable.
# BLOCKS (default: every block of $DATASETS) lists "dataset:notebooks[:seeds]", trained and scored
# in that order, each block's trainings at once (up to JOBS); TIMINGS=0 skips the GPU timings.
# The rehearsal also installs the wheels into a bare target with this machine's Python 3.12 (PY312)
# beside the image's own light packages (fetched into .devimage, which never travels) and runs
# papermill there on a one-cell notebook; it reads and writes a copy of the evidence store.
set -euo pipefail
MODE=${1:-run}
ROOT=$(pwd)
MIB=$((1024 * 1024))

travel_size() {  # what a device call carries: tracked + untracked-not-ignored files + .whl + .devdata
  local tree carried
  tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -cb .whl .devdata 2>/dev/null | tail -1 | cut -f1)
  echo "would travel: $(( (tree + carried) / MIB )) MiB of 64 (working tree $((tree / MIB)) MiB, .whl + .devdata $((carried / MIB)) MiB)"
  [ $((tree + carried)) -le $((64 * MIB)) ] || { echo "too big for the device tool's 64 MiB" >&2; return 1; }
}

if [ "$MODE" = prepare ]; then
  DATA=${DATA:-../shared/data}
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || printf '/.whl/\n/.devdata/\n/.devimage/\n' >> .git/info/exclude
  [ -n "$(ls .whl/*.whl 2>/dev/null)" ] || python3 bench/gpu_wheels.py download .whl --image .devimage
  python3 bench/gpu_wheels.py check .whl
  for pair in mnist:MNIST fashion:FashionMNIST; do
    case " ${DEVDATA:-mnist fashion} " in *" ${pair%%:*} "*) ;; *) rm -rf ".devdata/${pair%%:*}"; continue ;; esac
    mkdir -p ".devdata/${pair%%:*}"
    for f in "$DATA/${pair#*:}/raw"/*-ubyte; do
      target=".devdata/${pair%%:*}/$(basename "$f").xz"
      [ -s "$target" ] || xz -9 -T0 -c "$f" > "$target"
    done
  done
  mkdir -p .devdata/classifiers
  cp "${SIGMAVAE_CACHE:-$HOME/.cache/sigmavae}"/classifier-*-e*.{pt,json} .devdata/classifiers/ 2>/dev/null \
    || echo "no FID classifier in ${SIGMAVAE_CACHE:-$HOME/.cache/sigmavae}: the device run trains its own"
  travel_size
  exit 0
fi

OUT=${OUT:?set OUT: the folder that comes back}
if [ "${REHEARSE:-0}" = 1 ]; then  # on this CPU: the smoke profile, tiny timings, no time limit to speak of
  PROFILE=${PROFILE:-smoke}; DATASETS=${DATASETS:-digits}; LIMIT=${LIMIT:-3000}; JOBS=${JOBS:-2}
  TIMING=${TIMING:---steps 2 --rounds 1 --batch-size 16}; SHARE_STEPS=${SHARE_STEPS:-2}
  GMM=${GMM:---n 2000 --dim 16 --components 8}
  DEVICE=cpu
else
  PROFILE=${PROFILE:-paper}; DATASETS=${DATASETS:-mnist fashion_mnist}; LIMIT=${LIMIT:-570}; JOBS=${JOBS:-6}
  TIMING=${TIMING:---steps 20 --rounds 2}; SHARE_STEPS=${SHARE_STEPS:-20}
  GMM=${GMM:---n 50000 --dim 256 --components 500}
  DEVICE=cuda
fi
deadline=$((SECONDS + LIMIT - 15))  # 15 s to pack what is done
WORK=$(mktemp -d /tmp/gpu-paper.XXXX)
mkdir -p "$OUT"
LOG=$OUT/log.txt TIMES=$OUT/timings.txt
: > "$LOG"; : > "$TIMES"
say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((deadline - SECONDS)); }
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} SIGMAVAE_CACHE=$WORK/cache
export SIGMAVAE_EVIDENCE=$ROOT/evidence  # read: what is stored is not trained again (and written)
if [ "${REHEARSE:-0}" = 1 ]; then  # here, the repository's store is left as it was: a copy is read and written
  cp -r "$ROOT/evidence" "$WORK/store" && export SIGMAVAE_EVIDENCE=$WORK/store
fi

# 1. the carried wheels, into a bare target
if [ "${REHEARSE:-0}" = 1 ]; then
  PY312=${PY312:-python3.12}
  [ -n "$(ls .whl/*.whl 2>/dev/null)" ] && [ -d .devimage ] || bash bench/gpu_paper.sh prepare
  "$PY312" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site312" .whl/*.whl
  "$PY312" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/image312" .devimage/*.whl
  (
    export PYTHONPATH=$WORK/site312:$WORK/image312 JUPYTER_PATH=$WORK/site312/share/jupyter PATH=$WORK/site312/bin:$PATH
    "$PY312" -c "import nbformat as f; f.write(f.v4.new_notebook(cells=[f.v4.new_code_cell('import sys, ipykernel, jupyter_client, nbclient; print(sys.version)')]), '$WORK/check.ipynb')"
    "$PY312" -m papermill -k python3 "$WORK/check.ipynb" "$WORK/check-out.ipynb" 2>> "$LOG"
    "$PY312" -c "import importlib.metadata as m; print('papermill', m.version('papermill'), 'pytorch-fid', m.version('pytorch-fid'))"
    grep -q '"3.12' "$WORK/check-out.ipynb"
  ) | tee -a "$LOG"
  say "rehearsal: the carried wheels install into a bare Python 3.12 target and run papermill there"
elif [ -n "$(ls .whl/*.whl 2>/dev/null)" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PYTHONPATH:/tmp/site JUPYTER_PATH=/tmp/site/share/jupyter PATH=/tmp/site/bin:$PATH
fi

# 2. the data, in torchvision's layout
if [ -d .devdata/mnist ] || [ -d .devdata/fashion ]; then
  for pair in mnist:MNIST fashion:FashionMNIST; do
    [ -d ".devdata/${pair%%:*}" ] || continue
    mkdir -p "$WORK/data/${pair#*:}/raw"
    for f in ".devdata/${pair%%:*}"/*.xz; do xz -dc "$f" > "$WORK/data/${pair#*:}/raw/$(basename "$f" .xz)"; done
  done
  export SIGMAVAE_DATA=$WORK/data
fi
if [ -n "$(ls .devdata/classifiers/*.pt 2>/dev/null)" ]; then  # the FIDs in the store were computed with these
  mkdir -p "$WORK/cache" && cp .devdata/classifiers/* "$WORK/cache/"
fi

# 3. what the machine is
{
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  python3 -c "from sigmavae.precision import resolve_precision; from sigmavae.runtime import resolve_device; d = resolve_device('auto'); print('device', d, 'precision auto →', resolve_precision('auto', d))"
  python3 -c "from sigmavae.fid import inception_available; from sigmavae.runtime import Runtime; print('pytorch-fid Inception weights here (fid auto → inception):', inception_available(Runtime()))" 2>&1 || true
  find / -xdev -name 'pt_inception*' 2>/dev/null | head -3 || true
} > "$OUT/device.txt" 2>&1
say "$(cat "$OUT/device.txt")"

# 4. GPU timings: seconds per MNIST epoch alone, and with J processes sharing the card
if [ "${TIMINGS:-1}" = 1 ] && [ "$(left)" -gt 120 ]; then
  say "== train_speed $TIMING"
  timeout $(( $(left) / 4 )) python3 bench/train_speed.py --device "$DEVICE" $TIMING 2>&1 | tee -a "$TIMES" || say "train_speed cut short"
  say "== $JOBS processes sharing the card, each: train_speed --steps $SHARE_STEPS --rounds 1"
  for j in $(seq "$JOBS"); do
    timeout $(( $(left) / 4 )) python3 bench/train_speed.py --device "$DEVICE" --steps "$SHARE_STEPS" --rounds 1 > "$WORK/share$j.txt" 2>&1 &
  done
  wait || true
  grep -h "project\b.*per MNIST epoch" "$WORK"/share*.txt | sed "s/^/shared by $JOBS: /" | tee -a "$TIMES" || true
fi

# 5. the blocks: trainings, then notebooks; each notebook complete or dropped
start=$SECONDS
run_block() {  # dataset, notebooks (comma-separated), seeds ("" = the profile's)
  local ds=$1 list=$2 seeds=${3:-} nb t
  local pick=(); [ -z "$seeds" ] || pick=(-p seeds "$seeds")
  mkdir -p "$WORK/done/$ds/results"
  [ "$(left)" -gt 30 ] || { say "no time left for $ds $list"; return 1; }
  t=$SECONDS
  if ! timeout "$(left)" python3 -m sigmavae.cli reproduce --profile "$PROFILE" --train-only --jobs "$JOBS" \
      --only "$list" -p dataset "$ds" "${pick[@]}" >> "$LOG" 2>&1; then
    say "$ds $list: training stopped at the limit (or failed) after $((SECONDS - t)) s"; return 1
  fi
  echo "$ds training for $list${seeds:+ (seeds $seeds)}: $((SECONDS - t)) s" | tee -a "$TIMES"
  for nb in ${list//,/ }; do
    [ "$(left)" -gt 10 ] || { say "no time left for $ds $nb"; return 1; }
    t=$SECONDS
    if timeout "$(left)" python3 -m sigmavae.cli reproduce --profile "$PROFILE" --only "$nb" --out "$WORK/run/$ds" \
        -p dataset "$ds" "${pick[@]}" -p results_dir "$WORK/res/$ds-$nb" >> "$LOG" 2>&1; then
      mv "$WORK/run/$ds/$nb.ipynb" "$WORK/done/$ds/" && mv "$WORK/res/$ds-$nb"/*.json "$WORK/done/$ds/results/"
      echo "$ds $nb${seeds:+ (seeds $seeds)}: $((SECONDS - t)) s" | tee -a "$TIMES"
    else
      say "$ds $nb: stopped at the limit (or failed) after $((SECONDS - t)) s: not returned"; return 1
    fi
  done
}
if [ -z "${BLOCKS:-}" ]; then
  BLOCKS=""
  for ds in $DATASETS; do
    case $ds in
      fashion_mnist) BLOCKS+=" $ds:table3,table2,figure2,figure3_4,section3_4,appendix" ;;
      *) BLOCKS+=" $ds:table3,table2,figure2,figure3_4,section3_4,table4,appendix,beyond $ds:table1,figure1" ;;
    esac
  done
fi
for block in $BLOCKS; do
  IFS=: read -r ds list seeds <<< "$block"
  run_block "$ds" "$list" "$seeds" || break
done
echo "the profile: $((SECONDS - start)) s" | tee -a "$TIMES"

# 6. q̂'s EM at CelebA's size, torch on the device against scikit-learn, if time is left
if [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 5 )) python3 bench/gmm_speed.py --device "$DEVICE" $GMM 2>&1 | tee -a "$TIMES" || say "gmm_speed cut short"
fi

# 7. pack: one archive per dataset, at most 8 files of at most 16 MiB, one folder deep. The store
# entries are those of this run's cache (every model it finished, whatever the limit cut short after)
if [ -d "$WORK/cache/runs" ]; then
  python3 -m sigmavae.cli evidence put "$WORK/cache" --into "$WORK/evidence" | tee -a "$LOG"
fi
first=1
for ds in $(for b in $BLOCKS; do echo "${b%%:*}"; done | awk '!seen[$0]++'); do
  if [ -n "$(ls "$WORK/done/$ds"/*.ipynb 2>/dev/null)" ]; then tar -czf "$OUT/notebooks-$ds.tar.gz" -C "$WORK/done/$ds" .; fi
  entries=$(cd "$WORK/evidence" 2>/dev/null && ls -d runs/"$ds"-* 2>/dev/null || true)
  shared=$( [ "$first" = 1 ] && cd "$WORK/evidence" 2>/dev/null && ls -d scores 2>/dev/null || true)
  if [ -n "$entries$shared" ]; then  # in parts of 15 MiB (.aa, .ab, …) where larger: the tool returns ≤ 16 MiB a file
    tar -czf "$WORK/evidence-$ds.tar.gz" -C "$WORK/evidence" schema.json $entries $shared
    if [ "$(stat -c %s "$WORK/evidence-$ds.tar.gz")" -gt $((15 * MIB)) ]; then
      split -b $((15 * MIB)) "$WORK/evidence-$ds.tar.gz" "$OUT/evidence-$ds.tar.gz."
    else
      mv "$WORK/evidence-$ds.tar.gz" "$OUT/"
    fi
  fi
  first=0
done
files=$(find "$OUT" -type f | wc -l)
big=$(find "$OUT" -type f -size +16M)
say "returning $files files, $(du -sb "$OUT" | cut -f1) bytes: $(cd "$OUT" && ls)"
[ "$files" -le 8 ] && [ -z "$big" ] || { say "too many or too big files for the device tool: $big"; exit 1; }
