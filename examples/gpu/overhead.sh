#!/bin/bash
# The PyTorch program's phase times untraced, under huge-fault (records), and under
# huge-fault --aggregate, interleaved, REPS times each. Prints one line per run and phase.
# Usage: examples/gpu/overhead.sh [REPS] [OUTDIR]   (as root; HF=path to huge-fault)
set -u
reps=${1:-2}
out=${2:-${OUT:-/tmp/huge-fault-gpu}}
mkdir -p "$out"
hf=${HF:-target/release/huge-fault}
here=$(dirname "$0")
wl=(python3 "$here/torch-faults.py" --seconds 2)
for rep in $(seq 1 "$reps"); do
    for cfg in untraced records aggregate; do
        case $cfg in
            untraced) cmd=("${wl[@]}") ;;
            records) cmd=("$hf" run --json -- "${wl[@]}") ;;
            aggregate) cmd=("$hf" run --json --aggregate -- "${wl[@]}") ;;
        esac
        "${cmd[@]}" > "$out/ovh-$cfg-$rep.txt" 2> "$out/ovh-$cfg-$rep.err"
        grep '^phase [a-z-]*: vma\|^phase [a-z-]*: vma -' "$out/ovh-$cfg-$rep.txt" \
            | sed -E "s/^phase ([a-z-]+):.* in ([0-9.]+) ms/$cfg rep $rep \1 \2 ms/"
        if [ "$cfg" != untraced ]; then
            python3 - "$out/ovh-$cfg-$rep.txt" <<'PY'
import json, sys
t = open(sys.argv[1]).read()
r = json.loads(t[t.index("{\n"):])
a = r["aggregation"]
print(f"  faults {r['totals']['faults']} drops {r['loss']['ringbuf_drops']} "
      f"records {r['kernel_counters']['records_submitted']} aggregated {a['calls']} (ring full {a['ring_full']})")
PY
        fi
    done
done
