#!/usr/bin/env bash
# GPU measurements in one command, for any Linux machine with a GPU, a Vulkan driver and Deno:
# the per-kernel tables of one paper-config training step (32-true, and 16-mixed where the
# adapter has shader-f16), the bench, short paper-config training runs (steps/s), conformance
# and the test suite, each under its own time limit. A failing step does not stop the others.
#
#   bash scripts/gpu_profile.sh DIR [--quick] [--batch N] [--train-rows N] [--train-steps N]
#                                   [--skip "NAME ..."] [--dry-run]
#
# DIR (created if missing) receives: adapter.json; profile_paper.{json,txt} and
# profile_paper16.{json,txt} (the JSON of `deno task bench --profile paper`, and its per-kernel
# table); bench.{json,log}; train.{json,log} and train16.{json,log} (the last progress line has
# steps/s over the last log interval), with their metrics.csv/metrics.jsonl; conformance.{jsonl,log};
# test.log; the matmul and attention tuning caches (tune/); and summary.txt: each step's exit
# status and time, then the figures (step GPU time, steps/s).
#
# --quick: small sizes for a smoke test on a CPU adapter (profile 4 rows, training 2 steps of 8
# rows, 32-true only, no bench or tests, the checked-in tuning tables instead of --retune). --skip: step names
# to leave out (adapter profile profile16 bench train train16 conformance test). --dry-run:
# print the commands instead of running them.
# The run writes only DIR and, inside the project, out/gpu_profile/ (training runs, tuning
# cache) and data/stargraph/ (the 20,000-sample G(5,5) star graph the training runs use).
set -u
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }
dir="" batch=256 rows=256 steps=20 skip="" dry=0 retune=--retune
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --quick) batch=4 rows=8 steps=2 skip="profile16 bench train16 test $skip" retune="" ;;
    --batch) batch=${2:?--batch needs a value}; shift ;;
    --train-rows) rows=${2:?--train-rows needs a value}; shift ;;
    --train-steps) steps=${2:?--train-steps needs a value}; shift ;;
    --skip) skip="$skip ${2:?--skip needs a value}"; shift ;;
    --dry-run) dry=1 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "error: one folder only, got $dir and $1 (see --help)" >&2; exit 2; }
       dir=$1 ;;
  esac
  shift
done
[ -n "$dir" ] || { echo "error: name the folder for the results (see --help)" >&2; exit 2; }
for n in "$batch" "$rows" "$steps"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "error: \"$n\" is not a positive integer (see --help)" >&2; exit 2; }
done

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan}
# Matmul and attention variants tuned at first use (adapters missing from the checked-in
# tables) are cached here and shared by bench and train.
export BST_CACHE_DIR=out/gpu_profile/tune
runs=out/gpu_profile/runs
[ "$dry" = 1 ] || mkdir -p "$dir" "$BST_CACHE_DIR" || exit 1
summary="$dir/summary.txt"
[ "$dry" = 1 ] || : >"$summary"

# step NAME LIMIT_S STDOUT STDERR COMMAND...: runs COMMAND under a time limit, records status.
step() {
  local name=$1 limit=$2 out=$3 err=$4
  shift 4
  if [[ " $skip " == *" $name "* ]]; then
    [ "$dry" = 1 ] || echo "$name: skipped" | tee -a "$summary"
    return
  fi
  if [ "$dry" = 1 ]; then
    echo "$*"
    return
  fi
  local t0 rc ms
  t0=$(date +%s%N)
  timeout "$limit" "$@" >"$out" 2>"$err"
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf '%-12s rc=%-3s %7d ms  %s\n' "$name" "$rc" "$ms" "$*" | tee -a "$summary"
}

step adapter 60 "$dir/adapter.json" "$dir/adapter.log" deno task adapter
if [ "$dry" = 0 ] && ! grep -q '"shader-f16"' "$dir/adapter.json" 2>/dev/null; then
  skip="$skip profile16 train16"
  echo "note: the adapter has no shader-f16: 16-mixed steps skipped" | tee -a "$summary"
fi
# --retune: every matmul and attention candidate is timed on this GPU (ignoring the checked-in
# tables) and the choices are cached for the later steps.
step profile 300 "$dir/profile_paper.json" "$dir/profile_paper.txt" \
  deno task bench --profile paper --batch "$batch" $retune
step profile16 300 "$dir/profile_paper16.json" "$dir/profile_paper16.txt" \
  deno task bench --profile paper --batch "$batch" --precision 16-mixed $retune
step bench 300 "$dir/bench.json" "$dir/bench.log" deno task bench --repeats 5
# Paper-config steps (L6 C768 T69) on a small G(5,5) data file, generated on first use;
# validation kept small, no checkpoints (1.2 GB each).
train() {
  step "$1" 600 "$dir/$1.json" "$dir/$1.log" deno task train \
    --config config/bst_stargraph_defaults.yaml \
    data.stargraph_data_path=data/stargraph/graph_5_5_sample_20000.txt \
    trainer.train_batches="$steps" trainer.log_interval=$((steps < 10 ? 1 : 10)) \
    trainer.val_batches=1 trainer.val_interval=1000 trainer.save_last_checkpoint=false \
    trainer.save_best_checkpoint=false data.effective_batch_size="$rows" \
    trainer.out_dir="$runs/$1" "${@:2}"
}
train train
train train16 trainer.precision=16-mixed
step conformance 300 "$dir/conformance.jsonl" "$dir/conformance.log" \
  deno task conformance tests/fixtures/bst_tiny.safetensors tests/fixtures/gpt_tiny.safetensors \
  tests/fixtures/gpt_fim_tiny.safetensors
step test 1200 "$dir/test.log" "$dir/test.log" deno task test
[ "$dry" = 1 ] && exit 0

# The training runs' metrics and the tuning caches beside the logs.
for t in train train16; do
  for f in "$runs/$t"/*/metrics.csv "$runs/$t"/*/metrics.jsonl; do
    [ -f "$f" ] && cp "$f" "$dir/$t.$(basename "$f")"
  done
done
mkdir -p "$dir/tune" && cp "$BST_CACHE_DIR"/*.json "$dir/tune/" 2>/dev/null
{
  echo
  echo "figures:"
  echo "  adapter: $(grep -o '"description":"[^"]*"' "$dir/adapter.json" 2>/dev/null | cut -d'"' -f4)"
  for p in profile_paper profile_paper16; do
    grep -E '^total ' "$dir/$p.txt" 2>/dev/null |
      awk -v p="$p" -v b="$batch" '{ printf "  %s (%s rows): one step %s ms GPU time, %s dispatches, %s GFLOP/s\n", p, b, $3, $2, $4 }'
  done
  for t in train train16; do
    [ -f "$dir/$t.log" ] || continue
    last=$(tr '\r' '\n' <"$dir/$t.log" | grep -E 'steps/s' | tail -1)
    [ -n "$last" ] && echo "  $t ($rows rows a step): $last"
  done
  cat "$dir/conformance.jsonl" "$dir/conformance.log" 2>/dev/null | grep -E '^conformance:' | sed 's/^/  /'
  grep -E '(ok|FAILED) \|' "$dir/test.log" 2>/dev/null | tail -1 | sed 's/^/  test: /'
} | tee -a "$summary"
