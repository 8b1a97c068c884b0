#!/usr/bin/env bash
# Coverage-guided fuzzing of edgec's three parsers of outside bytes with AFL++ on the stable
# toolchain (docs/testing.md, "Fuzzing"):
#
#   testsuite/scripts/fuzz.sh [TARGET|all] [SECONDS]     # default: all, 60 s each
#
# TARGET is onnx, ir_text or tensor_file. Installs cargo-afl (which builds its bundled AFL++) when
# missing, builds testsuite/fuzz/ (its own workspace) with `cargo afl build --release`, runs each
# target for SECONDS seeded from testsuite/fuzz/corpus/TARGET/ and regressions/TARGET/, prints
# execs, execs/s, corpus paths, edges and crashes from AFL's fuzzer_stats, and exits 1 when a
# target found a crash (hangs are printed; FAIL_ON_HANGS=1 makes them fail too).
# Findings stay in testsuite/fuzz/target/afl/TARGET/default/{crashes,hangs}/; replay one with
# `testsuite/fuzz/target/release/TARGET < FILE`, then minimize it into regressions/TARGET/.
# Environment: NICE (default 10), AFL_TIMEOUT_MS (default 2000), FAIL_ON_HANGS (default 0),
# KEEP_OUTPUT=1 resumes from the previous run's queue instead of the seeds.
set -euo pipefail

CARGO_AFL_VERSION=0.18.2 # bundles and builds AFL++ (afl-fuzz); keep equal to afl in testsuite/fuzz/Cargo.toml

root="$(cd "$(dirname "$0")/../.." && pwd)"
fuzz="$root/testsuite/fuzz"
targets=(onnx ir_text tensor_file)
want="${1:-all}"
seconds="${2:-60}"
nice_level="${NICE:-10}"
timeout_ms="${AFL_TIMEOUT_MS:-2000}"

if [[ "$want" != all ]]; then
    case " ${targets[*]} " in *" $want "*) targets=("$want") ;; *)
        echo "fuzz.sh: unknown target '$want' (onnx, ir_text, tensor_file or all)" >&2; exit 2 ;;
    esac
fi
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }

# cargo-afl, pinned; installing it builds AFL++ for the current toolchain.
if ! cargo afl --version 2>/dev/null | grep -q "$CARGO_AFL_VERSION"; then
    cargo install cargo-afl --version "$CARGO_AFL_VERSION" --locked
fi
cargo afl config --build >/dev/null 2>&1 || true # a no-op (an error) when AFL++ is already built

cd "$fuzz"
nice -n "$nice_level" cargo afl build --release --quiet

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1

status=0
printf '%-12s %8s %12s %10s %8s %14s %8s %6s\n' target seconds execs execs/s paths edges crashes hangs
for t in "${targets[@]}"; do
    out="$fuzz/target/afl/$t"
    if [[ "${KEEP_OUTPUT:-0}" == 1 && -d "$out/default/queue" ]]; then
        input=-
    else
        rm -rf "$out"
        input="$fuzz/target/afl/$t.in"
        rm -rf "$input" && mkdir -p "$input"
        cp "$fuzz/corpus/$t/"* "$input/"
        if compgen -G "$fuzz/regressions/$t/*" >/dev/null; then cp "$fuzz/regressions/$t/"* "$input/"; fi
    fi
    mkdir -p "$out"
    # The whole frontend is instrumented: more edges than AFL's default map holds.
    AFL_MAP_SIZE=$(AFL_DUMP_MAP_SIZE=1 "$fuzz/target/release/$t" || true)
    export AFL_MAP_SIZE
    nice -n "$nice_level" cargo afl fuzz -i "$input" -o "$out" -V "$seconds" -t "$timeout_ms" -m none \
        -- "$fuzz/target/release/$t" >"$out.log" 2>&1 || {
        echo "fuzz.sh: afl-fuzz failed for $t (see $out.log):" >&2
        tail -n 20 "$out.log" >&2
        status=1
        continue
    }
    stats="$out/default/fuzzer_stats"
    get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    crashes=$(get saved_crashes)
    hangs=$(get saved_hangs)
    printf '%-12s %8s %12s %10s %8s %14s %8s %6s\n' "$t" "$(get run_time)" "$(get execs_done)" \
        "$(get execs_per_sec)" "$(get corpus_count)" "$(get edges_found)/$(get total_edges)" "$crashes" "$hangs"
    if [[ "$crashes" != 0 ]]; then
        echo "fuzz.sh: $t: $crashes crash(es) in $out/default/crashes/" >&2
        status=1
    fi
    if [[ "$hangs" != 0 && "${FAIL_ON_HANGS:-0}" == 1 ]]; then
        echo "fuzz.sh: $t: $hangs hang(s) in $out/default/hangs/" >&2
        status=1
    fi
done
exit "$status"
