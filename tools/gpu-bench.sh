#!/bin/sh
# Every figure issue 7 asks of a GPU, in one run (for a lent GPU machine, where ../shared does not travel):
# adapter info, dps-gpu eval/train/tune in f32 and a per-kernel profile of eval (and eval/tune without the tiled
# kernels' prefetch, with the 3x3 convolutions as implicit GEMMs instead of Winograd transforms, and eval/tune
# with the tiled kernels' 4x4 block forced) and
# eval/train in the fast mode on random weights, the fast mode's accuracy against f32 (AlexNet on the bundled
# samples), the cold start of `distance`, and tools/torch_bench.py in FP32 and TF32 beside them. Results go to
# $OUT (or /tmp/gpu-bench) as JSON lines.
#
# Here, once:  cargo build --release; echo /.gl/ >> .git/info/exclude; mkdir -p .gl /tmp/amd64/partial;
#              o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64';
#              apt-get $o update; (cd .gl && apt-get $o download libvulkan1)
# There:       the device tool's `run` with carry [".gl", "target/release/dps-gpu"] and the command
#              `sh tools/gpu-bench.sh`   (BATCH, ITERS, NETS override 1024, 5, alex,squeeze,vgg; each step is
#              bounded by STEP_TIMEOUT seconds, default 150, so one slow step cannot eat the lease; the steps
#              run in the order of what the issue needs most, so a run cut at the device's 600 s limit still
#              returns the PyTorch figures beside dps-gpu's)
set -u
out=${OUT:-/tmp/gpu-bench}
batch=${BATCH:-1024}
iters=${ITERS:-5}
nets=${NETS:-alex,squeeze,vgg}
step_timeout=${STEP_TIMEOUT:-150}
bin=${DPS_BIN:-target/release/dps-gpu}
mkdir -p "$out"
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$nvidia_icd" ] && export VK_DRIVER_FILES="$nvidia_icd"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

step() { # name, command...: runs one step under the time bound, its stdout into $out/name, a line per step
    name=$1
    shift
    start=$(date +%s.%N)
    timeout "$step_timeout" "$@" > "$out/$name" 2> "$out/$name.err"
    rc=$?
    echo "$name: exit $rc, $(awk "BEGIN { print $(date +%s.%N) - $start }") s" | tee -a "$out/steps.txt"
}

step info.json "$bin" info --json
cat "$out/info.json"
step dps-f32.jsonl "$bin" bench --random-weights --net "$nets" --what eval,train,tune --batch "$batch" \
    --iters "$iters" --json
if python3 -c 'import torch, torchvision' 2>/dev/null; then
    device=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
    step torch-fp32.jsonl python3 tools/torch_bench.py --device "$device" --nets "$nets" \
        --what eval,train,tune --batch "$batch" --iters "$iters"
    step torch-tf32.jsonl python3 tools/torch_bench.py --device "$device" --nets "$nets" \
        --what eval,train,tune --batch "$batch" --iters "$iters" --tf32
else
    echo "torch-*: skipped, python3 has no torch/torchvision" | tee -a "$out/steps.txt"
fi
# Where dps-gpu's eval time goes, kernel by kernel (each dispatch of a chunk timed on its own).
step dps-profile.jsonl "$bin" bench --random-weights --net "$nets" --what profile --batch "$batch" --iters 2 --json
step dps-f16.jsonl "$bin" --precision f16 bench --random-weights --net "$nets" --what eval,train \
    --batch "$batch" --iters "$iters" --json
# The fast mode's accuracy on the bundled samples with the embedded AlexNet (the only weights that travel).
step compare-f16-alex.json "$bin" eval --net alex --compare-f16 --limit "${COMPARE_LIMIT:-1000}" --json
# Cold start (issue 7 item 5): process start to printed distance, embedded AlexNet, three runs.
python3 - "$out" <<'EOF' || echo "cold start: skipped (no python3)" | tee -a "$out/steps.txt"
# Two random 64x64 RGB PNGs, written with the standard library alone (a lent machine may lack Pillow).
import random, struct, sys, zlib
random.seed(0)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
for name in ("a", "b"):
    rows = b"".join(b"\x00" + bytes(random.randrange(256) for _ in range(64 * 3)) for _ in range(64))
    with open(f"{sys.argv[1]}/{name}.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
EOF
if [ -e "$out/a.png" ]; then
    for i in 1 2 3; do
        step "cold-start-$i.txt" "$bin" distance "$out/a.png" "$out/b.png"
    done
    rm -f "$out/a.png" "$out/b.png"
fi
# The staging kernels (tiled, Winograd) without their prefetch of the next slice, against dps-f32.jsonl.
step dps-f32-no-prefetch.jsonl "$bin" bench --random-weights --net "$nets" --what eval,tune --batch "$batch" \
    --iters "$iters" --no-prefetch --json
# Then the 3x3 convolutions as implicit GEMMs (the nets with 3x3 layers Winograd takes), against dps-f32.jsonl.
# AlexNet's 3x3 layers (3x3 maps at 64x64) never take the Winograd path, so it is left out.
winograd_nets=$(echo "$nets" | tr , '\n' | grep -v '^alex$' | paste -sd, -)
if [ -n "$winograd_nets" ]; then
    step dps-f32-no-winograd.jsonl "$bin" bench --random-weights --net "$winograd_nets" --what eval,train,tune \
        --batch "$batch" --iters "$iters" --no-winograd --json
fi
# Then, as less needed: the tiled kernels' smallest block on every convolution, against the
# per-convolution choice of dps-f32.jsonl.
step dps-f32-block4x4.jsonl "$bin" bench --random-weights --net "$nets" --what eval,tune --batch "$batch" \
    --iters "$iters" --conv-block 4x4 --json
# And the fast mode's tensor-core kernel without its prefetch, against dps-f16.jsonl.
step dps-f16-no-prefetch.jsonl "$bin" --precision f16 bench --random-weights --net "$nets" --what eval \
    --batch "$batch" --iters "$iters" --no-prefetch --json
