#!/bin/sh
# The dialplan's prompts (dialer/prompts.py): every docker/asterisk/sounds/<name>.txt becomes
# <name>.wav, Mandarin speech from espeak-ng, resampled by sox to what Asterisk plays without
# transcoding: 8 kHz, mono, 16-bit PCM WAV. Debian: apt-get install espeak-ng sox.
# Voice cmn-latn-pinyin, not plain cmn: espeak-ng 1.51 (Debian 12) turns the characters into
# pinyin first, and plain cmn then reads that pinyin as English words ("ni3" as "nee three").
# Usage: scripts/make-prompts.sh [folder]   (default docker/asterisk/sounds)
set -eu
dir=${1:-docker/asterisk/sounds}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-prompts: $tool is missing (apt-get install espeak-ng sox)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count=0
for txt in "$dir"/*.txt; do
  [ -e "$txt" ] || { echo "make-prompts: no .txt in $dir" >&2; exit 1; }
  name=$(basename "$txt" .txt)
  espeak-ng -v cmn-latn-pinyin -s 200 -f "$txt" -w "$tmp/$name.wav"
  sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$dir/$name.wav" gain -n -1
  count=$((count + 1))
done
# The callback's hold (MusicOnHold(default), docker/asterisk/musiconhold.conf): a soft chime
# every 3 s, so that the class has a file to play (an empty class ends the call at once).
mkdir -p "$dir/moh"
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$dir/moh/hold.wav" \
  synth 0.8 sine 523 fade 0.05 0.8 0.3 gain -12 pad 0 2.2
echo "make-prompts: $count prompts in $dir"
