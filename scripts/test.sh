#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. type check;
#   2. unit and functional tests (SQLite, in-process bus);
#   3. the functional suites again on PostgreSQL + RabbitMQ, and on MariaDB;
#   4. end-to-end: `onestack up` in a scratch state directory, driven by the real
#      openstack CLI and openstacksdk, and Keystone served alone on PostgreSQL + RabbitMQ.
# Arguments, if any, are test files to run instead of the whole suite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
loader="file://$here/node_modules/tsx/dist/loader.mjs"
run_tests() { node --import "$loader" --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=300000 "$@"; }

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

mapfile -t e2e < <(find e2e -name '*.test.ts' 2>/dev/null | sort)
if [ ${#e2e[@]} -gt 0 ]; then
  echo "== end-to-end tests: ${#e2e[@]} files"
  TEST_CONCURRENCY=1 run_tests "${e2e[@]}"
fi
