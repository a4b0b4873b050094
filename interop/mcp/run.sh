#!/usr/bin/env bash
# Runs every auth/* client scenario of the MCP conformance suite
# (@modelcontextprotocol/conformance, pinned in package.json) against
# interop/mcp/client, two at a time, and fails if any scenario does.
#
# Needs `npm ci --prefix interop/mcp` first: it brings the suite and the
# Node 22 it runs on (node_modules/.bin/node; the machine's node may be
# older). Go builds the client.
#
# A scenario passes when all of these hold:
#   - the suite exited 0 (its own verdict: no FAILURE or WARNING check, no
#     timeout, and a client exit code of 0 unless the scenario allows a
#     failing client: scope-retry-limit and resource-mismatch);
#   - it wrote exactly one checks.json (-o), a non-empty JSON array;
#   - every check in it is SUCCESS or INFO (anything else fails it), and at
#     least one is SUCCESS.
# Fewer than 22 auth scenarios listed (0.1.16 has 22) fails the run too.
#
# MCP_CONFORMANCE_OUT=DIR keeps each scenario's results (checks.json, the
# client's stdout.txt and stderr.txt, the suite's log) in DIR; by default
# they go to a temporary directory that is removed. MCP_CONFORMANCE_ONLY=RE
# runs only the scenarios whose name matches the extended regexp RE (and
# skips the count check): for local work, not for CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
min_scenarios=22
parallel=2
client_timeout_ms=30000 # the suite kills the client after this (the client gives up at 25 s)
scenario_timeout=90     # seconds: a bound on one whole suite run

node="$here/node_modules/.bin/node"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ ! -x "$node" ] || [ ! -f "$suite" ]; then
	echo "run.sh: no suite in $here/node_modules: run npm ci --prefix interop/mcp first" >&2
	exit 1
fi
node_version=$("$node" --version)
case "$node_version" in
v22.*) ;;
*) echo "run.sh: $node is $node_version, not Node 22" >&2; exit 1 ;;
esac
export PATH="$here/node_modules/.bin:$PATH" # anything the suite spawns as node is Node 22

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${MCP_CONFORMANCE_OUT:-}" ]; then
	mkdir -p "$MCP_CONFORMANCE_OUT"
	out=$(cd "$MCP_CONFORMANCE_OUT" && pwd)
else
	out="$work/out"
	mkdir -p "$out"
fi

client="$work/client"
(cd "$here" && go build -o "$client" ./client)
case "$client" in
*[[:space:]]*) echo "run.sh: the client's path has a space ($client): the suite splits its --command on spaces" >&2; exit 1 ;;
esac

mapfile -t scenarios < <("$node" "$suite" list --client | sed -n 's/^[[:space:]]*- \(auth\/[^[:space:]]*\).*/\1/p')
if [ -n "${MCP_CONFORMANCE_ONLY:-}" ]; then
	mapfile -t scenarios < <(printf '%s\n' "${scenarios[@]}" | grep -E -- "$MCP_CONFORMANCE_ONLY" || true)
elif [ ${#scenarios[@]} -lt $min_scenarios ]; then
	echo "run.sh: the suite lists ${#scenarios[@]} auth scenarios, expected at least $min_scenarios:" >&2
	printf '  %s\n' "${scenarios[@]}" >&2
	exit 1
fi
if [ ${#scenarios[@]} -eq 0 ]; then
	echo "run.sh: no scenario to run" >&2
	exit 1
fi
echo "MCP conformance $("$node" -p "require('$here/node_modules/@modelcontextprotocol/conformance/package.json').version") on Node $node_version: ${#scenarios[@]} auth scenarios, $parallel at a time"

# run_one INDEX NAME: one scenario into $out/INDEX (the suite's log in
# suite.log, its exit code in rc). The suite runs its --command through
# sh -c and kills that process at the timeout: "exec" makes it the client,
# which a kill then stops (else the client outlives it and the suite waits
# for it to close its output).
run_one() {
	local dir="$out/$1"
	mkdir -p "$dir"
	local rc=0
	timeout -k 10 "$scenario_timeout" "$node" "$suite" client \
		--command "exec $client" --scenario "$2" --timeout "$client_timeout_ms" -o "$dir" \
		>"$dir/suite.log" 2>&1 || rc=$?
	echo "$rc" >"$dir/rc"
}

# judge NAME DIR: prints one summary line; exits 0 iff the scenario passed.
judge() {
	"$node" - "$1" "$2" <<'EOF'
const fs = require('fs');
const path = require('path');
const [name, dir] = process.argv.slice(2);
const rc = fs.readFileSync(path.join(dir, 'rc'), 'utf8').trim();
const problems = [];
if (rc !== '0') problems.push(rc === '124' || rc === '137' ? `suite timed out (exit ${rc})` : `suite exit ${rc}`);
const log = fs.existsSync(path.join(dir, 'suite.log')) ? fs.readFileSync(path.join(dir, 'suite.log'), 'utf8') : '';
// Shown with a failure; the suite's exit code already judged them (a
// failing client is allowed in two scenarios).
const notes = [];
const exited = log.match(/Client exited with code (-?\d+)/);
if (exited) notes.push(`client exit ${exited[1]}`);
if (/Client timed out/.test(log)) notes.push('client timed out');
const found = [];
(function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name === 'checks.json') found.push(p);
  }
})(dir);
let checks = [];
if (found.length !== 1) {
  problems.push(`${found.length} checks.json files, expected 1`);
} else {
  try {
    checks = JSON.parse(fs.readFileSync(found[0], 'utf8'));
    if (!Array.isArray(checks) || checks.length === 0) { problems.push('checks.json is not a non-empty array'); checks = []; }
  } catch (e) {
    problems.push(`checks.json: ${e.message}`);
  }
}
const count = {};
const bad = [];
for (const c of checks) {
  const s = String(c && c.status);
  count[s] = (count[s] || 0) + 1;
  if (s !== 'SUCCESS' && s !== 'INFO') bad.push(`${s} ${c && c.id}`);
}
if (checks.length > 0 && !count.SUCCESS) problems.push('no SUCCESS check');
const tally = Object.entries(count).map(([s, n]) => `${n} ${s}`).join(', ');
const ok = problems.length === 0 && bad.length === 0;
let line = `${ok ? 'PASS' : 'FAIL'} ${name} (${tally || 'no checks'})`;
if (!ok) {
  line += `\n       ${[...problems, ...notes, ...new Set(bad)].join('; ')}`;
  // The client's own last word, if it said why.
  const stderr = found.length === 1 ? path.join(path.dirname(found[0]), 'stderr.txt') : '';
  if (stderr && fs.existsSync(stderr)) {
    const last = fs.readFileSync(stderr, 'utf8').trim().split('\n').filter(l => l.startsWith('client:')).pop();
    if (last) line += `\n       ${last.slice(0, 300)}`;
  }
}
console.log(line);
process.exit(ok ? 0 : 1);
EOF
}

start=$SECONDS
running=0
for i in "${!scenarios[@]}"; do
	if [ $running -ge $parallel ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_one "$i" "${scenarios[$i]}" &
	running=$((running + 1))
done
wait

passed=0
failed=0
for i in "${!scenarios[@]}"; do
	if judge "${scenarios[$i]}" "$out/$i"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "MCP conformance: $passed passed, $failed failed of ${#scenarios[@]} auth scenarios in $((SECONDS - start)) s"
if [ -n "${MCP_CONFORMANCE_OUT:-}" ]; then
	echo "results in $out/<n>/ (suite.log, rc, auth/<scenario>-<time>/checks.json, stdout.txt, stderr.txt)"
fi
[ $failed -eq 0 ]
