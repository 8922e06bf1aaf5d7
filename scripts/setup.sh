#!/usr/bin/env bash
# Installs what katakana-scorer needs on a Debian/Ubuntu machine; safe to run again (it skips what is done).
#   scripts/setup.sh          the service: bubblewrap, Redis, a Japanese font (the history chart's PNG),
#                             the app's venv (.venv), the two runtimes that trainee code runs in
#                             (NumPy, the reference; TensorFlow + Keras, ~1.6 GB)
#   scripts/setup.sh --test   also what the full test suite needs: PostgreSQL, Chromium (its screenshots
#                             use the same font), npm and axe-core (the browser tests' accessibility check)
#   --without-tensorflow      skip the TensorFlow runtime (the site then says it is not installed and
#                             refuses Keras submissions at the pre-flight); not with --test
# System packages are installed when we are root or have password-less sudo; otherwise this says
# exactly what to install and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_tensorflow=1
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --without-tensorflow) want_tensorflow=0 ;;
    *) echo "usage: scripts/setup.sh [--test] [--without-tensorflow]" >&2; exit 2 ;;
  esac
done
# The tests run Keras submissions in the real TensorFlow runtime: a test machine always builds it.
[ "$want_test" = 1 ] && want_tensorflow=1

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

# --- 3. the runtimes that trainee code runs in ----------------------------------------------------
# They must be readable by the sandbox's unprivileged uid, so they live outside any home folder when
# we are root (and are then shared by every checkout on the machine), and are built from the
# system's Python (under /usr, which the sandbox shows). Each is rebuilt only when its pinned
# requirements change.
if [ "$(id -u)" = 0 ]; then runtimes_home=/opt/katakana; else runtimes_home="$HOME/.local/share/katakana-scorer"; fi
runtime_python=/usr/bin/python3
[ -x "$runtime_python" ] || runtime_python=$python

build_runtime() {  # build_runtime WHAT FOLDER REQUIREMENTS
  local what=$1 dir=$2 requirements=$3 stamp="$2/.katakana-requirements"
  if [ -x "$dir/bin/python" ] && cmp -s "$requirements" "$stamp"; then return; fi
  say "building the $what runtime in $dir"
  mkdir -p "$(dirname "$dir")"
  "$runtime_python" -m venv --clear "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q --no-deps -r "$requirements"  # every dependency is pinned in the file
  "$dir/bin/pip" check >/dev/null || { "$dir/bin/pip" check; say "$requirements is inconsistent"; exit 1; }
  cp "$requirements" "$stamp"
  chmod -R a+rX "$dir"
}

runtime=${KATAKANA_RUNTIME_DIR:-$runtimes_home/runtime}
build_runtime NumPy "$runtime" runtime/requirements.txt
tensorflow_runtime=${KATAKANA_TENSORFLOW_RUNTIME_DIR:-$runtimes_home/runtime-tensorflow}
if [ "$want_tensorflow" = 1 ]; then
  build_runtime TensorFlow "$tensorflow_runtime" runtime/requirements-tensorflow.txt
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
say "ready: NumPy runtime $runtime/bin/python"
if [ -x "$tensorflow_runtime/bin/python" ]; then
  say "ready: TensorFlow runtime $tensorflow_runtime/bin/python"
else
  say "no TensorFlow runtime (--without-tensorflow): Keras submissions are refused at the pre-flight"
fi
