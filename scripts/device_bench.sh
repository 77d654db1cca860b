#!/usr/bin/env bash
# Run on a GPU machine (e.g. one H100) from the repository root, with carried release binaries:
#   target/release/msenas and the gpu_forward, train and search bench binaries (cargo bench
#   --no-run prints their paths; copy them to target/release/gpu_forward, target/release/train
#   and target/release/search), and,
#   optionally, GPU test binaries as target/release/test-<name> (cargo test --release --no-run
#   --test gpu_grad, ...; their parity checks then run on the real device). Vulkan loader
#   packages may be carried as .gl/*.deb.
# Writes devices.json, devices.txt, bench.json, bench.err, train.json, train.err, search.json,
# search.err and test-<name>.txt to $OUT (default ./out).
# Env: MSENAS_PEAK_GFLOPS (FP32 peak of the card, e.g. 67000 for H100 SXM), bench knobs
# (see benches/gpu_forward.rs), BENCH_TIMEOUT (seconds, default 420).
set -uo pipefail
OUT="${OUT:-out}"; mkdir -p "$OUT"
BIN=target/release
BENCH="$BIN/gpu_forward"
[ -x "$BENCH" ] || BENCH=$(ls -t "$BIN"/deps/gpu_forward-* 2>/dev/null | grep -v '\.d$' | head -1)

# Vulkan loader from carried packages when the machine has none.
if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
  for d in .gl/*.deb; do dpkg -x "$d" /; done
  ldconfig
fi
# The NVIDIA ICD when the loader finds no driver on its own.
if [ -z "${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json >/dev/null 2>&1 \
   && [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
# FP32 (non-tensor) peak: H100 SXM 66,900 GFLOP/s; H100 PCIe 51,200.
case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)" in
  *PCIe*) PEAK=51200 ;; *) PEAK=66900 ;;
esac
export MSENAS_PEAK_GFLOPS="${MSENAS_PEAK_GFLOPS:-$PEAK}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
"$BIN/msenas" devices > "$OUT/devices.txt" 2>&1
"$BIN/msenas" devices --json > "$OUT/devices.json" 2>>"$OUT/devices.txt"
cat "$OUT/devices.txt"
# Refuse to time a CPU fallback as if it were the GPU.
if ! grep -q '"device_type": "DiscreteGpu"' "$OUT/devices.json"; then
  echo "no discrete GPU adapter found; see $OUT/devices.txt" >&2
fi
timeout "${BENCH_TIMEOUT:-420}" "$BENCH" > "$OUT/bench.json" 2> "$OUT/bench.err"
echo "bench exit $?"; cat "$OUT/bench.json"
# Training throughput (GpuTrainer beside the CPU reference; PyTorch only where it is installed).
TRAIN="$BIN/train"
[ -x "$TRAIN" ] || TRAIN=$(ls -t "$BIN"/deps/train-* 2>/dev/null | grep -v '\.d$' | head -1)
if [ -n "$TRAIN" ] && [ -x "$TRAIN" ]; then
  timeout "${TRAIN_TIMEOUT:-240}" "$TRAIN" --quick > "$OUT/train.json" 2> "$OUT/train.err"
  echo "train bench exit $?"; cat "$OUT/train.json"
fi
# Search throughput on the device: the --preset cpu search with each generation handed over
# whole, one candidate at a time, and with the previous gradient path, with submissions and
# read-backs per generation (benches/search.rs).
SEARCH="$BIN/search"
[ -x "$SEARCH" ] || SEARCH=$(ls -t "$BIN"/deps/search-* 2>/dev/null | grep -v '\.d$' | head -1)
if [ -n "$SEARCH" ] && [ -x "$SEARCH" ]; then
  MSENAS_BENCH_QUICK=1 MSENAS_BENCH_GPU="${MSENAS_BENCH_GPU:-gpu}" \
    timeout "${SEARCH_TIMEOUT:-300}" "$SEARCH" > "$OUT/search.json" 2> "$OUT/search.err"
  echo "search bench exit $?"; cat "$OUT/search.json"
fi
# Kernel and trainer parity against the CPU reference on the real device.
for t in "$BIN"/test-*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  timeout "${TEST_TIMEOUT:-120}" "$t" --test-threads 1 > "$OUT/$name.txt" 2>&1
  echo "$name exit $?"; tail -3 "$OUT/$name.txt"
done
