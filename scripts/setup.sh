#!/usr/bin/env bash
# Installs what katakana-scorer needs on a Debian/Ubuntu machine; safe to run again (it skips what is done).
#   scripts/setup.sh          the service: bubblewrap, Redis, a Japanese font (the history chart's PNG),
#                             the app's venv (.venv), the reference runtime
#   scripts/setup.sh --test   also what the full test suite needs: PostgreSQL, Chromium (its screenshots
#                             use the same font), npm and axe-core (the browser tests' accessibility check)
# System packages are installed when we are root or have password-less sudo; otherwise this says
# exactly what to install and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------------------------
packages=(bubblewrap redis-server python3-venv libseccomp2 fonts-ipafont-gothic)
[ "$want_test" = 1 ] && packages+=(postgresql chromium)
# Debian's npm conflicts with a Node.js that ships its own npm (e.g. NodeSource's): only when absent.
[ "$want_test" = 1 ] && ! command -v npm >/dev/null && packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "please install: ${missing[*]} (no apt-get here)"; exit 1
  fi
  if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else
    say "missing system packages: ${missing[*]}"
    say "install them with:  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. the app's virtual environment -----------------------------------------------------------
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { say "Python 3.11+ is required ($python)"; exit 1; }
stamp=.venv/.katakana-installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  say "creating .venv"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e '.[service,dev]'
  touch "$stamp"
fi

# --- 3. the reference runtime that trainee code runs in -----------------------------------------
# It must be readable by the sandbox's unprivileged uid, so it lives outside any home folder when
# we are root, and is built from the system's Python (under /usr, which the sandbox shows).
if [ "$(id -u)" = 0 ]; then default_runtime=/opt/katakana/runtime; else default_runtime="$HOME/.local/share/katakana-scorer/runtime"; fi
runtime=${KATAKANA_RUNTIME_DIR:-$default_runtime}
runtime_python=/usr/bin/python3
[ -x "$runtime_python" ] || runtime_python=$python
rstamp="$runtime/.katakana-requirements"
if [ ! -x "$runtime/bin/python" ] || ! cmp -s runtime/requirements.txt "$rstamp"; then
  say "building the reference runtime in $runtime"
  mkdir -p "$(dirname "$runtime")"
  "$runtime_python" -m venv --clear "$runtime"
  "$runtime/bin/pip" install -q --upgrade pip
  "$runtime/bin/pip" install -q -r runtime/requirements.txt
  cp runtime/requirements.txt "$rstamp"
  chmod -R a+rX "$runtime"
fi
# --- 4. axe-core for the browser tests' accessibility check -------------------------------------
# Installed from npm into .cache/ (ignored by git) and injected into pages by Playwright, so no test
# ever loads it from a CDN.
if [ "$want_test" = 1 ]; then
  axe_version=4.11.0
  axe_dir=.cache/axe-core
  if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ] || ! grep -q "\"version\": \"$axe_version\"" "$axe_dir/node_modules/axe-core/package.json"; then
    say "installing axe-core $axe_version into $axe_dir"
    mkdir -p "$axe_dir"
    npm install --silent --no-audit --no-fund --no-save --prefix "$axe_dir" "axe-core@$axe_version" >/dev/null
  fi
fi
say "ready: runtime $runtime/bin/python"
