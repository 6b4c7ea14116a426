#!/usr/bin/env bash
# GPU measurement in one call: the per-kernel profile of the paper step (32-true and 16-mixed),
# the bench, 20-step paper-config training runs (32-true and 16-mixed), conformance and the test
# suite, each with its own time limit.
#
# On a GPU machine, from the project root, after packing on the development machine
# (bash ../shared/gpu/pack.sh, which makes .gpu/):
#
#   OUT=/some/dir bash scripts/gpu_profile.sh
#
# Results go to $OUT (default out/gpu_profile): adapter.json, profile_paper{,16}.{json,txt},
# bench.{json,log}, train{,16}.{log,json}, conformance.{jsonl,log}, test.log, the tuning caches
# (matmul_tune_<adapter>.json, attention_tune_<adapter>.json), and summary.txt with
# each step's exit status and milliseconds. A failing step does not stop the later ones. The
# whole script stays under 10 minutes (the sum of the limits below; on an H200 it took about 4).
#
# Smaller runs (e.g. a smoke test on a CPU adapter): BATCH (profile rows, default 256),
# TRAIN_ROWS (rows per training step, default the config's 256), TRAIN_STEPS (default 20),
# SKIP="bench test" (step names to leave out). BUNDLE=FILE.tgz also packs everything under $OUT
# into one archive (for transports that bring back only a few files).
set -u
OUT=${OUT:-out/gpu_profile}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan}
# Matmul and attention variants tuned at first use (adapters missing from the checked-in
# tables) are cached here and shared by bench and train; the files are copied to $OUT for the
# tables.
export BST_CACHE_DIR=${BST_CACHE_DIR:-out/tune}
if [ -d .gpu ]; then
  bash .gpu/bootstrap.sh >"$OUT/bootstrap.log" 2>&1 || echo "bootstrap failed (see bootstrap.log)"
  export DENO_DIR=$PWD/.gpu/deno_dir
fi
summary="$OUT/summary.txt"
: >"$summary"

# step NAME LIMIT_S STDOUT STDERR COMMAND...: runs COMMAND under a time limit, records status.
step() {
  local name=$1 limit=$2 out=$3 err=$4
  shift 4
  if [[ " ${SKIP:-} " == *" $name "* ]]; then
    echo "$name: skipped" | tee -a "$summary"
    return
  fi
  local t0
  t0=$(date +%s%N)
  timeout "$limit" "$@" >"$out" 2>"$err"
  local rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '%-12s rc=%-3s %6d ms  %s\n' "$name" "$rc" "$ms" "$*" | tee -a "$summary"
}

step adapter 30 "$OUT/adapter.json" "$OUT/adapter.log" deno task adapter
# --retune: every matmul and attention candidate is timed on this GPU (ignoring the checked-in
# table) and the choices are cached for the later steps; add them to the tables afterwards.
step profile 80 "$OUT/profile_paper.json" "$OUT/profile_paper.txt" \
  deno task bench --profile paper --batch "${BATCH:-256}" --retune
step profile16 80 "$OUT/profile_paper16.json" "$OUT/profile_paper16.txt" \
  deno task bench --profile paper --batch "${BATCH:-256}" --precision 16-mixed --retune
step bench 80 "$OUT/bench.json" "$OUT/bench.log" deno task bench --repeats 5
# 20 steps of the paper config (L6 C768 T69, 256 rows per step) on a small G(5,5) data file,
# generated on first use; the progress line at step 20 gives steps/s over steps 11-20.
# Validation kept small, no checkpoints (1.2 GB each).
train() {
  step "$1" 70 "$OUT/$1.json" "$OUT/$1.log" deno task train \
    --config config/bst_stargraph_defaults.yaml \
    data.stargraph_data_path=data/stargraph/graph_5_5_sample_20000.txt \
    trainer.train_batches="${TRAIN_STEPS:-20}" trainer.log_interval=10 trainer.val_batches=1 \
    trainer.val_interval=1000 trainer.save_last_checkpoint=false \
    trainer.save_best_checkpoint=false data.effective_batch_size="${TRAIN_ROWS:-256}" \
    trainer.out_dir=out/gpu_profile_train "${@:2}"
}
train train
train train16 trainer.precision=16-mixed
# Per-step metrics of those runs.
find out/gpu_profile_train -name 'metrics.*' -newer "$summary" -exec cp --backup=numbered {} "$OUT/" \; 2>/dev/null
step conformance 40 "$OUT/conformance.jsonl" "$OUT/conformance.log" \
  deno task conformance tests/fixtures/bst_tiny.safetensors tests/fixtures/gpt_tiny.safetensors \
  tests/fixtures/gpt_fim_tiny.safetensors
cp "$BST_CACHE_DIR"/matmul_tune_*.json "$BST_CACHE_DIR"/attention_tune_*.json "$OUT/" 2>/dev/null
step test 150 "$OUT/test.log" "$OUT/test.log.err" deno task test
cat "$summary"
if [ -n "${BUNDLE:-}" ]; then
  tar czf "$BUNDLE" -C "$OUT" . && echo "bundle: $BUNDLE"
fi
