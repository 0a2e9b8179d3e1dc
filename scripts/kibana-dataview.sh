#!/usr/bin/env bash
# Creates a Kibana data view for logpipe's indices, with @timestamp as its
# time field, through Kibana's data views API. Idempotent: a data view that
# already exists for the pattern is left alone (or replaced with -f).
#
#   scripts/kibana-dataview.sh              # "*_log-*": every topic named *_log
#   scripts/kibana-dataview.sh web_log      # "web_log-*": one topic
#   scripts/kibana-dataview.sh -p 'app*-*'  # any pattern
#
# logtransfer writes to <topic>-<date> ([es] index default) and, with
# manage_templates = true, maps @timestamp as a date for <topic>-*.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: kibana-dataview.sh [-f] [-n NAME] [-p PATTERN | TOPIC]
  TOPIC       data view for one topic's indices: "TOPIC-*"
  -p PATTERN  index pattern (default "*_log-*")
  -n NAME     display name (default "logpipe PATTERN")
  -f          replace an existing data view for the pattern
Environment:
  KIBANA_URL        default http://127.0.0.1:5601
  KIBANA_SPACE      Kibana space id (default: the default space)
  KIBANA_API_KEY    API key (sent as "Authorization: ApiKey ..."), or
  KIBANA_USERNAME, KIBANA_PASSWORD   basic auth
  KIBANA_INSECURE=1 do not verify the TLS certificate
EOF
}

die() {
  echo "kibana-dataview: $*" >&2
  exit 1
}

pattern='*_log-*'
name=
force=false
pattern_set=false
while getopts ':p:n:fh' opt; do
  case $opt in
    p) pattern=$OPTARG; pattern_set=true ;;
    n) name=$OPTARG ;;
    f) force=true ;;
    h) usage; exit 0 ;;
    :) usage >&2; die "option -$OPTARG needs a value" ;;
    *) usage >&2; die "unknown option -$OPTARG" ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -gt 1 ] || { [ $# -eq 1 ] && $pattern_set; }; then
  usage >&2
  die "give either a topic or -p PATTERN"
fi
if [ $# -eq 1 ]; then
  # The agents' topic rule: letters, digits, '.', '_', '-'; at most 249.
  [[ $1 =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid topic name: $1"
  pattern="$1-*"
fi
[ -n "$pattern" ] || die "empty pattern"
[ -n "$name" ] || name="logpipe $pattern"
for v in "$pattern" "$name"; do
  [[ $v != *[[:cntrl:]]* ]] || die "control characters in pattern or name"
done

base=${KIBANA_URL:-http://127.0.0.1:5601}
base=${base%/}
if [ -n "${KIBANA_SPACE:-}" ]; then
  base="$base/s/$KIBANA_SPACE"
fi
# A stable id per pattern: a second run finds the first one's data view.
id="logpipe-$(printf '%s' "$pattern" | tr -c 'A-Za-z0-9_.-' '_')"

# json_string S: S as a JSON string (control characters were refused above).
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# Credentials go to curl through its config on stdin, not the command line.
curl_config() {
  local v
  if [ -n "${KIBANA_API_KEY:-}" ]; then
    v="Authorization: ApiKey $KIBANA_API_KEY"
    printf 'header = %s\n' "$(json_string "$v")"
  elif [ -n "${KIBANA_USERNAME:-}" ]; then
    v="$KIBANA_USERNAME:${KIBANA_PASSWORD:-}"
    printf 'user = %s\n' "$(json_string "$v")"
  fi
}

# request METHOD PATH [BODY]: sets status (HTTP code) and response (body).
status=
response=
request() {
  local args=(-sS -X "$1" --connect-timeout 10 --max-time 60
    -H 'kbn-xsrf: true' -H 'Content-Type: application/json'
    -K - -w '\n%{http_code}')
  if [ "${KIBANA_INSECURE:-}" = 1 ]; then
    args+=(-k)
  fi
  if [ $# -ge 3 ]; then
    args+=(--data-binary "$3")
  fi
  local out
  out=$(curl "${args[@]}" "$base$2" <<<"$(curl_config)") || die "cannot reach Kibana at $base"
  status=${out##*$'\n'}
  response=${out%$'\n'*}
}

request GET "/api/data_views/data_view/$id"
case $status in
  200)
    if ! $force; then
      echo "data view \"$pattern\" already exists (id $id)"
      exit 0
    fi
    ;;
  404) ;;
  401 | 403) die "Kibana refused the credentials (HTTP $status): $response" ;;
  *) die "looking up data view $id: HTTP $status: $response" ;;
esac

body="{\"override\": $force, \"data_view\": {\"id\": $(json_string "$id"), \"title\": $(json_string "$pattern"), \"name\": $(json_string "$name"), \"timeFieldName\": \"@timestamp\"}}"
request POST /api/data_views/data_view "$body"
case $status in
  200)
    if $force; then
      echo "data view \"$pattern\" replaced (id $id)"
    else
      echo "data view \"$pattern\" created (id $id)"
    fi
    ;;
  400 | 409)
    # Created by hand (another id) with the same pattern: leave it alone.
    if [[ $response == *[Dd]uplicate* ]]; then
      echo "data view \"$pattern\" already exists (created outside this script; -f replaces it)"
      exit 0
    fi
    die "creating data view: HTTP $status: $response"
    ;;
  *) die "creating data view: HTTP $status: $response" ;;
esac
