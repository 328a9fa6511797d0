#!/usr/bin/env bash
# Issue 39's CN reruns: CFCQL and SPaCQL on CN random and medium-replay, seeds 0-4, the original minibatch
# stream (--minibatches original) and one dataset per seed (dataset seed = run seed, deep/collect.py --seed k),
# with the settings of the committed runs in results/cn-check (each method's default schedule: 10k updates;
# an evaluation every 1000 updates over 100 episodes; CPU). One run at a time on one thread.
#
#   nohup benchmarks/cn_original.sh > data/logs/cn-original.log 2>&1 &
#
# Resumable: the same command continues a killed job (datasets already built are kept, finished runs are
# skipped, a run with a checkpoint resumes it: deep.sweep). Each finished run's summary.json and metrics files
# are committed, the message naming the run and its final normalized score read from its summary.json.
# Order: CFCQL first (seeds 0-2 random and medium-replay interleaved, then 3-4), then SPaCQL.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PYTHON=${PYTHON:-.venv/bin/python}
OUT=results/cn-original
DATA=data

build_dataset() {  # quality seed: the full-size dataset (1M transitions; medium-replay: its buffer), timed
    local file="$DATA/cn_$1_seed$2.npz"
    [ -f "$file" ] && return 0
    local start=$SECONDS
    "$PYTHON" deep/collect.py --task cn --quality "$1" --profile full --seed "$2" --data-dir "$DATA" --no-progress \
        || return 1
    echo "$(date -u +%FT%TZ) built $file in $((SECONDS - start)) s"
}

commit_run() {  # run name: commit its summary and metrics once, the score from its own summary.json
    local dir="$OUT/$1"
    git ls-files --error-unmatch "$dir/summary.json" > /dev/null 2>&1 && return 0
    local score
    score=$("$PYTHON" -c "import json, sys; print(f\"{json.load(open(sys.argv[1]))['final_normalized_score']:.1f}\")" \
        "$dir/summary.json") || return 1
    local files=("$dir/summary.json" "$dir/metrics.jsonl" "$dir/metrics.csv")
    for attempt in 1 2 3 4 5 6 7 8 9 10; do  # the working tree is shared: wait out another writer's index lock
        if [ ! -e .git/index.lock ] && git add -- "${files[@]}" \
            && git commit -q -m "CN original stream, per-seed data: $1 ($score)" -- "${files[@]}"; then
            echo "$(date -u +%FT%TZ) committed $1 ($score)"
            return 0
        fi
        sleep 5
    done
    echo "$(date -u +%FT%TZ) could not commit $1" >&2
    return 1
}

train_run() {  # algo quality seed
    local name="cn-$2-$1-seed$3"
    build_dataset "$2" "$3" || { echo "$(date -u +%FT%TZ) dataset cn $2 seed $3 failed" >&2; return 1; }
    if [ ! -f "$OUT/$name/summary.json" ]; then
        echo "$(date -u +%FT%TZ) training $name"
        "$PYTHON" -m deep.sweep --tasks cn --algos "$1" --datasets "$2" --seeds "$3" --minibatches original \
            --eval-every 1000 --eval-episodes 100 --device cpu --data-dir "$DATA" --out-dir "$OUT"
    fi
    [ -f "$OUT/$name/summary.json" ] && commit_run "$name"
}

for algo in cfcql spacql; do
    for seed in 0 1 2 3 4; do
        for quality in random medium-replay; do
            train_run "$algo" "$quality" "$seed"
        done
    done
done
# the whole grid's table (a one-run sweep above writes only its own cell)
"$PYTHON" -m deep.sweep --tasks cn --algos cfcql spacql --datasets random medium-replay --seeds 0 1 2 3 4 \
    --minibatches original --data-dir "$DATA" --out-dir "$OUT" --table-only
git add -- "$OUT/results.md" "$OUT/results.json" \
    && git commit -q -m "CN original stream, per-seed data: the table of the 20 runs" -- "$OUT/results.md" "$OUT/results.json"
echo "$(date -u +%FT%TZ) done"
