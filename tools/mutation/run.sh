#!/usr/bin/env bash
# Mutation testing of src/BnParity with Stryker.NET (pinned in .config/dotnet-tools.json), against the fast,
# TorchSharp-free suite parity-tests/Library (kernels vs scalar references, golden bits on every path and thread
# count, aliasing, concurrency, worker failures, path selection).
#
#   tools/mutation/run.sh                      # the engine: src/BnParity/Engine/*.cs (~690 mutants, ~45 min on 2 cores)
#   tools/mutation/run.sh 'src/BnParity/Kernels/*.cs'   # other files (globs under the repo)
#   MUTATION_SINCE=main tools/mutation/run.sh  # only files changed since a commit
#   MUTATION_FILTER='FullyQualifiedName~…' tools/mutation/run.sh …   # another test filter (default: parity-tests/Library;
#       the module surface also needs Rules.ModuleRuleTests, Rules.ValidationRuleTests and Rules.StateDictRuleTests)
#   tools/mutation/run.sh 'src/BnParity.Harness/Comparison/*.cs'     # files of the harness: the project to mutate is
#       BnParity.Harness.csproj (chosen from the globs; one project per run), with a filter such as docs/mutation-testing.md gives
#
# Budget: about 4 s per mutant with 2 test sessions on this 2-core machine (coverage analysis is off, so every mutant
# runs the whole Library suite), plus ~1 min to build. A whole-library run (~2 200 mutants) takes about 2.5 hours, so
# the script is scoped by file; the results and the triage of every survivor are kept in docs/mutation-testing.md.
# Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet tool restore >/dev/null

patterns=("$@")
if [ ${#patterns[@]} -eq 0 ]; then
  patterns=("src/BnParity/Engine/*.cs")
fi

args=()
project=BnParity.csproj
for p in "${patterns[@]}"; do
  args+=(--mutate "**/$p")
  case "$p" in src/BnParity.Harness/*) project=BnParity.Harness.csproj ;; esac
done
args+=(--project "$project")
if [ -n "${MUTATION_SINCE:-}" ]; then
  args+=("--since:$MUTATION_SINCE")
fi

output="${MUTATION_OUTPUT:-$PWD/StrykerOutput}"
cd tools/mutation
dotnet stryker -f stryker-config.json "${args[@]}" \
  --test-case-filter "${MUTATION_FILTER:-FullyQualifiedName~BnParity.ParityTests.Library}" \
  --output "$output" --skip-version-check
echo "report: $output/reports/mutation-report.html (json beside it)"
