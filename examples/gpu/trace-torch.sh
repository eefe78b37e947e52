#!/bin/bash
# Trace a PyTorch program (examples/gpu/torch-faults.py) with huge-fault on a
# machine with an NVIDIA GPU, and keep what the kernel allowed and what was seen.
# Usage: examples/gpu/trace-torch.sh [OUTDIR]   (as root; HF=path to huge-fault)
set -u
out=${1:-${OUT:-/tmp/huge-fault-gpu}}
mkdir -p "$out"
hf=${HF:-target/release/huge-fault}
here=$(dirname "$0")
exec > >(tee "$out/log.txt") 2>&1

echo "== machine"
uname -a
nvidia-smi -L 2>&1 | head -2
grep -E '^nvidia' /proc/modules | cut -d' ' -f1-3
echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>&1)"
ls -la /sys/kernel/btf/vmlinux 2>&1
echo "perf_event_paranoid $(cat /proc/sys/kernel/perf_event_paranoid)"
ls /sys/kernel/tracing/kprobe_events /sys/kernel/debug/tracing/kprobe_events 2>&1
if [ -r /proc/config.gz ]; then
    zcat /proc/config.gz | grep -E '^CONFIG_(KPROBES|KRETPROBES|BPF_SYSCALL|DEBUG_INFO_BTF|FUNCTION_TRACER|DYNAMIC_FTRACE_WITH_DIRECT_CALLS|TRANSPARENT_HUGEPAGE|HUGETLBFS)='
fi
echo "== huge_fault handlers and insert functions in this kernel"
"$hf" symbols '*_huge_fault' 2>&1 | head -20
"$hf" symbols 'vmf_insert_*' 2>&1 | head -20
"$hf" symbols 'uvm_vm_fault*' 2>&1 | head -5

echo "== huge-fault run (auto mode) -- torch-faults.py"
timeout 240 "$hf" run --histogram --record "$out/torch.hfrec" -- \
    python3 "$here/torch-faults.py" --seconds 5 > "$out/run.txt" 2> "$out/run.err"
echo "exit $?"
cat "$out/run.err"
cat "$out/run.txt"
"$hf" report --json "$out/torch.hfrec" > "$out/report.json" 2>&1
echo "report --json exit $? ($(wc -c < "$out/report.json") bytes)"
ls -la "$out/torch.hfrec"
gzip -f "$out/torch.hfrec"
for mode in kprobe fentry; do
    echo "== --mode $mode"
    timeout 20 "$hf" --mode "$mode" -d 1 2>&1 | head -3
done
