#!/usr/bin/env bash
# The one test command (README "Run the tests"). On a fresh Debian 12 machine, as root, it installs
# what the tests need (Debian packages, a Python venv with moto_server and websockets), builds the workspace once
# (debug binaries plus the static release agent) and runs the whole suite against real processes
# on loopback. Nothing here or in the tests reaches anything but loopback and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need_pkgs=()
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v cc >/dev/null || need_pkgs+=(gcc libc6-dev)
# Test hosts: network namespaces (iproute2, util-linux's unshare) each running a real sshd.
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v unshare >/dev/null || need_pkgs+=(util-linux)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v shellcheck >/dev/null || need_pkgs+=(shellcheck)
# The balancer's install on a test host writes its rotation where logrotate is.
[ -d /etc/logrotate.d ] || need_pkgs+=(logrotate)
# The dashboard's browser tests: Debian's Chromium, driven by playwright-core on Node.js.
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
# The balancer's HTTPS and HTTP/2 tests: certificates made and checked by openssl, clients curl
# (with HTTP/2) and h2load.
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v h2load >/dev/null || need_pkgs+=(nghttp2-client)
command -v npm >/dev/null || need_pkgs+=(nodejs npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

venv="$root/.venv"
# moto_server for the EC2 and ELBv2 API; websockets, the client and echo target of the
# balancer's WebSocket tests; h2, the misbehaving HTTP/2 clients of its flood tests.
if ! [ -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import websockets, h2' 2>/dev/null; then
  echo "== creating $venv with moto_server, websockets and h2"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto==5.2.5' flask flask-cors \
    'websockets==15.0.1' 'h2==4.2.0'
fi

echo "== installing the browser tests' npm packages (tests/browser/package-lock.json)"
(cd tests/browser && npm ci --no-audit --no-fund --silent)

# A cold build from a clean clone gains nothing from incremental caches, and spends time
# writing them.
export CARGO_INCREMENTAL=0
echo "== building the workspace: binaries and tests in one build"
# One invocation for the binaries the system tests run and for every test target, so features
# unify once (the balancer's tests enable tokio's test-util): building the binaries alone and
# then `cargo test` would compile tokio and everything above it, aws-config included, twice.
cargo build --workspace --all-targets --locked
echo "== building the static agent and balancer, the dist profile (one build)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --locked \
  --target x86_64-unknown-linux-gnu -p agent -p balancer

export ELB_MOTO_SERVER="$venv/bin/moto_server"
export ELB_STATIC_AGENT="$root/target/x86_64-unknown-linux-gnu/dist/elb-agent"
export ELB_STATIC_BALANCER="$root/target/x86_64-unknown-linux-gnu/dist/elb-balancer"
# The tests never talk to real AWS or instance metadata; make sure nothing inherited says otherwise.
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN || true

echo "== running the tests"
# --all-targets: unit and whole-system tests (the crates have no doc examples), system suite last.
cargo test --workspace --all-targets --locked "$@"
