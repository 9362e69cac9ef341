#!/usr/bin/env bash
# Renders a sample digest with `spacedigest digest preview --format html` and screenshots it
# in headless Chromium at phone and desktop widths, so layout changes can be looked at.
# Usage: scripts/preview-screenshot.sh [OUT_DIR]   (default: target/preview)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/preview}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cargo build --quiet
bin="$PWD/target/debug/spacedigest"
export SPACEDIGEST_DATABASE_URL="sqlite://$work/preview.db"
export SPACEDIGEST_LOG=warn
date="2026-11-20"
add() { "$bin" stories add --title "$1" --url "$2" --summary "$3" --published-at "$4" >/dev/null; }
add "Artemis II crew completes lunar flyby rehearsal" "https://news.example.org/artemis" \
  "<p>The four astronauts spent <strong>ten hours</strong> in the Orion simulator, rehearsing the free-return trajectory.</p>" "${date}T06:10:00Z"
add "Starship's second flight clears the tower" "https://news.example.org/starship" \
  "<p>Both stages separated cleanly; the booster attempted a catch.</p><p>Full replay inside.</p>" "${date}T09:45:00Z"
add "JWST spots water ice around a young star" "https://news.example.org/jwst" \
  "<p>Spectra from NIRSpec show ice in the disc's outer belt.</p>" "${date}T13:20:00Z"
add "ESA picks landing site for ExoMars rover" "https://news.example.org/exomars" \
  "<p>Oxia Planum remains the favourite.</p>" "${date}T17:05:00Z"
"$bin" digest preview --date "$date" --format html > "$work/digest.html"
for width in 390 1280; do
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --no-first-run --disable-sync --hide-scrollbars \
    --user-data-dir="$work/chrome-$width" --window-size="$width,2000" \
    --screenshot="$out/digest-$width.png" "file://$work/digest.html" >/dev/null 2>&1
  echo "$out/digest-$width.png"
done
