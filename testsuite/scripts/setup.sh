#!/usr/bin/env bash
# Installs everything edgec's build and test suite need on a fresh Debian machine (run as root),
# then writes the ONNX node tests into testsuite/cache/. Idempotent: re-running is cheap.
#   EDGEC_SETUP_ZOO=1  also installs torch/transformers/diffusers to regenerate the model zoo.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# LLVM/MLIR 22 for the backends (inkwell, melior), clang-22 for the runtime, the cross toolchains and
# emulators the target tests run on (see docs/targets.md), and cmake for the CMake integration test.
for pkg in llvm-22-dev libmlir-22-dev mlir-22-tools clang-22 lld-22 libclang-22-dev libpolly-22-dev \
           libzstd-dev gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu libc6-dev-arm64-cross \
           libc6-dev-riscv64-cross gcc-arm-none-eabi \
           libnewlib-arm-none-eabi qemu-user-static qemu-system-arm valgrind libclang-rt-22-dev cmake; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; edgec needs a Rust toolchain (1.85 or newer) on PATH" >&2
  exit 1
fi

pip_install() {
  # Debian's own python refuses system-wide installs (PEP 668); a pyenv/venv python does not.
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}

if ! python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null \
   || ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, re, sys
want = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", open("testsuite/requirements.txt").read(), re.M))
sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)
PY
then
  echo "setup: pip install -r testsuite/requirements.txt"
  pip_install -r testsuite/requirements.txt
fi
if [ "${EDGEC_SETUP_ZOO:-0}" = 1 ]; then
  pip_install -r testsuite/requirements-zoo.txt
fi

python3 testsuite/scripts/gen_node_tests.py
