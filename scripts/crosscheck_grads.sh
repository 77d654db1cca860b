#!/usr/bin/env bash
# Gradient cross-check of the CPU reference against PyTorch autograd on a fixed set of genomes
# (docs/benchmarks.md, "Gradient cross-check against PyTorch autograd").
#
# Usage: scripts/crosscheck_grads.sh [OUT_DIR [crosscheck_torch.py flags...]]
#
# For each case: `msenas sample` a genome, `msenas forward --dump --grads` it (digits test
# images, batch $BATCH, default 16), then one `scripts/crosscheck_torch.py` run over all the
# dumps (forward and gradient checks; exit status 1 on failure, 0 with a note without torch).
# MSENAS names the binary (default target/release/msenas; build it first).
#
# The cases cover the default space, micro = full, k = 4, silent cells, recurrent and feedback
# motifs, reduction cells (both reduce kernels), another layout, event input (digits_dvs), T = 6
# with width 4, the three surrogates (and other alphas), both losses and label smoothing 0, 0.1
# (the default) and 0.2.
set -euo pipefail
set -f # the flags below hold brackets; no globbing
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/gradcheck}
shift || true
msenas=${MSENAS:-$root/target/release/msenas}
batch=${BATCH:-16}
mkdir -p "$out"

# name | sample flags | forward flags
cases=(
  "default-s1|--seed 1|"
  "silent-s2|--seed 2|--surrogate sigmoid"
  "recurrent-silent-s4|--seed 4|--surrogate atan"
  "feedback-silent-s14|--seed 14|--loss mse"
  "feedback-s23|--seed 23|--loss mse --surrogate sigmoid:2"
  "ls0-atan3-s7|--seed 7|--label-smoothing 0 --surrogate atan:3"
  "full-s1|--seed 1 --set space.micro=full|"
  "full-recurrent-s17|--seed 17 --set space.micro=full|--surrogate triangle:1"
  "k4-s1|--seed 1 --set space.ks=[4]|"
  "k4-full-s3|--seed 3 --set space.ks=[4] --set space.micro=full|--surrogate atan --loss mse"
  "silent2-reduce3-s9|--seed 9|--set space.reduce_kernel=3 --surrogate sigmoid"
  "layout-nnrnr-s3|--seed 3 --set space.layout=NNRNR|--label-smoothing 0.2"
  "dvs-s12|--seed 12|--dataset digits_dvs"
  "t6-w4-s30|--seed 30|--timesteps 6 --width 4 --stratified --seed 5"
)

dirs=()
for c in "${cases[@]}"; do
  IFS='|' read -r name sflags fflags <<<"$c"
  # shellcheck disable=SC2086 # word splitting of the flag lists is intended
  "$msenas" sample $sflags --out "$out/$name.json"
  # shellcheck disable=SC2086
  "$msenas" forward "$out/$name.json" --batch "$batch" --dump "$out/$name" --grads $fflags \
    >"$out/$name.log"
  grep '^gradients:' "$out/$name.log" | sed "s|^|$name: |"
  dirs+=("$out/$name")
done
python3 "$root/scripts/crosscheck_torch.py" "$@" "${dirs[@]}"
