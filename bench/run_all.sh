#!/usr/bin/env bash
# Run every benchmark once, one after the other (they share the 2 cores with
# whatever else runs: note the load average each prints). As root (the lab
# creates namespaces and OVS instances). Output: $BENCH_OUT/<time>/*.txt (default /tmp/bench-results)
#   bash bench/run_all.sh            # the reconciler benchmarks (about 15 minutes)
#   bash bench/run_all.sh --all      # and the API, binding, DHCP and Keystone benchmarks if present
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
out="${BENCH_OUT:-/tmp/bench-results}/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
run() {
  local name=$1; shift
  echo "== $name: $*  ($(cut -d' ' -f1-3 /proc/loadavg))"
  "$PY" "$@" 2>&1 | tee "$out/$name.txt"
  echo
}
run flows      bench/bench_flows.py --repeat 3
run portup     bench/bench_flows_portup.py --ports 500
run scale      bench/bench_scale.py --nodes 100 --repeat 2
if [ "${1:-}" = "--all" ]; then
  [ -f bench/bench_api.py ] && run api bench/bench_api.py
  [ -f bench/bench_binding.py ] && run binding bench/bench_binding.py
  [ -f bench/bench_keystone.py ] && run keystone bench/bench_keystone.py
  [ -f bench/bench_dhcp.py ] && run dhcp bench/bench_dhcp.py
fi
echo "results in $out"
