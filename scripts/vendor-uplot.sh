#!/usr/bin/env bash
# Refreshes the dashboard's vendored uPlot from npm: the version pinned in
# tests/browser/package.json (and its lockfile) is installed with `npm ci` and its browser build,
# stylesheet and licence are copied under orchestrator/assets/dashboard/vendor/uplot/. Change the
# pin there first, then run this and update the version the page's footer names (index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd tests/browser && npm ci --no-audit --no-fund --silent)
src=tests/browser/node_modules/uplot
dst=orchestrator/assets/dashboard/vendor/uplot
version=$(node -p "require('./$src/package.json').version")
cp "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$src/LICENSE" "$dst/"
echo "uplot $version" > "$dst/VERSION"
echo "vendored uplot $version into $dst"
