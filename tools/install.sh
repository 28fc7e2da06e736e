#!/usr/bin/env bash
# Build the `ccfm` command-line tool and install it into cargo's bin directory
# (~/.cargo/bin, on PATH after rustup's setup), with the backend features you choose.
#
#   bash tools/install.sh               # CPU (flex)
#   bash tools/install.sh --wgpu        # + WGPU (Vulkan / Metal / DX12 GPUs)
#   bash tools/install.sh --cuda        # + CUDA (NVIDIA GPUs; needs the CUDA toolkit)
#   bash tools/install.sh --cuda --mpi  # + data-parallel training under mpirun / srun
#                                       #   (needs Open MPI or MPICH and libclang; docs/distributed.md)
#   bash tools/install.sh --root DIR    # install into DIR/bin instead
#
# A fresh machine needs only the Rust toolchain, a C compiler and Python 3: CMake, which the
# bundled HDF5 build needs, comes from PyPI when it is missing (tools/env.sh). The first build
# compiles Burn and HDF5 from source: about 5 minutes on 2 cores; later ones are quick.
set -euo pipefail

features=()
root=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wgpu) features+=(wgpu) ;;
    --cuda) features+=(cuda) ;;
    --mpi) features+=(mpi) ;;
    --root)
      [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }
      root=(--root "$(realpath -m "$2")")
      shift
      ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install.sh: unknown option '$1' (use --wgpu, --cuda, --mpi, --root DIR or --help)" >&2
      exit 2
      ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
source tools/env.sh
# Build in the repository's target directory (not cargo install's throw-away one), so that a
# second install, or a `cargo build --release`, reuses the first build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

feature_args=()
label="flex (CPU)"
if [ ${#features[@]} -gt 0 ]; then
  feature_args=(--features "$(IFS=,; echo "${features[*]}")")
  label="flex (CPU) + ${features[*]}"
fi
echo "[ccfm] building and installing ccfm with backends: $label" >&2
echo "[ccfm] a first build compiles Burn and HDF5: about 5 minutes on 2 cores" >&2
cargo install --locked --force --path crates/ccfm-cli "${feature_args[@]}" "${root[@]}"

if [ ${#root[@]} -gt 0 ]; then
  bin="${root[1]}/bin"
else
  bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
fi
echo "[ccfm] installed $("$bin/ccfm" --version) as $bin/ccfm" >&2
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "[ccfm] $bin is not on PATH: add it, e.g. export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
