#!/usr/bin/env bash
# GET /metrics through a real pod: Prometheus' own checker (promtool, Debian package
# "prometheus") accepts the text, idle and with an invocation queued, and the counters follow the
# invocations made: successes, function errors, throttles, cold starts, durations, the pool and
# the queue.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scheduler_lib.sh"
require_root
PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ]; then
  echo "SKIP: promtool is not installed (Debian package prometheus)" >&2
  exit 77
fi
pod_start
m=$EF_DATA/metrics

# check_metrics: scrapes into $m and has promtool check it (lint problems included).
check_metrics() {
  curl -sS -D "$m.h" -o "$m" "$EF_BASE/metrics"
  head -1 "$m.h" | grep -q ' 200' || fail "GET /metrics: $(head -1 "$m.h")"
  grep -qi '^content-type: text/plain; version=0.0.4' "$m.h" || fail "content type: $(grep -i content-type "$m.h")"
  "$PROMTOOL" check metrics <"$m" >"$m.check" 2>&1 || fail "promtool: $(cat "$m.check")"
  [ ! -s "$m.check" ] || fail "promtool complains: $(cat "$m.check")"
}

# sample NAME{LABELS}: the value of one sample in $m (empty when absent).
sample() {
  awk -v s="$1" '$1 == s { print $2 }' "$m"
}

# expect NAME{LABELS} VALUE
expect() {
  [ "$(sample "$1")" = "$2" ] || fail "$1 is '$(sample "$1")', not $2: $(grep -F "${1%%\{*}" "$m")"
}

note "before any invocation"
check_metrics
expect easyfaas_funclet_up 1
expect 'easyfaas_containers{state="warm"}' 0

note "invocations of every outcome are counted"
[ "$(create_function m python3.11 app.handler "$SLEEPER" ',"Timeout":2')" = 201 ] || fail "create"
[ "$(invoke m '{}')" = 200 ] || fail "call 1"
[ "$(invoke m '{}')" = 200 ] || fail "call 2"
[ "$(invoke m '{"fail": true}')" = 200 ] || fail "the failing call"
[ "$(invoke m '{"sleep": 5}')" = 200 ] || fail "the timing-out call"
[ "$(invoke m '{}')" = 200 ] || fail "call after the timeout"
put_concurrency m 0
[ "$(invoke m '{}')" = 429 ] || fail "throttled call"
check_metrics
expect 'easyfaas_invocations_total{function="m",outcome="success"}' 3
expect 'easyfaas_invocations_total{function="m",outcome="error"}' 1
expect 'easyfaas_invocations_total{function="m",outcome="timeout"}' 1
expect 'easyfaas_invocations_total{function="m",outcome="throttled"}' 1
expect 'easyfaas_invocation_duration_seconds_count{function="m"}' 5
expect 'easyfaas_invocation_duration_seconds_bucket{function="m",le="+Inf"}' 5
# The timeout ran 2 s: it is above the 1 s bucket, the rest below.
expect 'easyfaas_invocation_duration_seconds_bucket{function="m",le="1"}' 4
# The timeout destroyed the first container: two cold starts.
expect 'easyfaas_cold_starts_total{function="m"}' 2
expect 'easyfaas_containers{state="warm"}' 1
expect 'easyfaas_containers{state="busy"}' 0
[ -n "$(sample 'easyfaas_containers{state="cold"}')" ] || fail "no count of funclet's cold containers"

note "with an invocation queued"
put_concurrency m 1
invoke_bg m '{"sleep": 1.5}' first
wait_for 10 "a busy container" pool_is m busy 1
invoke_bg m '{}' queued
queued() {
  curl -sS -o "$m" "$EF_BASE/metrics"
  [ "$(sample 'easyfaas_function_queue_depth{function="m"}')" = 1 ]
}
wait_for 5 "the queued invocation in the metrics" queued
check_metrics
expect easyfaas_invocations_in_flight 1
expect easyfaas_queued_invocations 1
expect 'easyfaas_function_invocations_in_flight{function="m"}' 1
expect 'easyfaas_containers{state="busy"}' 1
wait_bg
[ "$(cat "$EF_DATA/first.code") $(cat "$EF_DATA/queued.code")" = "200 200" ] || fail "queued calls"
check_metrics
expect easyfaas_queued_invocations 0
expect 'easyfaas_invocations_total{function="m",outcome="success"}' 5

pod_stop
echo "PASS"
