#!/usr/bin/env bash
# Runs the README's commands exactly as written, the way a new user would: every ```bash block
# of README.md in order (except a block marked `<!-- readme-check: skip ... -->`, whose
# commands CI runs as stages of their own), in a copy of the repository, in a clean
# environment: a new HOME and ~/.cache/ccfm, no CMake and no `ccfm` on PATH, only the Rust
# toolchain, a C compiler and Python 3. A block that fails fails the check.
#
# Kept from the caller: the Rust toolchain (RUSTUP_HOME, CARGO_HOME for its registry cache)
# and CARGO_TARGET_DIR when set (so repeated runs on one machine build incrementally).
# `cargo install` goes into the clean HOME (CARGO_INSTALL_ROOT), not the caller's ~/.cargo/bin.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The repository as a fresh clone has it: tracked files, with the working tree's contents.
mkdir -p "$work/ccfm" "$work/home"
(cd "$repo" && git ls-files -z | xargs -0 tar -cf -) | tar -xf - -C "$work/ccfm"

cargo_bin="$(dirname "$(command -v cargo)")"
python_bin="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")"
install_root="$work/home/.cargo-install"
clean_path="$install_root/bin:$cargo_bin:$python_bin:/usr/local/bin:/usr/bin:/bin"
clean_env=(
  env -i
  HOME="$work/home"
  PATH="$clean_path"
  RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
  CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
  CARGO_INSTALL_ROOT="$install_root"
  CARGO_TERM_COLOR=never
  LANG=C.UTF-8
)
[ -n "${CARGO_TARGET_DIR:-}" ] && clean_env+=(CARGO_TARGET_DIR="$CARGO_TARGET_DIR")

for tool in cmake ccfm; do
  if "${clean_env[@]}" bash -c "command -v $tool" >/dev/null; then
    echo "check-readme: \`$tool\` is on the clean PATH ($clean_path); the check needs a machine without it" >&2
    exit 1
  fi
done

# The blocks, NUL-separated, in README order.
blocks="$work/blocks"
python3 - "$repo/README.md" "$blocks" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
out = []
pattern = re.compile(r"(<!-- readme-check: skip[^>]*-->\s*\n)?```bash\n(.*?)```", re.S)
for m in pattern.finditer(text):
    if m.group(1):
        continue
    out.append(m.group(2))
open(sys.argv[2], "w", encoding="utf-8").write("\0".join(out))
print(f"check-readme: {len(out)} blocks to run", file=sys.stderr)
EOF

n=0
while IFS= read -r -d '' block || [ -n "$block" ]; do
  n=$((n + 1))
  echo "=== README block $n"
  printf '%s\n' "$block" | sed 's/^/    /'
  s=$(date +%s)
  (cd "$work/ccfm" && "${clean_env[@]}" bash -euo pipefail -c "$block")
  echo "=== README block $n passed in $(($(date +%s) - s)) s"
  case "$block" in
    *tools/install.sh*)
      if ! "${clean_env[@]}" bash -c 'command -v ccfm' >/dev/null; then
        echo "check-readme: block $n ran tools/install.sh, but \`ccfm\` is not on PATH after it" >&2
        exit 1
      fi
      ;;
  esac
done <"$blocks"
echo "check-readme: all $n README blocks ran as written"
