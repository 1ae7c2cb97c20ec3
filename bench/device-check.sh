#!/bin/bash
# device-check.sh: the prepared check for a machine with an NVIDIA GPU (the
# session's device tool runs it from the repository root). It builds the
# CUDA probe and its unit test there with the machine's own nvcc (our Debian
# libraries are not on that machine, and t-backend needs none of them), runs
# it, and writes what it saw under $OUT. Build here first: ./configure makes
# the config.h this script uses.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-check.log") 2>&1
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
echo "nvcc: ${NVCC:-none}"
[ -n "$NVCC" ] && "$NVCC" --version | tail -2
CUDA_HOME=$(dirname "$(dirname "${NVCC:-/usr/local/cuda/bin/nvcc}")")
echo "== build t-backend with the CUDA backend"
cfg=$(mktemp -d)
# cuDNN: the toolkit's, or the one pip installed beside PyTorch
dnn_inc= dnn_lib= dnn_def=
for d in "$CUDA_HOME" /usr /usr/local; do
    [ -f "$d/include/cudnn.h" ] && { dnn_inc="-I$d/include"; break; }
done
if [ -z "$dnn_inc" ]; then
    pyd=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null \
          || python3 -c 'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null)
    [ -n "$pyd" ] && [ -f "$pyd/include/cudnn.h" ] && dnn_inc="-I$pyd/include" && dnn_lib="-L$pyd/lib -Wl,-rpath,$pyd/lib"
fi
[ -z "$dnn_inc" ] && { echo "cuDNN header not found: probe built without it"; dnn_def=-DMM_NO_CUDNN; }
echo "cuDNN: ${dnn_inc:-none} ${dnn_lib}"
printf '#define PACKAGE_VERSION "device-check"\n#define MM_HAVE_CUDA 1\n' > "$cfg/config.h"
"$NVCC" -O2 -gencode arch=compute_90,code=sm_90 -Ilib $dnn_inc $dnn_def -c lib/cuda/probe.cu -o "$cfg/probe.o" &&
gcc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$cfg" -Ilib -I"$CUDA_HOME/include" \
    tests/unit/t-backend.c lib/backend.c lib/util.c "$cfg/probe.o" \
    -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" $dnn_lib -lcudart -lcublas \
    $([ -z "$dnn_def" ] && echo -lcudnn) -lstdc++ -lm \
    -o "$cfg/t-backend"
rc=$?
echo "build exit: $rc"
if [ $rc -eq 0 ]; then
    echo "== run"
    "$cfg/t-backend"
    echo "t-backend exit: $?"
fi
