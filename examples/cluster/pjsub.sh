#!/bin/bash
# Data-parallel `ccfm train` on a PJM (Fujitsu job manager) cluster: one process per GPU
# (docs/distributed.md).
#
#   pjsub examples/cluster/pjsub.sh
#   pjsub -x CONFIG=configs/combosciplex.toml examples/cluster/pjsub.sh
#   pjsub -x RUN=runs/ccfm-123 examples/cluster/pjsub.sh     # continue that run (same ranks)
#
# Set the resource group and project for your site (and its GPU request, e.g. `-L gpu=8`,
# where the site asks for one). `ccfm` must be the CUDA + MPI build, built against the site's
# MPI (load its modules first):
#   bash tools/install.sh --cuda --mpi
# PJM sends no signal before the elapse limit: the run continues from its last periodic
# checkpoint (output.checkpoint_every) with `pjsub -x RUN=... examples/cluster/pjsub.sh`.
# One node with 8 GPUs keeps the reference global batch of 48 (6 cells per GPU); with more
# ranks the global batch must divide by their number (see docs/distributed.md).
#PJM -L rscgrp=CHANGE-ME
#PJM -g CHANGE-ME
#PJM -L node=1
#PJM --mpi proc=8
#PJM -L elapse=24:00:00
#PJM -j
#PJM -S
set -euo pipefail

# Site modules, e.g.: module load cuda openmpi
CONFIG=${CONFIG:-configs/norman.toml}
RUN=${RUN:-runs/ccfm-${PJM_JOBID}}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-8}

if [ -f "$RUN/config.toml" ]; then
  args=(train --resume "$RUN")
else
  args=(train --config "$CONFIG" --out "$RUN")
fi
# 8 ranks per node; each takes the GPU of its local rank (OMPI_COMM_WORLD_LOCAL_RANK). This is
# Open MPI's mpiexec syntax; Fujitsu MPI and other MPIs name the options differently.
mpiexec -machinefile "$PJM_O_NODEINF" -n "$PJM_MPI_PROC" -npernode 8 \
  -x RAYON_NUM_THREADS ccfm "${args[@]}"
