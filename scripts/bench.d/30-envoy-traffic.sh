#!/usr/bin/env bash
# envoy-traffic vs wrk vs oha: the same Envoy route, same connections, 10 s each, alternating
# (ROUNDS rounds), so that drift in the machine's load hits all alike; medians of the rounds.
# Closed model (as fast as possible) against wrk and oha; then the open model at a fixed rate
# of 70% of envoy-traffic's closed-model maximum, against oha's rate limit (`-q`) with its
# coordinated-omission correction, so that both count from the intended send time: wrk has no
# open model (wrk2, which has, is not packaged here).
#
# Reports per tool: requests/s, client CPU seconds per 10k requests (user+sys from bash's
# `times`), Envoy's (the dj proxy's) CPU seconds per 10k requests from /proc, and latency
# percentiles. Targets (issue 14): client CPU per request at most wrk's, requests/s at least
# wrk's, percentiles within 10% of wrk's or lower.
#
# Environment (set by scripts/bench): AMPKIT_BIN_DIR, AMPKIT_ENVOY_URL, AMPKIT_STACK_DIR.
# Knobs: BENCH_TRAFFIC_SECONDS (10), BENCH_TRAFFIC_CONNECTIONS (32), BENCH_TRAFFIC_ROUNDS (3),
# BENCH_TRAFFIC_PATH (/, answered by dj itself).
set -euo pipefail

secs=${BENCH_TRAFFIC_SECONDS:-10}
conns=${BENCH_TRAFFIC_CONNECTIONS:-32}
rounds=${BENCH_TRAFFIC_ROUNDS:-3}
path=${BENCH_TRAFFIC_PATH:-/}
url="${AMPKIT_ENVOY_URL:?run under scripts/bench (or eval \"\$(scripts/local-stack env)\")}$path"
ours="${AMPKIT_BIN_DIR:-target/release}/envoy-traffic"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

missing=()
[ -x "$ours" ] || missing+=("$ours (cargo build --release -p envoy-traffic)")
command -v wrk >/dev/null || missing+=("wrk (scripts/bench-peers)")
command -v oha >/dev/null || missing+=("oha (scripts/bench-peers)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'envoy-traffic bench skipped; missing: %s\n' "${missing[*]}"
  exit 0
fi

envoy_pid=${BENCH_TRAFFIC_ENVOY_PID:-$(head -n1 "$AMPKIT_STACK_DIR/envoy-dj.pid" 2>/dev/null || true)}
clk=$(getconf CLK_TCK)
# CPU ticks (user+sys) of the dj Envoy so far.
envoy_ticks() {
  if [ -n "$envoy_pid" ] && [ -r "/proc/$envoy_pid/stat" ]; then
    sed 's/^.*) //' "/proc/$envoy_pid/stat" | awk '{print $12 + $13}'
  else
    echo 0
  fi
}

# run NAME ROUND CMD...: runs CMD with stdout to $out/NAME.ROUND.out and records
# "client_cpu_seconds envoy_cpu_seconds" in $out/NAME.ROUND.cpu.
run() {
  local name=$1 round=$2; shift 2
  local before after
  before=$(envoy_ticks)
  (
    "$@" >"$out/$name.$round.out" 2>"$out/$name.$round.err" </dev/null || true
    times >"$out/$name.$round.times"
  )
  after=$(envoy_ticks)
  # The second line of `times` is the children's user and system time, e.g. "0m1.23s 0m0.45s".
  local client
  client=$(sed -n 2p "$out/$name.$round.times" | awk '{
      n = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); n += p[1] * 60 + p[2] }
      print n }')
  echo "$client $(awk -v a="$after" -v b="$before" -v c="$clk" 'BEGIN { print (a - b) / c }')" \
    >"$out/$name.$round.cpu"
}

echo "route $url, $conns connections, ${secs}s per run, $rounds round(s), $(nproc) cores"
# One short warm run so that the first measured tool does not pay for cold caches.
"$ours" --quiet --url "$url" --concurrency "$conns" --duration 2s </dev/null >/dev/null 2>&1 || true

for r in $(seq 1 "$rounds"); do
  run envoy-traffic "$r" env -u AMPKIT_ENVOY_ADMIN_URLS "$ours" --quiet --url "$url" \
    --concurrency "$conns" --duration "${secs}s"
  run wrk "$r" wrk -t2 -c"$conns" -d"${secs}s" --latency "$url"
  run oha "$r" oha --no-tui --output-format json -c "$conns" -z "${secs}s" "$url"
done

# The open model at 70% of the closed model's best (envoy-traffic's median, as measured).
rate=$(python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rps = [json.loads(open(f"{out}/envoy-traffic.{r}.out").read())["traffic"]["rate"]["achieved"] for r in range(1, rounds + 1)]
print(round(statistics.median(rps) * 0.7))
EOF
)
for r in $(seq 1 "$rounds"); do
  run envoy-traffic-open "$r" env -u AMPKIT_ENVOY_ADMIN_URLS "$ours" --quiet --url "$url" \
    --rate "$rate" --concurrency "$conns" --duration "${secs}s"
  # --latency-correction: oha too counts from the intended send time, as envoy-traffic does.
  run oha-open "$r" oha --no-tui --output-format json -c "$conns" -q "$rate" --latency-correction \
    -z "${secs}s" "$url"
done

python3 - "$out" "$rounds" "$rate" <<'EOF'
import json, re, statistics, sys
out, rounds, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def wrk_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

def parse(name, text):
    if name.startswith("envoy-traffic"):
        t = json.loads(text)["traffic"]
        lat = t["latencyMs"] or {}
        return t["completed"], t["rate"]["achieved"], lat.get("p50"), lat.get("p90"), lat.get("p99"), t["errors"]["total"]
    if name == "wrk":
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        n = int(re.search(r"(\d+) requests in", text).group(1))
        pct = {p: wrk_ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M)}
        errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        return n, rps, pct.get("50"), pct.get("90"), pct.get("99"), errs + (int(non2xx.group(1)) if non2xx else 0)
    if name.startswith("oha"):
        j = json.loads(text)
        s, lp = j["summary"], j["latencyPercentiles"]
        n = sum(j.get("statusCodeDistribution", {}).values())
        errs = sum(j.get("errorDistribution", {}).values())
        return n, s["requestsPerSec"], lp["p50"] * 1000, lp["p90"] * 1000, lp["p99"] * 1000, errs

def rows_of(names):
    rows = {}
    for name in names:
        acc = []
        for r in range(1, rounds + 1):
            text = open(f"{out}/{name}.{r}.out").read()
            try:
                n, rps, p50, p90, p99, errs = parse(name, text)
            except Exception as e:
                err = open(f"{out}/{name}.{r}.err").read().strip().splitlines()[-1:]
                print(f"{name} round {r}: could not read its output ({e}); stderr: {err}")
                continue
            cpu, envoy = map(float, open(f"{out}/{name}.{r}.cpu").read().split())
            acc.append(dict(rps=rps, p50=p50, p90=p90, p99=p99, errs=errs,
                            cpu10k=cpu / n * 10000 if n else float("nan"),
                            envoy10k=envoy / n * 10000 if n else float("nan")))
        if acc:
            med = {k: statistics.median(a[k] for a in acc) for k in acc[0] if k != "errs"}
            med["errs"] = sum(a["errs"] for a in acc)
            rows[name] = med
    return rows

def table(title, rows):
    print()
    print(title)
    print(f"{'tool':<20}{'req/s':>10}{'cpu s/10k':>11}{'envoy s/10k':>13}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, r in rows.items():
        print(f"{name:<20}{r['rps']:>10.0f}{r['cpu10k']:>11.3f}{r['envoy10k']:>13.3f}"
              f"{r['p50']:>9.3f}{r['p90']:>9.3f}{r['p99']:>9.3f}{r['errs']:>8}")
    print()

def verdict(ok): return "ok" if ok else "BELOW TARGET"

closed = rows_of(["envoy-traffic", "wrk", "oha"])
table(f"closed model (medians of {rounds} rounds):", closed)
ours = closed.get("envoy-traffic")
if ours and "wrk" in closed:
    w = closed["wrk"]
    ratio = ours["rps"] / w["rps"]
    print(f"req/s vs wrk: {ratio:.2f}x (target >= 1.00x) {verdict(ratio >= 1.0)}")
    for p in ["p50", "p90", "p99"]:
        d = (ours[p] - w[p]) / w[p] if w[p] else float("nan")
        agree = "ok" if d <= 0.10 else "HIGHER than wrk's, outside 10%"
        print(f"{p} vs wrk: {d:+.0%} (target within 10% or lower) {agree}")
    cpu = ours["cpu10k"] / w["cpu10k"]
    print(f"client CPU per 10k requests vs wrk: {cpu:.2f}x (target <= 1.00x) {verdict(cpu <= 1.0)}")
if ours and "oha" in closed:
    o = closed["oha"]
    print(f"req/s vs oha: {ours['rps'] / o['rps']:.2f}x; client CPU per 10k vs oha: {ours['cpu10k'] / o['cpu10k']:.2f}x")

opened = rows_of(["envoy-traffic-open", "oha-open"])
table(f"open model at {rate} req/s (70% of the closed maximum; medians of {rounds} rounds):", opened)
ours, o = opened.get("envoy-traffic-open"), opened.get("oha-open")
if ours and o:
    for p in ["p50", "p90", "p99"]:
        d = (ours[p] - o[p]) / o[p] if o[p] else float("nan")
        agree = "ok" if d <= 0.10 else "HIGHER than oha's, outside 10%"
        print(f"{p} vs oha (both from the intended send time): {d:+.0%} (target within 10% or lower) {agree}")
    cpu = ours["cpu10k"] / o["cpu10k"]
    print(f"client CPU per 10k requests vs oha: {cpu:.2f}x")
if ours and "wrk" in closed:
    print(f"client CPU per 10k requests, open model vs wrk's closed model: {ours['cpu10k'] / closed['wrk']['cpu10k']:.2f}x")
print("Envoy (dj, 1 worker thread) is the limit on 2 cores: its CPU per 10k requests is shown above.")
print("oha counts the requests in flight at its deadline as errors; wrk drops them; envoy-traffic lets them finish.")
EOF
