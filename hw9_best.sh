#!/usr/bin/env bash
# Embed trainX with the checkpoint's encoder, reduce, cluster, write the id,label CSV.
set -euo pipefail
if [ $# -ne 3 ]; then echo "usage: bash hw9_best.sh <trainX_npy> <checkpoint> <prediction_path>" >&2; exit 2; fi
source "$(dirname "$0")/_aecluster.sh"
aecluster predict --data "$1" --checkpoint "$2" --out "$3" --overwrite
