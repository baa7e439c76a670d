#!/usr/bin/env bash
# The speed issue's checks on a CUDA GPU, in one go (a lent GPU is scarce: one prepared call).
#
#   bash benchmarks/gpu_checks.sh FERPLUS_ROOT OUT [SEEDS]      # SEEDS default "0 1 2"
#
# 0. a smoke run (one epoch on 512 faces): stops here if the GPU path fails, before the long steps
# 1. the fast FER+ recipe (experiments/ferplus_fast.toml), seed 0: fp32, contiguous (the fastest
#    variant at 48x48 in results/benchmarks/train-throughput-h200); wall time per seed in OUT/times.csv
# 2. the full-split analysis benchmark on seed 0's model (Grad-CAM, IG 32 steps, 8-region blur
#    occlusion, tables) at 512 rows per pass, bf16 and fp32
# 3. the explain throughput benchmark (batched vs the libraries per image) on the GPU
# 4. the remaining seeds
# Environment: PY (python; word-split, so "uv run python" works), DEVICE (cuda), SMOKE_ONLY=1 (stop after
# step 0), CONFIG (the recipe, default experiments/ferplus_fast.toml; e.g. experiments/ferplus_compact.toml
# for the >= 86% attempt), TRAIN_ONLY=1 (skip steps 2 and 3: only the seeds); for a dry run on a CPU,
# TRAIN_EXTRA (e.g. "--epochs 1 --limit-train 256"), ANALYSIS_EXTRA (e.g. "--limit 64") and EXPLAIN_EXTRA
# (e.g. "--n 8 --repeats 1").
# Exit status: 1 if any step failed (the later steps still run), else 0.
set -u
DATA=${1:?usage: gpu_checks.sh FERPLUS_ROOT OUT [SEEDS]}
OUT=${2:?usage: gpu_checks.sh FERPLUS_ROOT OUT [SEEDS]}
SEEDS=${3:-"0 1 2"}
failed=0
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-experiments/ferplus_fast.toml}
[ -f "$CONFIG" ] || { echo "gpu_checks.sh: no recipe at CONFIG=$CONFIG (expected a TOML file)" >&2; exit 2; }
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/runs"
echo "step,seed,milliseconds" >"$OUT/times.csv"
log() { echo "[$(date +%T)] $*"; }

timed() {  # timed STEP SEED CMD...: run CMD, append its wall time to times.csv, return its status
    local step=$1 seed=$2 t0 rc
    shift 2
    t0=$(date +%s%N)
    "$@"
    rc=$?
    echo "$step,$seed,$((($(date +%s%N) - t0) / 1000000))" >>"$OUT/times.csv"
    return $rc
}

train_seed() {  # train_seed SEED [extra options]: the run folder's path is the command's last line
    local s=$1
    shift
    timed train "$s" $PY -m facexai train ferplus --data-root "$DATA" --config "$CONFIG" \
        --seed "$s" --device "$DEVICE" --no-bf16 --no-channels-last --out "$OUT/runs" --no-progress ${TRAIN_EXTRA:-} "$@" \
        2>&1 | tee "$OUT/train-s$s.log"
    return "${PIPESTATUS[0]}"
}

log "smoke: one epoch on 512 faces"
timed smoke - $PY -m facexai train ferplus --data-root "$DATA" --config "$CONFIG" --seed 0 \
    --device "$DEVICE" --no-bf16 --no-channels-last --epochs 1 --limit-train 512 --out "$OUT/smoke" --no-progress \
    || { log "smoke run failed: stopping"; exit 1; }
[ "${SMOKE_ONLY:-0}" = 1 ] && exit 0

read -r first rest <<<"$SEEDS"
log "train seed $first"
train_seed "$first" || { log "seed $first failed: stopping"; exit 1; }
run0=$(ls -td "$OUT"/runs/*-s"$first"-*/ | head -n 1)  # the run folder just written
[ -n "$run0" ] || { log "no run folder for seed $first under $OUT/runs: stopping"; exit 1; }
if [ "${TRAIN_ONLY:-0}" != 1 ]; then
    log "analysis benchmark on $run0"
    for prec in bf16 fp32; do
        flag=$([ $prec = bf16 ] && echo --bf16 || echo "")
        timed "analysis-$prec" "$first" $PY benchmarks/analysis_time.py --run "$run0" --data-root "$DATA" \
            --device "$DEVICE" --batch 512 $flag ${ANALYSIS_EXTRA:-} --out "$OUT/analysis-time-$prec" || failed=1
    done
    log "explain throughput"
    timed explain-throughput - $PY benchmarks/explain_throughput.py --device "$DEVICE" --size 48 --n 256 \
        --batch 512 --repeats 5 ${EXPLAIN_EXTRA:-} --out "$OUT/explain-throughput" || failed=1
fi
for s in $rest; do
    log "train seed $s"
    train_seed "$s" || failed=1
done
log "done (failed: $failed)"
exit "$failed"
