# Shared by the homework scripts: run the aecluster CLI from this checkout.
# Uses ./.venv if the README's setup made one, else python3 with src/ on the path.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py="${PYTHON:-python3}"; fi
aecluster() { PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" "$py" -m aecluster "$@"; }
