#!/usr/bin/env bash
# One GPU session of the small-scale study, for a machine that is lent for a while:
# share the GPU among the runs through CUDA MPS (without it the processes take turns),
# run what is left for BUDGET_S seconds, then pack what came out into OUT: the result files
# (results.tgz), the log, and any warm start trained in this session (15 MB parts).
#   bash experiments/paper_claims/gpu_session.sh OUT BUDGET_S [CONCURRENCY] [TASK ...]
# (TASK: countdown, sudoku; default both. One task alone gives, e.g., a warm start the GPU.)
# Bring the files back into runs/paper_claims with
#   python -m experiments.paper_claims.collect OUT
set -u
out=$1
budget=$2
concurrency=${3:-14}
shift $(($# < 3 ? $# : 3))
tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(countdown sudoku)
root=runs/paper_claims
mkdir -p "$out"
start_mark=$(mktemp)

export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
mps=off
if nvidia-cuda-mps-control -d 2>/dev/null &&
    timeout 60 python -c "import torch; torch.ones(1).cuda().sum().item()"; then
    mps=on
else  # no daemon, or clients cannot reach it: run without it
    echo quit | nvidia-cuda-mps-control 2>/dev/null
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
fi
echo "MPS $mps"

# Runs checkpoint after every batch outside the repository copy: the study's folders carried
# into the next call replace those in the copy, but while the machine stays lent (a call
# started soon after this one ends) the next call resumes the runs this one cut off.
export PAPER_CLAIMS_SCRATCH=/tmp/paper_claims_scratch
python -m experiments.paper_claims --tasks "${tasks[@]}" --concurrency "$concurrency" \
    --budget-s "$budget" --resumable --no-report >"$out/study.log" 2>&1
echo "checkpoints kept for the next call: $(find /tmp/paper_claims_scratch -name last.ckpt 2>/dev/null | wc -l)"
[ "$mps" = on ] && echo quit | nvidia-cuda-mps-control
grep -v '^\[schedule\] start' "$out/study.log" | tail -20

small=$(find "$root" -path "$root/data" -prune -o \
    \( -name '*.json' -o -name 'gradient_statistics.csv' \) -print | grep -v '/warmstart/')
logs=$(find "$root" -maxdepth 1 -name logs -type d)  # none when nothing ran
tar czf "$out/results.tgz" $small $logs
for task in countdown sudoku; do
    # finished in this session, or a part of it trained (warm_start --budget-s)
    if [ -n "$(find "$root/$task/warmstart.json" "$root/$task/warmstart_progress.json" \
        -newer "$start_mark" 2>/dev/null)" ]; then
        tar cf - -C "$root/$task" warmstart | split -b 15M - "$out/warmstart_$task.tar.part"
    fi
done
ls -la "$out"
