#!/bin/sh
# A transcribed completion hook (hooks.command; docs/hooks.md): the subtitle goes beside its
# video, named as Jellyfin reads external subtitles (Keynote.en.srt beside Keynote.mp4), then
# Jellyfin is told about that one path, which refreshes that item instead of the whole library.
# Needs curl and jq. Set hooks.events: [done]; the Jellyfin library points at folders.done.
set -eu
url=${JELLYFIN_URL:-http://127.0.0.1:8096}
token=$(cat "${JELLYFIN_TOKEN_FILE:-/etc/transcribed/jellyfin.token}")  # Dashboard > API Keys
video=$TRANSCRIBED_SOURCE
subtitle="${video%.*}.${TRANSCRIBED_LANGUAGE:-und}.srt"
[ -e "$subtitle" ] || cp "$TRANSCRIBED_RESULT_SRT" "$subtitle"        # never overwrite one
# The path as Jellyfin sees it, when it mounts the share elsewhere (JELLYFIN_PATH_PREFIX=/media
# for a done/ folder mounted at /media in Jellyfin's container).
seen=$subtitle
if [ -n "${JELLYFIN_PATH_PREFIX:-}" ]; then
    seen="$JELLYFIN_PATH_PREFIX/$TRANSCRIBED_SOURCE_RELATIVE"
    seen="${seen%.*}.${TRANSCRIBED_LANGUAGE:-und}.srt"
fi
body=$(jq -n --arg path "$seen" '{Updates: [{Path: $path, UpdateType: "Created"}]}')
# -f: an error answer exits non-zero, so the daemon retries the hook.
curl -fsS --max-time 20 -X POST "$url/Library/Media/Updated" \
    -H "Authorization: MediaBrowser Token=\"$token\"" -H "Content-Type: application/json" \
    -d "$body"
