#!/usr/bin/env bash
# ./test.sh: brings what the tests need, then runs every test (`go test -race ./...`, then one test without -race).
#
# The tests start real servers and clients of their own on loopback: redis-server and
# nats-server (Debian's, JetStream on) for the several-nodes tests, Node.js with npm for the JS client suites (they run `npm ci`
# in test/js themselves), and Chromium, headless, for the dev console's page. On Debian or Ubuntu, as root or with sudo, this
# installs what is missing with apt-get; elsewhere it names the packages to install
# and stops. Extra arguments go to `go test` (./test.sh -run TestJSClient).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null; then
  echo "./test.sh: go is not installed: install Go 1.26 or later (https://go.dev/dl)" >&2
  exit 1
fi

# command -> the Debian package that provides it
declare -A package=([node]=nodejs [npm]=npm [redis-server]=redis-server [redis-cli]=redis-tools [nats-server]=nats-server [chromium]=chromium)
missing=()
for cmd in node npm redis-server redis-cli nats-server chromium; do
  command -v "$cmd" >/dev/null || missing+=("${package[$cmd]}")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null && { [ -z "$sudo" ] || command -v sudo >/dev/null; }; then
    echo "+ apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "./test.sh: the tests need these packages, not found here: ${missing[*]}" >&2
    echo "install them with your package manager, then run ./test.sh again" >&2
    exit 1
  fi
fi

echo "+ go test -race ./... $*"
go test -race ./... "$@"

# One test measures the stack a waiting reader holds, which -race's larger frames change;
# it skips under -race and runs here in a real build (unless arguments chose the tests).
if [ $# -eq 0 ]; then
  echo "+ go test -count=1 -run '^TestBusyReaderKeepsItsStack\$' ./hub"
  go test -count=1 -run '^TestBusyReaderKeepsItsStack$' ./hub
fi
