#!/usr/bin/env bash
# On the GPU machine (`device` tool): configurations of the native benchmark alternated round by
# round (A B A B …), so that the GPU's clocks and the machine's state weigh on each alike, as
# bench-ab.mjs does for two builds of the site. Each configuration is 'LABEL: COMMAND', the
# command a benchmark call with any variables before it, e.g.
#   scripts/bench-gpu-ab.sh 'direct: .bench/bench --backend wgpu --micro-batches 1' \
#                           'unfolded: .bench/bench --backend wgpu --micro-batches 1 --conv-lowering unfolded'
# Every report goes into $OUT/ab.jsonl (one line each, with its label and round); at the end a
# table of each label's median per figure. ROUNDS (default 2) rounds, each run bounded by 90 s and
# skipped once BUDGET_S (default 450) is spent. Prepare as for bench-h100.sh, carry .bench .gl .whl.
set -uo pipefail
cd "$(dirname "$0")/.."
(( $# > 0 )) || { echo "usage: $0 'LABEL: COMMAND' ['LABEL: COMMAND' …]" >&2; exit 2; }
for configuration in "$@"; do
  [[ $configuration == *:* ]] || { echo "not 'LABEL: COMMAND': $configuration" >&2; exit 2; }
done
out=${OUT:-/tmp/bench-out}
mkdir -p "$out"
: > "$out/ab.jsonl"
source scripts/gpu-machine.sh
for round in $(seq "${ROUNDS:-2}"); do
  for configuration in "$@"; do
    label=${configuration%%:*}
    room 90 "$label round $round" || continue
    echo "round $round $configuration" >> "$out/log.txt"
    # shellcheck disable=SC2086 # the command's words, variables first, as given
    timeout 90 env ${configuration#*:} 2>> "$out/log.txt" |
      labelled "{\"label\": \"$label\", \"round\": $round}" | tee -a "$out/ab.jsonl"
  done
done
python3 - "$out/ab.jsonl" <<'PY'
import json, statistics, sys
figures = {}
for line in open(sys.argv[1]):
    report = json.loads(line)
    row = figures.setdefault(report["label"], {})
    for name in ("forward_b1", "forward_backward_b1"):
        if name in report:
            row.setdefault(name, []).append(report[name]["ms"])
    for run in report.get("smoothgrad", []):
        row.setdefault(f"smoothgrad50_mb{run['micro_batch']}", []).append(run["ms"])
for label, row in figures.items():
    print(label, {name: round(statistics.median(times), 2) for name, times in row.items()})
PY
