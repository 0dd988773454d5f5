#!/usr/bin/env bash
# promql vs curl --aws-sigv4 vs awscurl: the same SigV4-signed instant query (POST form) against
# one workspace on amp-local, CALLS sequential calls each, interleaved in rounds so that drift in
# the machine's load hits all alike; then a range query of ~1M samples: wall time and peak RSS of
# promql vs curl writing the same JSON.
#
# Targets (issue 6): promql per call <= 1.5x signed curl, and >= 20x faster than awscurl;
# range: promql's peak RSS at most about twice the response size.
#
# Environment (set by scripts/bench): AMPKIT_BIN_DIR, the stack env (AWS_*, AMPKIT_*).
# Knobs: BENCH_PROMQL_CALLS (50), BENCH_PROMQL_ROUNDS (5), BENCH_PROMQL_SAMPLES (1000000).
set -euo pipefail

calls=${BENCH_PROMQL_CALLS:-50}
rounds=${BENCH_PROMQL_ROUNDS:-5}
want_samples=${BENCH_PROMQL_SAMPLES:-1000000}
bin=${AMPKIT_BIN_DIR:-target/release}
ours=$bin/promql
: "${AWS_ENDPOINT_URL_AMP:?run under scripts/bench (amp-local must be in the stack)}"
: "${AMPKIT_PROMETHEUS_URL:?run under scripts/bench}"
region=${AWS_REGION:?}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

missing=()
[ -x "$ours" ] || missing+=("$ours (cargo build --release -p promql)")
[ -x "$bin/amp-workspace" ] || missing+=("$bin/amp-workspace")
command -v awscurl >/dev/null || missing+=("awscurl (scripts/bench-peers)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'promql bench skipped; missing: %s\n' "${missing[*]}"
  exit 0
fi

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now_ms() { local t=${EPOCHREALTIME/./}; printf '%s' "${t:0:-3}"; }

# ---- a workspace and Envoy metrics flowing into the receiver behind it -----------------------
"$bin/amp-workspace" ensure --alias ampkit-bench-promql >"$out/ws.json"
endpoint=$(json 'd["workspace"]["prometheusEndpoint"]' <"$out/ws.json")

# The workspace's series (amp-local keeps each workspace to its own, as AMP does).
series() {
  curl -fsS --aws-sigv4 "aws:amz:$region:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "${endpoint}api/v1/query" --data-urlencode 'query=count({__name__=~".+"})' \
    | json 'int(d["data"]["result"][0]["value"][1]) if d["data"]["result"] else 0'
}
if [ "$(series)" -lt 500 ]; then
  IFS=, read -r -a admins <<<"${AMPKIT_ENVOY_ADMIN_URLS:?}"
  {
    printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: envoy\n'
    printf '    metrics_path: /stats/prometheus\n    static_configs:\n'
    names=(dj jazz metal)
    for i in "${!admins[@]}"; do
      printf "      - targets: ['%s']\n        labels: {service: %s}\n" "${admins[$i]#http://}" "${names[$i]:-envoy$i}"
    done
    # Into the workspace, signed, as a collector writes to AMP.
    printf 'remote_write:\n  - url: %sapi/v1/remote_write\n    sigv4: {region: %s}\n    queue_config: {batch_send_deadline: 1s}\n' "$endpoint" "$region"
  } >"$out/agent.yml"
  scripts/local-stack agent "$out/agent.yml" >/dev/null
  # Enough history for the range query (its last 20 s): wait for ~25 s of samples.
  for _ in $(seq 1 60); do [ "$(series)" -ge 500 ] && break; sleep 1; done
  sleep 25
fi
for _ in $(seq 1 40); do
  curl -fsS -o /dev/null "${AMPKIT_ENVOY_URL:?}/jazz" || true
done

# ---- per-call latency -----------------------------------------------------------------------
expr='sum by (envoy_http_conn_manager_prefix) (rate(envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=~"ingress_.*"}[1m]))'
form=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.urlencode({"query": sys.argv[1]}))' "$expr")
query_url="${endpoint}api/v1/query"

run_ours()    { "$ours" query "$expr" <"$out/ws.json"; }
run_curl()    { curl -fsS --aws-sigv4 "aws:amz:$region:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
                  --data-urlencode "query=$expr" "$query_url"; }
run_awscurl() { awscurl --service aps --region "$region" -X POST \
                  -H 'Content-Type: application/x-www-form-urlencoded' -d "$form" "$query_url"; }
run_plain()   { curl -fsS --data-urlencode "query=$expr" "$AMPKIT_PROMETHEUS_URL/api/v1/query"; }

# All answer, and with the same result.
run_ours | json 'json.dumps(d["query"]["result"], sort_keys=True)' >"$out/r.ours"
run_curl | json 'json.dumps(d["data"]["result"], sort_keys=True)' >"$out/r.curl"
run_awscurl | json 'json.dumps(d["data"]["result"], sort_keys=True)' >"$out/r.awscurl"
for peer in curl awscurl; do
  # Values move between calls (rates); compare the series returned.
  a=$(json '[r["metric"] for r in d]' <"$out/r.ours"); b=$(json '[r["metric"] for r in d]' <"$out/r.$peer")
  [ "$a" = "$b" ] || { echo "promql and $peer disagree: $a vs $b"; exit 1; }
done

declare -A total=([promql]=0 [curl-sigv4]=0 [awscurl]=0 [curl-unsigned]=0)
declare -A fn=([promql]=run_ours [curl-sigv4]=run_curl [awscurl]=run_awscurl [curl-unsigned]=run_plain)
per_round=$(( (calls + rounds - 1) / rounds ))
for ((r = 0; r < rounds; r++)); do
  for name in promql curl-sigv4 awscurl curl-unsigned; do
    start=$(now_ms)
    for ((i = 0; i < per_round; i++)); do "${fn[$name]}" >/dev/null; done
    total[$name]=$(( total[$name] + $(now_ms) - start ))
  done
done
n=$((per_round * rounds))
ms() { awk -v t="${total[$1]}" -v n="$n" 'BEGIN { printf "%.2f", t / n }'; }
p=$(ms promql) c=$(ms curl-sigv4) a=$(ms awscurl) u=$(ms curl-unsigned)
echo "instant query, $n sequential calls each (ms per call):"
printf '  %-28s %8s\n' "promql" "$p" "curl --aws-sigv4" "$c" "awscurl" "$a" "curl unsigned (receiver)" "$u"
awk -v p="$p" -v c="$c" -v a="$a" 'BEGIN {
  r1 = p / c; r2 = a / p
  printf "  promql / signed curl = %.2fx (target <= 1.5x): %s\n", r1, (r1 <= 1.5 ? "PASS" : "FAIL")
  printf "  awscurl / promql     = %.1fx (target >= 20x): %s\n", r2, (r2 >= 20 ? "PASS" : "FAIL")
}'

# ---- range query of ~1M samples ---------------------------------------------------------------
s=$(series)
end=$(python3 -c 'import time; print(round(time.time() - 3, 3))')
start=$(awk -v e="$end" 'BEGIN { printf "%.3f", e - 20 }')
points=$(( (want_samples + s - 1) / s ))
[ "$points" -le 11000 ] || points=11000
step=$(awk -v p="$points" 'BEGIN { printf "%.4f", 20 / (p - 1) }')
rexpr='{__name__=~".+"}'
range_url="${endpoint}api/v1/query_range"

measure() { # NAME CMD... ; stdout to $out/NAME.json, "seconds maxrss_kb" to $out/NAME.time
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$out/$name.time" "$@" >"$out/$name.json"
}
measure promql-raw "$ours" range "$rexpr" --start "$start" --end "$end" --step "$step" --raw --timeout 2m <"$out/ws.json"
measure promql-doc "$ours" range "$rexpr" --start "$start" --end "$end" --step "$step" --timeout 2m <"$out/ws.json"
measure curl-sigv4 curl -fsS --aws-sigv4 "aws:amz:$region:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  --data-urlencode "query=$rexpr" -d "start=$start" -d "end=$end" -d "step=$step" "$range_url"
samples=$(json 'sum(len(r["values"]) for r in d["data"]["result"])' <"$out/curl-sigv4.json")
ours_samples=$(json 'sum(len(r["values"]) for r in d["result"])' <"$out/promql-raw.json")
[ "$samples" = "$ours_samples" ] || { echo "range: curl got $samples samples, promql $ours_samples"; exit 1; }
bytes=$(stat -c %s "$out/curl-sigv4.json")
echo
echo "range query: $samples samples ($s series x $points points), response $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB:"
printf '  %-22s %8s %12s %14s\n' "" "seconds" "peak RSS MiB" "RSS / response"
for name in promql-raw promql-doc curl-sigv4; do
  read -r secs kb <"$out/$name.time"
  awk -v n="$name" -v s="$secs" -v k="$kb" -v b="$bytes" \
    'BEGIN { printf "  %-22s %8.2f %12.1f %13.2fx\n", n, s, k / 1024, k * 1024 / b }'
done
read -r _ kb <"$out/promql-raw.time"
awk -v k="$kb" -v b="$bytes" 'BEGIN { r = k * 1024 / b
  printf "  promql peak RSS / response size = %.2fx (target <= ~2x): %s\n", r, (r <= 2.2 ? "PASS" : "FAIL") }'
