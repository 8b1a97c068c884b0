#!/usr/bin/env bash
# Compiles every zoo model for every machine target and quantization mode with one edgec binary
# and keeps what a refactor must not change: model.h, report.json without compile_seconds, and the
# emitted LLVM IR. Compare two binaries with
#   artifact_snapshot.sh OLD_EDGEC /tmp/a && artifact_snapshot.sh NEW_EDGEC /tmp/b && diff -r /tmp/a /tmp/b
# (a non-zero diff is a change in what edgec produces). Models, targets and modes can be narrowed
# with EDGEC_SNAPSHOT_MODELS, EDGEC_SNAPSHOT_TARGETS and EDGEC_SNAPSHOT_MODES (space-separated).
set -euo pipefail
edgec="$(realpath "$1")"
out="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
models="${EDGEC_SNAPSHOT_MODELS:-$(cd "$root/testsuite/zoo" && ls -d */ | tr -d /)}"
targets="${EDGEC_SNAPSHOT_TARGETS:-host aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu cortex-m7}"
modes="${EDGEC_SNAPSHOT_MODES:-none int8 int4-weights}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for m in $models; do
  zoo="$root/testsuite/zoo/$m"
  for t in $targets; do
    for q in $modes; do
      case "$q" in
        int8) qflags=(--quantize int8 --calibrate "$zoo/inputs.npz") ;;
        *) qflags=(--quantize "$q") ;;
      esac
      key="$m.$t.$q"
      rm -rf "$tmp/o"
      if "$edgec" compile "$zoo/model.onnx" --target "$t" -o "$tmp/o" --emit-llvm "${qflags[@]}" \
           >/dev/null 2>"$out/$key.stderr"; then
        cp "$tmp/o/model.h" "$out/$key.h"
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.pop("compile_seconds",None); print(json.dumps(r,indent=1,sort_keys=True))' \
          "$tmp/o/report.json" >"$out/$key.report.json"
        sha256sum <"$tmp/o/model.ll" | cut -d' ' -f1 >"$out/$key.ll.sha256"
        sha256sum <"$tmp/o/model.o" | cut -d' ' -f1 >"$out/$key.o.sha256"
        echo "$key ok"
      else
        echo "exit $?" >>"$out/$key.stderr"
        echo "$key failed: $(head -c 300 "$out/$key.stderr")"
      fi
    done
  done
done
