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

# Every e2e file (or the given ones) in turn, the sharedCloud() ones on one cloud that is
# stopped, purged and checked for leftover namespaces however the phase ends.
e2e_phase() {
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || mapfile -t files < <(find e2e -name '*.test.ts' 2>/dev/null | sort)
  [ ${#files[@]} -gt 0 ] || return 0
  echo "== end-to-end tests: ${#files[@]} files"
  shared_dir=$(mktemp -d)
  trap stop_shared_cloud EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Named after this shell's PID, the cloud's namespaces are swept by other labs only once it is gone.
  local t0=$SECONDS
  node --import "$loader" e2e/shared-cloud.ts up "$shared_dir/cloud.json" $$
  echo "== shared e2e cloud up in $((SECONDS - t0)) s"
  ONESTACK_E2E_SHARED_CLOUD="$shared_dir/cloud.json" TEST_CONCURRENCY=1 run_tests "${files[@]}"
}
stop_shared_cloud() {
  local rc=$?
  if [ -f "$shared_dir/cloud.json" ] && ! node --import "$loader" e2e/shared-cloud.ts down "$shared_dir/cloud.json"; then
    echo "the shared e2e cloud may still be up: $shared_dir/cloud.json describes it" >&2
    exit 1
  fi
  rm -rf "$shared_dir"
  exit $rc
}

if [ "${1:-}" = --e2e ]; then shift; e2e_phase "$@"; exit; fi
if [ $# -gt 0 ]; then run_tests "$@"; exit; fi

echo "== type check"
npx tsc -p tsconfig.json --noEmit

mapfile -t unit < <(find packages -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort)
echo "== unit and functional tests (SQLite, in-process bus): ${#unit[@]} files"
run_tests "${unit[@]}"

mapfile -t functional < <(find packages/*/test -name '*.test.ts' | sort)
echo "== functional tests on PostgreSQL and RabbitMQ: ${#functional[@]} files"
ONESTACK_TEST_DB=postgres ONESTACK_TEST_BUS=amqp run_tests "${functional[@]}"
echo "== functional tests on MariaDB: ${#functional[@]} files"
ONESTACK_TEST_DB=mysql run_tests "${functional[@]}"

e2e_phase
