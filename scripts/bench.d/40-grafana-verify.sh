#!/usr/bin/env bash
# grafana-import --verify of a dashboard vs what a user scripts without it: the same panel
# queries (as grafana-import expanded them) run one after another with curl --aws-sigv4 in a
# shell loop, over the same range. Both against one workspace on amp-local fed by the mesh.
# Interleaved rounds; medians.
#
# Target (issue 10): grafana-import's verify takes at most 0.3x the curl loop's time.
#
# Environment (set by scripts/bench): AMPKIT_BIN_DIR, the stack env (AWS_*, AMPKIT_*).
# Knobs: BENCH_VERIFY_ROUNDS (7), BENCH_VERIFY_DASHBOARD (builtin:envoy-global; a FILE or
# gnet:ID, e.g. grafana.com's 11022, the recipe's).
set -euo pipefail

rounds=${BENCH_VERIFY_ROUNDS:-7}
bin=${AMPKIT_BIN_DIR:-target/release}
: "${AWS_ENDPOINT_URL_AMP:?run under scripts/bench (amp-local must be in the stack)}"
region=${AWS_REGION:?}
dashboard=${BENCH_VERIFY_DASHBOARD:-builtin:envoy-global}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

missing=()
for tool in grafana-import amp-workspace envoy-traffic promql; do
  [ -x "$bin/$tool" ] || missing+=("$bin/$tool")
done
case $dashboard in builtin:*|gnet:*) ;; *) [ -f "$dashboard" ] || missing+=("$dashboard");; esac
if [ ${#missing[@]} -gt 0 ]; then
  printf 'grafana-verify bench skipped; missing: %s\n' "${missing[*]}"
  exit 0
fi
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now_ms() { local t=${EPOCHREALTIME/./}; printf '%s' "${t:0:-3}"; }

# ---- a workspace fed by the mesh, labelled as the recipe's collector labels it ---------------
"$bin/amp-workspace" ensure --alias ampkit-bench-verify >"$out/ws.json"
endpoint=$(json 'd["workspace"]["prometheusEndpoint"]' <"$out/ws.json")
IFS=, read -r -a admins <<<"${AMPKIT_ENVOY_ADMIN_URLS:?}"
{
  printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: envoy\n'
  printf '    metrics_path: /stats/prometheus\n    static_configs:\n'
  names=(dj jazz metal)
  for i in "${!admins[@]}"; do
    printf "      - targets: ['%s']\n        labels: {service: %s, namespace: prod}\n" "${admins[$i]#http://}" "${names[$i]:-envoy$i}"
  done
  printf 'remote_write:\n  - url: %sapi/v1/remote_write\n    sigv4: {region: %s}\n    queue_config: {batch_send_deadline: 1s}\n' "$endpoint" "$region"
} >"$out/agent.yml"
scripts/local-stack agent "$out/agent.yml" >/dev/null
"$bin/envoy-traffic" --rate 50 --duration 10s --paths /jazz,/metal <"$out/ws.json" >/dev/null 2>&1
"$bin/promql" wait 'sum(rate(envoy_cluster_upstream_rq_total[5s])) > 0' --timeout 60s <"$out/ws.json" >/dev/null

# ---- the queries, as grafana-import expands them ---------------------------------------------
verify() {
  "$bin/grafana-import" -q --render-only --verify --dashboard "$dashboard" --out "$out" \
    --scrape-interval 1s --from "$from" --to "$to" <"$out/ws.json"
}
to=$(date +%s); from=$((to - 1800))
verify >"$out/verified.json"
python3 - "$out/verified.json" >"$out/queries.tsv" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for panel in doc["grafana"]["dashboards"][0]["verify"]["panels"]:
    for q in panel.get("queries", []):
        print(q["expr"])
PY
count=$(wc -l <"$out/queries.tsv")
summary=$(json '"{ok} ok, {empty} empty, {error} error, {skipped} skipped".format(**d["grafana"]["dashboards"][0]["verify"])' <"$out/verified.json")

# What a user scripts: each query as a range query, one curl after another.
curl_loop() {
  while IFS= read -r expr; do
    curl -fsS -o /dev/null --aws-sigv4 "aws:amz:$region:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      --data-urlencode "query=$expr" --data "start=$from&end=$to&step=5" "${endpoint}api/v1/query_range"
  done <"$out/queries.tsv"
}

ours_ms=(); curl_ms=()
for _ in $(seq 1 "$rounds"); do
  t0=$(now_ms); verify >/dev/null; t1=$(now_ms); ours_ms+=($((t1 - t0)))
  t0=$(now_ms); curl_loop; t1=$(now_ms); curl_ms+=($((t1 - t0)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=$(median "${ours_ms[@]}"); theirs=$(median "${curl_ms[@]}")
printf '%-62s %10s\n' "dashboard $dashboard: $count panel queries" "median ms"
printf '%-62s %10s\n' "grafana-import --verify ($summary)" "$ours"
printf '%-62s %10s\n' "curl --aws-sigv4 loop, one after another" "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import sys
ours, theirs = (float(x) for x in sys.argv[1:])
ratio = ours / theirs if theirs else float("nan")
verdict = "meets" if ratio <= 0.3 else "MISSES"
print(f"ratio grafana-import / curl loop: {ratio:.2f}x ({verdict} the 0.3x target)")
PY
