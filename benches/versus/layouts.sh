#!/usr/bin/env bash
# Links N pairs of `versus` binaries — feature off and `--features observatory` — from the same
# source, each pair with its own function order (lld's --shuffle-sections with seed K), into
# DIR/off-K and DIR/on-K, for `versus --obs-ab ON_TARGET_DIR --layouts DIR`.
#
# Why: on the project's VM, builds of the same code differ by 10-20 % in time per op on the
# 1-worker runtime rows with the same instructions per op (code placement), more than the
# observatory's 3 % budgets. The gate then pools rounds over several layouts per side.
#
# usage: benches/versus/layouts.sh [N=3] [DIR=target/layouts] [ON_TARGET_DIR=target/obs]
#        [OFF_TARGET_DIR=target/release]
# Needs lld (apt-get install lld). Only the versus crate is recompiled per layout (~30 s each
# once both target directories are built).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-3}
dir=${2:-target/layouts}
on_target=${3:-target/obs}
off_target=${4:-target/release}
if ! command -v ld.lld >/dev/null 2>&1; then
    echo "layouts.sh: ld.lld not found (apt-get install lld)" >&2
    exit 2
fi
mkdir -p "$dir"
for k in $(seq 1 "$n"); do
    flags=(-C link-arg=-fuse-ld=lld -C "link-arg=-Wl,--shuffle-sections=*=$k")
    CARGO_TARGET_DIR="$off_target" cargo rustc --release --locked -p versus --bin versus \
        -- "${flags[@]}"
    cp "$off_target/release/versus" "$dir/off-$k"
    CARGO_TARGET_DIR="$on_target" cargo rustc --release --locked -p versus --bin versus \
        --features observatory -- "${flags[@]}"
    cp "$on_target/release/versus" "$dir/on-$k"
done
# Leave the off side's versus as a plain build again (the gate runs it as the driver).
CARGO_TARGET_DIR="$off_target" cargo build --release --locked -p versus --bin versus
echo "linked $n layouts per side into $dir"
