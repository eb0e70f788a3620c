#!/usr/bin/env bash
# Peak memory, time and exit status of the CLI on the hostile inputs that
# inputs.py writes, for one or more tuneloop binaries side by side.
#
#   python3 benches/limits/inputs.py /tmp/attack
#   benches/limits/peak_memory.sh /tmp/attack OLD_BINARY NEW_BINARY
#
# Each run gets at most 16 GiB of address space and 300 s, so a binary that
# would take the machine down aborts instead; the table says which did.
set -euo pipefail
dir=$1; shift
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cases=(
  "report, 10 MB gzip of zeros|report --log $dir/zeros.jsonl.gz --out $out/r.html"
  "ope, 16 MB gzip of valid rounds|ope --input $dir/rounds.jsonl.gz --bootstrap 0"
  "report, 5,000 models|report --log $dir/models.jsonl --out $out/r.html"
  "report, 20,000 arm ids|report --log $dir/arms.jsonl --out $out/r.html"
  "ope, one 200 MB line|ope --input $dir/long-line.jsonl --bootstrap 0"
  "evaluate, 20,000 features|evaluate --log $dir/wide.jsonl --policy linucb --bootstrap 0"
  "simulate, a million columns|simulate --supervised $dir/million-columns.csv"
  "simulate, label 4095 x 500 columns|simulate --supervised $dir/label-4095.csv"
  "ope --bootstrap 2^64-1|ope --input $dir/rounds.jsonl --bootstrap 18446744073709551615"
  "bench --dims 100000|bench --dims 100000 --iterations 1"
  "simulate --rounds 1e12|simulate --scenario llm-params --rounds 1000000000000 --runs 1"
)

printf '| input | binary | exit | peak RSS | wall |\n|---|---|---|---|---|\n'
for case in "${cases[@]}"; do
  name=${case%%|*}; args=${case#*|}
  for bin in "$@"; do
    # shellcheck disable=SC2086
    status=0
    /usr/bin/time -v -o "$out/time" prlimit --as=$((16 << 30)) timeout 300 \
      "$bin" $args >/dev/null 2>"$out/err" || status=$?
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f MB", $2 / 1024}' "$out/time")
    wall=$(awk -F': ' '/Elapsed/ {print $2}' "$out/time")
    [ "$status" = 124 ] && status="timeout"
    [ "$status" = 134 ] && status="abort"
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$bin" "$status" "$rss" "$wall"
  done
done
