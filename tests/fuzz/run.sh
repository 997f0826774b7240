#!/usr/bin/env bash
# Build the libFuzzer target for the decode core and run it for SECONDS (default 60).
#
#   tests/fuzz/run.sh [SECONDS]
#
# The committed seeds in tests/fuzz/corpus are read, never written: new inputs go to
# $BESSAI_FUZZ_DIR/corpus (default .cache/fuzz). A crash leaves its input in
# $BESSAI_FUZZ_DIR/artifacts and makes the script exit non-zero; replay it with
#   $BESSAI_FUZZ_DIR/fuzz_decode ARTIFACT
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${BESSAI_FUZZ_DIR:-$repo/.cache/fuzz}"
clang="${CLANG:-clang}"

mkdir -p "$work/corpus" "$work/artifacts"
"$clang" -std=c99 -g -O1 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$repo/native" "$repo/tests/fuzz/fuzz_decode.c" "$repo/native/bessai_core.c" -lm \
  -o "$work/fuzz_decode"

"$work/fuzz_decode" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  "$work/corpus" "$repo/tests/fuzz/corpus"
