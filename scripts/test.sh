#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. type check;
#   2. unit and functional tests (SQLite, in-process bus);
#   3. the functional suites again on PostgreSQL + RabbitMQ, and on MariaDB;
#   4. end-to-end: `onestack up` in a scratch state directory, driven by the real
#      openstack CLI and openstacksdk, and Keystone served alone on PostgreSQL + RabbitMQ.
#      One cloud, started here, serves every file that calls sharedCloud() (e2e/cloud.ts).
# Arguments, if any, are test files to run instead of the whole suite (an e2e file run so
# starts a cloud of its own); `--e2e [FILES]` runs the end-to-end phase alone, on every
# e2e file or on FILES, with its shared cloud.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
loader="file://$here/node_modules/tsx/dist/loader.mjs"
run_tests() { node --import "$loader" --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=300000 "$@"; }

# The e2e files (every one, or the given ones) in two lanes side by side: the sharedCloud()
# files one after the other on one cloud, which is stopped, purged and checked for leftover
# namespaces however the phase ends; beside them, one after the other, the files with a cloud
# or fixture of their own (startCloud(), packages' fixtures, guest-image's netns lab), which
# share nothing with that cloud. The second lane's output follows the first's.
e2e_phase() {
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || mapfile -t files < <(find e2e -name '*.test.ts' 2>/dev/null | sort)
  [ ${#files[@]} -gt 0 ] || return 0
  local on_shared=() on_own=() f
  for f in "${files[@]}"; do
    if grep -q 'sharedCloud(' "$f"; then on_shared+=("$f"); else on_own+=("$f"); fi
  done
  echo "== end-to-end tests: ${#files[@]} files, ${#on_shared[@]} on the shared cloud, ${#on_own[@]} beside them"
  shared_dir=$(mktemp -d)
  trap stop_shared_cloud EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local t0=$SECONDS own_rc=0 shared_rc=0
  if [ ${#on_own[@]} -gt 0 ]; then
    (
      rc=0
      TEST_CONCURRENCY=1 run_tests "${on_own[@]}" || rc=$?
      echo "== the files with a cloud of their own done in $((SECONDS - t0)) s"
      exit $rc
    ) >"$shared_dir/own.out" 2>&1 &
    own_lane=$!
  fi
  if [ ${#on_shared[@]} -gt 0 ]; then
    # Named after this shell's PID, the cloud's namespaces are swept by other labs only once it is gone.
    # (Explicit: called from timed's `||`, this function runs without errexit.)
    node --import "$loader" e2e/shared-cloud.ts up "$shared_dir/cloud.json" $$ || return 1
    echo "== shared e2e cloud up in $((SECONDS - t0)) s"
    ONESTACK_E2E_SHARED_CLOUD="$shared_dir/cloud.json" TEST_CONCURRENCY=1 run_tests "${on_shared[@]}" || shared_rc=$?
    echo "== the shared cloud's files done in $((SECONDS - t0)) s"
  fi
  if [ -n "${own_lane:-}" ]; then
    wait "$own_lane" || own_rc=$?
    own_lane=
    echo "== end-to-end files with a cloud of their own, run beside the others:"
    cat "$shared_dir/own.out"
  fi
  [ "$shared_rc" -eq 0 ] && [ "$own_rc" -eq 0 ]
}
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
stop_shared_cloud() {
  local rc=$?
  # Interrupted with the second lane still running: its test files (SIGTERM first, so that their
  # own handlers take their clouds down), then its runner.
  if [ -n "${own_lane:-}" ]; then
    kill_tree "$own_lane"
    wait "$own_lane" 2>/dev/null || true
    cat "$shared_dir/own.out" 2>/dev/null || true
  fi
  if [ -f "$shared_dir/cloud.json" ] && ! node --import "$loader" e2e/shared-cloud.ts down "$shared_dir/cloud.json"; then
    echo "the shared e2e cloud may still be up: $shared_dir/cloud.json describes it" >&2
    exit 1
  fi
  rm -rf "$shared_dir"
  exit $rc
}

# The CPU seconds (user + system) of the children this shell has waited for: a phase's share
# beside its wall time says whether it computes (two cores busy) or waits.
# (`times` into a file: in a command substitution it would report the subshell's children.)
cpu_now() {
  local f
  f=$(mktemp)
  times >"$f"
  cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$f")
  rm -f "$f"
}
timed() {
  local name=$1 t0=$SECONDS cpu c0 rc=0
  shift
  cpu_now
  c0=$cpu
  "$@" || rc=$?
  cpu_now
  local wall=$((SECONDS - t0))
  cpu=$((cpu - c0))
  echo "== $name: $wall s wall, $cpu s CPU (children), exit $rc"
  return $rc
}

if [ "${1:-}" = --e2e ]; then shift; e2e_phase "$@"; exit; fi
if [ $# -gt 0 ]; then run_tests "$@"; exit; fi

echo "== type check"
timed "type check" npx tsc -p tsconfig.json --noEmit

mapfile -t unit < <(find packages -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort)
echo "== unit and functional tests (SQLite, in-process bus): ${#unit[@]} files"
timed "SQLite phase" run_tests "${unit[@]}"

# Swift's suites are left out: its account and container databases are SQLite files whatever
# ONESTACK_TEST_DB says, and the Keystone behind them is the Keystone suites' business.
mapfile -t functional < <(find packages/*/test -name '*.test.ts' -not -path 'packages/swift/*' | sort)
# The two share nothing (their own database servers, RabbitMQ against the in-process bus) and
# neither keeps both cores busy alone: side by side, each into its own file, printed after.
echo "== functional tests on PostgreSQL and RabbitMQ, and on MariaDB, side by side: ${#functional[@]} files each"
db_out=$(mktemp -d)
db_lanes=()
stop_db_lanes() {
  local lane
  for lane in "${db_lanes[@]}"; do kill_tree "$lane"; done
  rm -rf "$db_out"
}
trap stop_db_lanes EXIT
t_db=$SECONDS
(ONESTACK_TEST_DB=postgres ONESTACK_TEST_BUS=amqp timed "PostgreSQL phase" run_tests "${functional[@]}") >"$db_out/pg" 2>&1 &
db_lanes+=($!)
(ONESTACK_TEST_DB=mysql timed "MariaDB phase" run_tests "${functional[@]}") >"$db_out/mysql" 2>&1 &
db_lanes+=($!)
pg_rc=0 mysql_rc=0
wait "${db_lanes[0]}" || pg_rc=$?
wait "${db_lanes[1]}" || mysql_rc=$?
trap - EXIT
echo "== functional tests on PostgreSQL and RabbitMQ:"
cat "$db_out/pg"
echo "== functional tests on MariaDB:"
cat "$db_out/mysql"
rm -rf "$db_out"
echo "== PostgreSQL and MariaDB phases side by side: $((SECONDS - t_db)) s wall"
[ "$pg_rc" -eq 0 ] && [ "$mysql_rc" -eq 0 ]

timed "end-to-end phase" e2e_phase
