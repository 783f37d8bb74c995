#!/usr/bin/env bash
# The prepared GPU sitting: everything a bare, offline GPU machine needs, one command there, results back.
#
#   tools/gpu_run.sh prepare           # here: fill .gpu_bundle/ (git-ignored) with the QMUL arrays, the
#                                      #   Sketchy-mini pretraining pack and the pretraining checkpoint if any;
#                                      #   move the tree's bulky files the sitting does not need (distance
#                                      #   matrices, weights, notebooks, figures) to ../gpu_stash/ so that tree +
#                                      #   bundle travel (64 MiB; refuses otherwise); the JSON records stay, so
#                                      #   recorded runs are skipped there
#   tools/gpu_run.sh restore           # here: move the stashed files back (or: git checkout -- results notebooks figures)
#   tools/gpu_run.sh remote [BUDGET_S] # there (e.g. the device tool's run, carry [".gpu_bundle"]): in order of
#                                      #   value and skipping what is recorded: the pretraining when its
#                                      #   checkpoint is missing, benchmarks/grid_cost.py, the grid of Tables 1-5
#                                      #   (3 seeds x 3 datasets) from that init through the trunk cache, then
#                                      #   DASE/MEMS; stops before a job that would overrun BUDGET_S (default 480);
#                                      #   writes $OUT/results.tgz (+ the checkpoint as bf16)
#   tools/gpu_run.sh collect DIR       # here: unpack DIR/results.tgz into results/ and the checkpoint into
#                                      #   checkpoints/, restore the stash, verify; then commit. Run `prepare` and
#                                      #   `remote` again to continue the grid.
#   tools/gpu_run.sh dry-run           # here, on the CPU: `remote` with a tiny profile into a scratch folder
#
# Environment: PROFILE (full), CACHE_VIEWS (the trunk cache's views per image; default: chosen on a validation
# split by the grid's first job, python -m sbir_lib.experiments tune-cache), GRID_ARGS (extra
# flags for `python -m sbir_lib.experiments grid`).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=.gpu_bundle
PROFILE=${PROFILE:-full}
CACHE_VIEWS=${CACHE_VIEWS:-}  # empty: the grid chooses it on a validation split (recorded)
LIMIT_MIB=64
PY=${PYTHON:-$(command -v python3 || command -v python)}
STASH=${GPU_STASH:-../gpu_stash}
say() { echo "[gpu_run] $*"; }

tree_bytes() {  # what the device tool sends besides the carried bundle: tracked + untracked-not-ignored files
  { git ls-files -z; git ls-files -z --others --exclude-standard; } |
    { xargs -0 du -cb 2>/dev/null || true; } | awk '$2 == "total" { s += $1 } END { print s + 0 }'
}

prepare() {
  local data=${SBIR_DATA_ROOT:-data}
  mkdir -p "$BUNDLE"
  local files=()
  for ds in shoes chairs handbags; do
    [ -d "$data/qmul_v1/$ds" ] || { say "no $data/qmul_v1/$ds: python data_download.py --all --mirror ../shared/data"; exit 2; }
    files+=("$data"/qmul_v1/"$ds"/*.mat "$data"/qmul_v1/"$ds"/*.json)  # the arrays and annotations, no photos
  done
  tar -czf "$BUNDLE/qmul_v1.tgz" -C "$data" "${files[@]#"$data"/}"
  if [ -f "checkpoints/sketchanet_sketchy_mini.pt" ]; then
    "$PY" -m sbir_lib.core.checkpoint bf16 checkpoints/sketchanet_sketchy_mini.pt "$BUNDLE/sketchanet_sketchy_mini.pt"
  elif [ ! -f "$BUNDLE/pretrain_pack.npz" ]; then
    "$PY" -m sbir_lib.training.pretrain pack --out "$BUNDLE/pretrain_pack.npz" --pairs shoes,chairs,handbags --profile full
  fi
  git rev-parse --short=12 HEAD > "$BUNDLE/COMMIT"
  stash
  local tree bundle total
  tree=$(tree_bytes); bundle=$(du -sb "$BUNDLE" | cut -f1); total=$(( (tree + bundle) / 1048576 ))
  say "tree $((tree / 1048576)) MiB + bundle $((bundle / 1048576)) MiB = $total MiB (limit $LIMIT_MIB)"
  if [ "$total" -gt "$LIMIT_MIB" ]; then
    say "too large to travel even with the stash: shrink the bundle (or the tracked tree); tools/gpu_run.sh restore"
    exit 3
  fi
  say "ready: run 'tools/gpu_run.sh remote' on the GPU machine with .gpu_bundle carried, then 'tools/gpu_run.sh collect DIR'"
}

stash() {  # bulky tracked files the sitting does not read go to $STASH (git still has them)
  local n=0 f
  while IFS= read -r -d '' f; do
    [ -e "$f" ] || continue
    mkdir -p "$STASH/$(dirname "$f")"; mv "$f" "$STASH/$f"; n=$((n + 1))
  done < <(git ls-files -z -- 'results/*.npy' 'results/*.pt' 'notebooks/*.ipynb' 'figures/*')
  say "stashed $n bulky files in $STASH (tools/gpu_run.sh restore brings them back)"
}

restore() {
  local n=0 f
  if [ -d "$STASH" ]; then
    while IFS= read -r -d '' f; do
      local rel=${f#"$STASH"/}
      mkdir -p "$(dirname "$rel")"; [ -e "$rel" ] || mv "$f" "$rel"; n=$((n + 1))
    done < <(find "$STASH" -type f -print0)
    rm -rf "$STASH"
  fi
  # anything the stash lost, from git (only missing files: collected records that replace tracked ones stay)
  git ls-files -z --deleted -- results notebooks figures | { xargs -0 -r git checkout -- 2>/dev/null || true; }
  say "restored $n stashed files"
}

remote() {
  local budget=${1:-480} start out=${OUT:-/tmp/gpu_out}
  start=$(date +%s)
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  if [ -z "${SBIR_DATA_ROOT:-}" ]; then  # the QMUL arrays of the bundle
    mkdir -p /tmp/sbir_data && tar -xzf "$BUNDLE/qmul_v1.tgz" -C /tmp/sbir_data
    export SBIR_DATA_ROOT=/tmp/sbir_data
  fi
  export SBIR_GIT_COMMIT=${SBIR_GIT_COMMIT:-$(cat "$BUNDLE/COMMIT" 2>/dev/null || echo unknown)}
  local results=${SBIR_RESULTS_ROOT:-results}
  mkdir -p checkpoints "$out" "$BUNDLE" "$results"
  touch "$BUNDLE/.started"
  if [ -f "$BUNDLE/sketchanet_sketchy_mini.pt" ] && [ ! -f checkpoints/sketchanet_sketchy_mini.pt ]; then
    cp "$BUNDLE/sketchanet_sketchy_mini.pt" checkpoints/
  fi
  local device; device=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  if [ "$device" = cuda ] && ! ls "$results"/benchmarks/grid_cost_*h*.json >/dev/null 2>&1; then
    "$PY" benchmarks/grid_cost.py --views "${CACHE_VIEWS:-10}" --out "$results/benchmarks/grid_cost_$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' _ | tr A-Z a-z).json" || say "benchmark failed; the grid goes on"
  fi
  local left=$(( budget - ($(date +%s) - start) - 30 ))
  local pack=()
  [ -f "$BUNDLE/pretrain_pack.npz" ] && pack=(--pretrain-pack "$BUNDLE/pretrain_pack.npz")
  # shellcheck disable=SC2086
  local views=()
  [ -n "$CACHE_VIEWS" ] && views=(--cache-views "$CACHE_VIEWS")
  "$PY" -m sbir_lib.experiments grid --profile "$PROFILE" --budget-s "$left" ${views[@]+"${views[@]}"} \
    --results "$results" ${pack[@]+"${pack[@]}"} ${GRID_ARGS:-} 2>&1 | tee "$out/grid.log" || say "grid stopped with an error (see grid.log)"
  (cd "$results/.." && find "$(basename "$results")" -newer "$OLDPWD/$BUNDLE/.started" -type f -print0 |
     tar --null -czf "$out/results.tgz" --files-from=-)
  if [ -f checkpoints/sketchanet_sketchy_mini.pt ] && [ ! -f "$BUNDLE/sketchanet_sketchy_mini.pt" ]; then
    "$PY" -m sbir_lib.core.checkpoint bf16 checkpoints/sketchanet_sketchy_mini.pt "$out/sketchanet_sketchy_mini.pt"
  fi
  say "done in $(( $(date +%s) - start )) s; $(tar -tzf "$out/results.tgz" | wc -l) new files in $out/results.tgz"
}

collect() {
  local dir=${1:?give the folder holding results.tgz}
  tar -xzf "$dir/results.tgz" -C .
  if [ -f "$dir/sketchanet_sketchy_mini.pt" ]; then mkdir -p checkpoints; cp "$dir/sketchanet_sketchy_mini.pt" checkpoints/; fi
  restore
  "$PY" -m sbir_lib.experiments verify | tail -1
  say "unpacked; regenerate REPRODUCTION.md (python -m sbir_lib.report reproduction --profile full --out REPRODUCTION.md) and commit"
}

dry_run() {
  local scratch=${DRY_DIR:-/tmp/gpu_dry}
  rm -rf "$scratch"; mkdir -p "$scratch/out"
  [ -f checkpoints/sketchanet_sketchy_mini.quick.pt ] || { say "needs checkpoints/sketchanet_sketchy_mini.quick.pt: python -m sbir_lib.training.pretrain run --profile quick"; exit 2; }
  PROFILE=quick CACHE_VIEWS=2 OUT="$scratch/out" SBIR_RESULTS_ROOT="$scratch/results" SBIR_DATA_ROOT=${SBIR_DATA_ROOT:-$PWD/data} \
    GRID_ARGS="--seeds 0 --dataset shoes --iterations 2 --no-dase --device cpu" remote "${1:-150}"
  tar -tzf "$scratch/out/results.tgz" | head -20
}

case "${1:-}" in
  prepare) prepare ;;
  restore) restore ;;
  remote) shift; remote "$@" ;;
  collect) shift; collect "$@" ;;
  dry-run) shift; dry_run "$@" ;;
  *) sed -n '2,26p' "$0"; exit 2 ;;
esac
