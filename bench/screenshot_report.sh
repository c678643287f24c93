#!/usr/bin/env bash
# Screenshot of the field-mapping report in headless Chromium (what a marketing-ops reader sees).
#
#   bench/screenshot_report.sh [REPORT_DIR] [PNG] [WIDTHxHEIGHT]
#
# REPORT_DIR holds report.html (default: report, as written by `factoryline report mapping --out report`);
# PNG defaults to REPORT_DIR/report.png; the window defaults to a laptop screen, 1440x2400 (a tall page).
# Needs Debian's chromium package (`apt-get install -y chromium`); CHROMIUM=/path/to/chrome overrides.
set -euo pipefail
dir="${1:-report}"
png="${2:-$dir/report.png}"
size="${3:-1440x2400}"
chrome="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [[ -z "$chrome" ]]; then
  echo "chromium not found: apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)" >&2
  exit 2
fi
html="$(cd "$dir" && pwd)/report.html"
[[ -f "$html" ]] || { echo "no $html: run 'factoryline report mapping --out $dir' first" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --window-size="${size/x/,}" --screenshot="$(realpath -m "$png")" "file://$html" >/dev/null 2>&1
echo "wrote $png"
