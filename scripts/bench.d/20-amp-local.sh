#!/usr/bin/env bash
# 20-amp-local: remote-write throughput through amp-local (SigV4 verified, forwarded) against
# the same requests straight into the Prometheus receiver, in one run. Same samples both ways:
# N workers, each sending R requests of S series x 1 sample (protobuf + snappy), built (and for
# amp-local signed) before the clock starts. Target (issues 3, 13): amp-local costs at most
# 15% of the samples/s; the p99 latency it adds per request is reported. amp-local labels every
# series with its workspace (issue 13), so a third side sends that same series content straight
# in: amp-local's own cost and the label's cost inside Prometheus are reported apart.
# Alternating rounds, the best round of each side (the machine is shared with other work).
# Then the instant-query overhead of confining a workspace.
#
# Env (make bench sets the stack's): AWS_ENDPOINT_URL_AMP, AMPKIT_PROMETHEUS_URL, AWS_REGION,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. Knobs: AMPKIT_BENCH_RW_WORKERS (4),
# AMPKIT_BENCH_RW_REQUESTS (100 per worker), AMPKIT_BENCH_RW_SERIES (2000 per request),
# AMPKIT_BENCH_RW_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

for v in AWS_ENDPOINT_URL_AMP AMPKIT_PROMETHEUS_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
    [ -n "${!v:-}" ] || { echo "20-amp-local: $v is not set (run through make bench)" >&2; exit 2; }
done
# 2000 samples per request is Prometheus's default max_samples_per_send.
workers=${AMPKIT_BENCH_RW_WORKERS:-4}
requests=${AMPKIT_BENCH_RW_REQUESTS:-100}
series=${AMPKIT_BENCH_RW_SERIES:-2000}
rounds=${AMPKIT_BENCH_RW_ROUNDS:-3}

cargo build --release --quiet -p ampkit-e2e --example remote-write-load
gen=target/release/examples/remote-write-load

# A workspace, made with curl's own SigV4 (the tool users reach for), waited ACTIVE.
sig=(--aws-sigv4 "aws:amz:$AWS_REGION:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1"; }
ws=$(curl -fsS --noproxy '*' "${sig[@]}" -H 'content-type: application/json' \
    -d '{"alias":"bench-remote-write"}' "$AWS_ENDPOINT_URL_AMP/workspaces" | json_field workspaceId)
cleanup() { curl -fsS --noproxy '*' "${sig[@]}" -X DELETE "$AWS_ENDPOINT_URL_AMP/workspaces/$ws" >/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 60); do
    status=$(curl -fsS --noproxy '*' "${sig[@]}" "$AWS_ENDPOINT_URL_AMP/workspaces/$ws" | json_field workspace.status.statusCode)
    [ "$status" = ACTIVE ] && break
    sleep 0.5
done
[ "$status" = ACTIVE ] || { echo "20-amp-local: workspace $ws never turned ACTIVE" >&2; exit 1; }

direct_url="$AMPKIT_PROMETHEUS_URL/api/v1/write"
amp_url="$AWS_ENDPOINT_URL_AMP/workspaces/$ws/api/v1/remote_write"
tag="$$-$(date +%s)"
# Three sides, alternating for some rounds (the machine is shared, so each keeps its best):
# straight into Prometheus; straight in with the workspace label amp-local adds (the same
# series content amp-local delivers, so the difference to amp-local is amp-local's own work:
# SigV4, the decode/re-encode, the hop); and through amp-local. Every round writes new series.
labelled=(--extra-label "ampkit_workspace=$ws")
"$gen" "$direct_url" --workers "$workers" --requests 20 --series "$series" --label "warm-direct-$tag" >/dev/null
"$gen" "$amp_url" --sign --workers "$workers" --requests 20 --series "$series" --label "warm-amp-$tag" >/dev/null
direct=() same=() amp=()
for round in $(seq 1 "$rounds"); do
    direct+=("$("$gen" "$direct_url" --workers "$workers" --requests "$requests" --series "$series" --label "direct-$tag-$round")")
    same+=("$("$gen" "$direct_url" --workers "$workers" --requests "$requests" --series "$series" --label "same-$tag-$round" "${labelled[@]}")")
    amp+=("$("$gen" "$amp_url" --sign --workers "$workers" --requests "$requests" --series "$series" --label "amp-local-$tag-$round")")
done

python3 - "$workers" "$requests" "$series" "$rounds" "${direct[@]}" "${same[@]}" "${amp[@]}" <<'PY'
import json, sys
w, r, s, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = [json.loads(x) for x in sys.argv[5:]]
best = lambda xs: max(xs, key=lambda x: x["samples_per_s"])
d, l, a = best(runs[:n]), best(runs[n:2 * n]), best(runs[2 * n:])
print(f"remote write: {w} workers x {r} requests x {s} samples, new series each round; "
      f"best of {n} alternating rounds each")
print(f"{'path':<46} {'samples/s':>12} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
for name, x in (("straight into Prometheus", d),
                ("straight in, with the workspace label", l),
                ("through amp-local (SigV4, label added)", a)):
    print(f"{name:<46} {x['samples_per_s']:>12,.0f} {x['p50_ms']:>9.2f} {x['p99_ms']:>9.2f} {x['errors']:>7}")
own = (l["samples_per_s"] - a["samples_per_s"]) / l["samples_per_s"] * 100
label = (d["samples_per_s"] - l["samples_per_s"]) / d["samples_per_s"] * 100
total = (d["samples_per_s"] - a["samples_per_s"]) / d["samples_per_s"] * 100
verdict = "meets" if own <= 15 else "MISSES"
print(f"amp-local's own overhead (same series delivered): {own:.1f}% of samples/s (target <= 15%: {verdict}); "
      f"p99 added per request: {a['p99_ms'] - l['p99_ms']:+.2f} ms")
print(f"the workspace label's cost inside Prometheus: {label:.1f}%; all told vs unlabelled: {total:.1f}%")
PY

# ---- instant queries: what confining a workspace costs -----------------------------------------
# The same expression through amp-local (SigV4 verified, parsed with a PromQL parser, confined
# to the workspace, the workspace label taken out of the answer) and straight to Prometheus
# with the workspace matcher written by hand. One curl process per side, keep-alive, N
# requests each, alternating sides; per-request times from curl itself, medians compared.
calls=${AMPKIT_BENCH_QUERY_CALLS:-300}
# Selective, so that Prometheus's own evaluation (well under a millisecond) does not drown
# what amp-local adds.
expr='count by (worker) (ampkit_bench_remote_write{series="7"})'
direct_expr="count by (worker) (ampkit_bench_remote_write{series=\"7\", ampkit_workspace=\"$ws\"})"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
amp_q="$AWS_ENDPOINT_URL_AMP/workspaces/$ws/api/v1/query?query=$(enc "$expr")"
direct_q="$AMPKIT_PROMETHEUS_URL/api/v1/query?query=$(enc "$direct_expr")"
# Same answer both ways, or the timing means nothing.
series_values() { python3 -c 'import json, sys
print(sorted((json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in json.load(sys.stdin)["data"]["result"]))'; }
a=$(curl -fsS --noproxy '*' "${sig[@]}" "$amp_q" | series_values)
d=$(curl -fsS --noproxy '*' "$direct_q" | series_values)
[ "$a" = "$d" ] || { echo "20-amp-local: amp-local and Prometheus disagree: $a vs $d" >&2; exit 1; }
times() { # URL [curl args...]: one time_total (s) per request
    local url=$1; shift
    local args=()
    for _ in $(seq 1 "$calls"); do args+=(-o /dev/null "$url"); done
    curl -sS --noproxy '*' -w '%{time_total}\n' "$@" "${args[@]}"
}
amp_times=() direct_times=()
for _ in 1 2; do
    direct_times+=($(times "$direct_q"))
    amp_times+=($(times "$amp_q" "${sig[@]}"))
done
python3 - "$calls" "${#amp_times[@]}" "${amp_times[@]}" "${direct_times[@]}" <<'PY'
import statistics, sys
calls, n = int(sys.argv[1]), int(sys.argv[2])
values = [float(x) * 1000 for x in sys.argv[3:]]
amp, direct = values[:n], values[n:]
ma, md = statistics.median(amp), statistics.median(direct)
print(f"\ninstant query, {len(amp)} requests each side (keep-alive), ms per request:")
print(f"{'path':<42} {'median':>8} {'p90':>8}")
for name, xs in (("straight into Prometheus (matcher by hand)", direct), ("through amp-local (SigV4 + confine)", amp)):
    p90 = statistics.quantiles(xs, n=10)[-1]
    print(f"{name:<42} {statistics.median(xs):>8.3f} {p90:>8.3f}")
added = ma - md
verdict = "meets" if added < 1.0 else "MISSES"
print(f"amp-local adds {added:.3f} ms per instant query, SigV4 check included (target for the rewrite < 1 ms: {verdict})")
PY
