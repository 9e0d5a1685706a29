#!/bin/sh
# A transcribed completion hook (hooks.command; docs/hooks.md): the subtitle goes beside its
# video (Keynote.en.srt beside Keynote.mp4), then Plex scans that one folder of the library (a
# partial scan), much cheaper than scanning it all. Needs curl. Set hooks.events: [done]; the
# Plex library points at folders.done. PLEX_SECTION: the library's id, the `key` of its
# Directory in http://127.0.0.1:32400/library/sections?X-Plex-Token=...
set -eu
url=${PLEX_URL:-http://127.0.0.1:32400}
section=${PLEX_SECTION:?set PLEX_SECTION to the library id}
token=$(cat "${PLEX_TOKEN_FILE:-/etc/transcribed/plex.token}")
video=$TRANSCRIBED_SOURCE
subtitle="${video%.*}.${TRANSCRIBED_LANGUAGE:-und}.srt"
[ -e "$subtitle" ] || cp "$TRANSCRIBED_RESULT_SRT" "$subtitle"        # never overwrite one
folder=$(dirname "$video")
if [ -n "${PLEX_PATH_PREFIX:-}" ]; then                               # Plex mounts done/ elsewhere
    folder=$(dirname "$PLEX_PATH_PREFIX/$TRANSCRIBED_SOURCE_RELATIVE")
fi
curl -fsS --max-time 20 -G "$url/library/sections/$section/refresh" \
    --data-urlencode "path=$folder" -H "X-Plex-Token: $token"
