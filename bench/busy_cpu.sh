#!/usr/bin/env bash
# Wall time and the machine's busy CPU seconds (all processes, from /proc/stat) while a command runs:
# the CPU a test file or the suite needs, servers and JVMs included, which `time` misses for processes it
# does not wait for. Usage: bench/busy_cpu.sh .venv/bin/python -m pytest -q tests/test_scheduler.py
set -uo pipefail
busy() { read -r _ user nice system _idle _iowait irq softirq steal _ < /proc/stat; echo $((user + nice + system + irq + softirq + steal)); }
ticks=$(getconf CLK_TCK)
before=$(busy); start=$(date +%s.%N)
"$@"; status=$?
after=$(busy); end=$(date +%s.%N)
python3 -c "print(f'wall {$end - $start:.1f} s, busy CPU {($after - $before) / $ticks:.1f} s (of {($end - $start) * $(nproc):.0f} s on $(nproc) CPUs)')" >&2
exit $status
