# Shared by scripts/serve and scripts/test: a Python virtual environment in .venv
# with the project installed, on a fresh Debian machine too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${CHATROOMS_VENV:-$ROOT/.venv}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

apt_install() {
  # Install the Debian packages given that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  # $1: what to install, e.g. "." or ".[dev]"
  local python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then apt_install python3; fi
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c "import ensurepip" 2>/dev/null; then
      apt_install python3-venv
    fi
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(echo "$1" | tr -c 'a-z' '_')"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$1"
    touch "$stamp"
  fi
}
