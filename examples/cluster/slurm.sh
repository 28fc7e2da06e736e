#!/bin/bash
# Data-parallel `ccfm train` on a Slurm cluster: one process per GPU (docs/distributed.md).
#
#   sbatch examples/cluster/slurm.sh                        # configs/norman.toml, a new run
#   CONFIG=configs/combosciplex.toml sbatch examples/cluster/slurm.sh
#   RUN=runs/norman-123 sbatch examples/cluster/slurm.sh    # continue that run (same ranks)
#
# `ccfm` must be the CUDA + MPI build, on PATH on every node:
#   bash tools/install.sh --cuda --mpi
# One node with 8 GPUs keeps the reference global batch of 48 (6 cells per GPU). With more
# ranks the global batch must divide by their number (e.g. 4 nodes x 8 GPUs: add
# `--set train.batch_size=64`, a different run than the reference; see docs/distributed.md).
#SBATCH --job-name=ccfm-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
# SIGTERM 5 minutes before the time limit: every rank finishes its step, rank 0 writes a
# checkpoint, the ranks exit with 143 and the script requeues the job, which resumes.
#SBATCH --signal=TERM@300
#SBATCH --requeue
set -euo pipefail

CONFIG=${CONFIG:-configs/norman.toml}
RUN=${RUN:-runs/ccfm-${SLURM_JOB_ID}}
# CPU threads of each rank (data loading, host-side reductions); Slurm >= 22.05 passes
# --cpus-per-task on to srun only through SRUN_CPUS_PER_TASK.
export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-8}
export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-8}

if [ -f "$RUN/config.toml" ]; then
  args=(train --resume "$RUN")      # a requeued or continued job
else
  args=(train --config "$CONFIG" --out "$RUN")
fi
# Each rank takes the GPU of its local rank (SLURM_LOCALID / OMPI_COMM_WORLD_LOCAL_RANK); with
# one visible GPU per task (--gpus-per-task=1 or --gpu-bind) add `--device 0` to the ccfm
# arguments. --kill-on-bad-exit ends the other ranks when one fails. Slurm without PMIx:
# `mpirun ccfm "${args[@]}"` inside the allocation instead (it forwards SIGTERM to the ranks).
status=0
srun --mpi=pmix --kill-on-bad-exit=1 ccfm "${args[@]}" || status=$?
if [ "$status" -eq 143 ]; then
  # Stopped by the time-limit signal after a checkpoint: continue in a new allocation.
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
