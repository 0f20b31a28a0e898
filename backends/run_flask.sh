#!/usr/bin/env bash
# Starts one Flask backend per port, each answering "hello from server on port N".
# Usage: backends/run_flask.sh 8101 8102 8103   (Ctrl-C stops them all)
set -euo pipefail
cd "$(dirname "$0")"
[ $# -gt 0 ] || { echo "usage: $0 PORT [PORT ...]" >&2; exit 2; }
PY=${PYTHON:-/usr/bin/python3}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for port in "$@"; do
  MSG="hello from server on port ${port}" FLASK_APP=httpd.py "$PY" -m flask run --port "$port" &
  pids+=($!)
done
wait
