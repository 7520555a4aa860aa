#!/bin/sh
# Runs a command on a lavapipe that offers cooperative matrices (Mesa ≥ 25.1; Debian bookworm ships 22.3), so the
# fast mode's tensor-core kernel (shaders/conv_coop.wgsl) can be checked on a machine without a GPU.
#
#   tools/lavapipe-coop.sh cargo test --release --test kernels --test metric_cpu
#   tools/lavapipe-coop.sh target/release/dps-gpu --precision f16 info
#   tools/lavapipe-coop.sh --setup     (downloads and checks it, runs nothing)
#
# The first run downloads Debian sid's mesa-vulkan-drivers and the libraries it needs (glibc included, ~150 MB)
# into $LAVAPIPE_COOP_DIR (default /tmp/lavapipe-coop) with a private apt configuration; nothing is installed
# system-wide. Programs then run under sid's dynamic loader with those libraries. `cargo ...` commands get it as
# the target runner, so in-process tests use it; processes those tests spawn (tests/cli.rs) would not, so run
# the kernel and metric tests with it, not the whole suite. It exports DPS_EXPECT_COOP=1, so those tests fail
# rather than skip the cooperative-matrix kernel if the driver does not offer it.
set -eu
dir=${LAVAPIPE_COOP_DIR:-/tmp/lavapipe-coop}
lib=$dir/root/usr/lib/x86_64-linux-gnu
if [ ! -e "$lib/libvulkan_lvp.so" ]; then
    mkdir -p "$dir/apt/lists/partial" "$dir/debs"
    echo "deb http://deb.debian.org/debian sid main" > "$dir/apt/sources.list"
    apt_opts="-o Dir::Etc::SourceList=$dir/apt/sources.list -o Dir::Etc::SourceParts=/dev/null \
-o Dir::State::Lists=$dir/apt/lists -o Dir::Cache=$dir/apt/cache -o APT::Sandbox::User=root"
    mkdir -p "$dir/apt/cache/archives/partial"
    # shellcheck disable=SC2086
    apt-get $apt_opts update >/dev/null
    # shellcheck disable=SC2086
    pkgs=$(apt-cache $apt_opts depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances --no-pre-depends mesa-vulkan-drivers | grep '^[a-z]' | sort -u)
    cd "$dir/debs"
    for p in $pkgs; do
        # shellcheck disable=SC2086
        apt-get $apt_opts download "$p" >/dev/null 2>&1 || echo "note: could not download $p (virtual?)"
    done
    for f in ./*.deb; do dpkg -x "$f" "$dir/root"; done
    cd - >/dev/null
fi
cat > "$dir/icd.json" <<EOF
{ "ICD": { "api_version": "1.4.0", "library_path": "$lib/libvulkan_lvp.so" }, "file_format_version": "1.0.0" }
EOF
cat > "$dir/run" <<EOF
#!/bin/sh
exec $lib/ld-linux-x86-64.so.2 --library-path $lib "\$@"
EOF
chmod +x "$dir/run"
"$dir/run" /bin/true || { echo "lavapipe-coop: sid's loader does not run here" >&2; exit 1; }
[ "$1" = --setup ] && exit 0
export VK_ICD_FILENAMES="$dir/icd.json"
export DPS_EXPECT_COOP=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
if [ "$1" = cargo ]; then
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$dir/run" exec "$@"
fi
exec "$dir/run" "$@"
