//! Data-parallel training: the seam between the [`Trainer`](crate::Trainer) and a
//! communication engine.
//!
//! Every rank runs the same program on the same data. Each step, every rank draws the same
//! global batch from the seeded sampler, together with the batch's random draws
//! ([`ccfm_model::StepNoise`]), and computes the loss of its own contiguous shard of cells
//! ([`shard`]). The gradients are flattened in module order ([`flat`]) and averaged over the
//! ranks in one all-reduce, so every rank takes the same optimiser step: N ranks at global batch
//! B compute the single-process algorithm at batch B, except for what is defined per shard
//! (the MMD term, over each rank's cells, as scDFM's DDP computes it; dropout masks).
//!
//! - [`GradSync`]: world size, rank, broadcast and all-reduce of host buffers.
//! - [`SingleProcess`]: the no-op of a one-process run.
//! - `MpiSync` (cargo feature `mpi`): MPI through rsmpi, for `mpirun` / `srun` / `pjsub`.
//! - [`Launch`]: what the MPI launcher's environment says about this process.

pub mod flat;
#[cfg(test)]
mod local;
#[cfg(feature = "mpi")]
pub mod mpi;

use std::ops::Range;
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use ccfm_scgpt::Moments;

use crate::config::RunConfig;
use crate::error::TrainError;
use crate::experiment::Experiment;

/// Collective operations over the ranks of a data-parallel run, on host buffers (every
/// backend can fill and read them). Every rank must call the same operations in the same
/// order.
pub trait GradSync {
    /// Number of ranks.
    fn world(&self) -> usize;
    /// This process's rank, `0..world`; rank 0 writes logs and checkpoints.
    fn rank(&self) -> usize;
    /// Overwrite `buf` on every rank with rank 0's.
    fn broadcast_f32(&self, buf: &mut [f32]);
    /// Overwrite `buf` on every rank with rank 0's.
    fn broadcast_u64(&self, buf: &mut [u64]);
    /// Element-wise sum over the ranks, in place; every rank receives the same values.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]);
    /// Element-wise sum over the ranks, in place; every rank receives the same values.
    fn all_reduce_sum_f64(&self, buf: &mut [f64]);
    /// End every rank of the run at once (a rank that failed must not leave the others
    /// waiting in a collective). A single process simply exits.
    fn abort(&self, code: i32) -> !;

    /// Element-wise mean over the ranks, in place.
    fn all_reduce_mean_f32(&self, buf: &mut [f32]) {
        self.all_reduce_sum_f32(buf);
        let n = self.world() as f32;
        buf.iter_mut().for_each(|v| *v /= n);
    }

    /// Wait until every rank arrives (e.g. for rank 0's last checkpoint before the processes
    /// exit: a launcher ends the others when one exits with a signal's code).
    fn barrier(&self) {
        self.all_reduce_sum_f64(&mut [0.0]);
    }

    /// Whether this is rank 0 (which alone writes the run directory and reports progress).
    fn is_writer(&self) -> bool {
        self.rank() == 0
    }
}

/// The one process of an ordinary run: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl GradSync for SingleProcess {
    fn world(&self) -> usize {
        1
    }
    fn rank(&self) -> usize {
        0
    }
    fn broadcast_f32(&self, _: &mut [f32]) {}
    fn broadcast_u64(&self, _: &mut [u64]) {}
    fn all_reduce_sum_f32(&self, _: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _: &mut [f64]) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The cells of a global batch of `batch` cells that `rank` of `world` computes: contiguous,
/// equal shards (the batch must divide by the world size, checked when the run starts).
pub fn shard(batch: usize, world: usize, rank: usize) -> Range<usize> {
    let per = batch / world.max(1);
    rank * per..(rank + 1) * per
}

/// What the launcher's environment says about this process: Open MPI's `OMPI_COMM_WORLD_*`,
/// the PMI variables of MPICH / Intel MPI / `srun --mpi=pmi2`, and Slurm's job-step variables
/// (`SLURM_STEP_NUM_TASKS`, `SLURM_PROCID`, `SLURM_LOCALID`: what `srun` sets for the tasks
/// it starts, PMIx or not). `SLURM_NTASKS` is not read: a batch script sees it even where it
/// starts one process. A plain start has world size 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub world: usize,
    pub rank: usize,
    /// The rank among the processes of this node (which GPU to take).
    pub local_rank: usize,
}

impl Launch {
    /// Read from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Read through `get` (testable without touching the environment).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| get(k).and_then(|v| v.trim().parse::<usize>().ok()))
        };
        Self {
            world: first(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"])
                .unwrap_or(1),
            rank: first(&[
                "OMPI_COMM_WORLD_RANK",
                "PMI_RANK",
                "PMIX_RANK",
                "SLURM_PROCID",
            ])
            .unwrap_or(0),
            local_rank: first(&[
                "OMPI_COMM_WORLD_LOCAL_RANK",
                "MPI_LOCALRANKID",
                "PMIX_LOCAL_RANK",
                "SLURM_LOCALID",
            ])
            .unwrap_or(0),
        }
    }
}

/// The communication of this process: MPI when built with the `mpi` feature (a plain start is
/// then a world of one), otherwise a single process — which is refused when the environment
/// shows a launcher started several ranks (each would train alone, on the same directory).
pub fn from_environment() -> Result<Rc<dyn GradSync>, TrainError> {
    #[cfg(feature = "mpi")]
    {
        Ok(Rc::new(mpi::MpiSync::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let launch = Launch::from_env();
        if launch.world > 1 {
            return Err(TrainError::Request(format!(
                "this process is rank {} of {} started by an MPI launcher, but this ccfm was \
                 built without MPI: every rank would train alone. Install the MPI build \
                 with `bash tools/install.sh --mpi` (add --cuda for GPUs; it needs Open MPI \
                 or MPICH and libclang), or start one process",
                launch.rank, launch.world
            )));
        }
        Ok(Rc::new(SingleProcess))
    }
}

/// The global batch must split into equal shards, of at least 2 cells when the MMD term is
/// on (it is computed per shard, and vanishes on a single cell).
pub fn check_shards(batch: usize, world: usize, gamma: f64) -> Result<(), TrainError> {
    let error = |detail: String| TrainError::Config {
        source_name: "the run configuration".into(),
        key: "train.batch_size".into(),
        detail,
    };
    if !batch.is_multiple_of(world) {
        return Err(error(format!(
            "{batch} cells do not split among {world} ranks: each rank computes \
             batch_size / ranks cells; use a multiple of {world} (e.g. {})",
            batch.div_ceil(world) * world
        )));
    }
    if world > 1 && gamma > 0.0 && batch / world < 2 {
        return Err(error(format!(
            "{batch} cells among {world} ranks leave 1 cell per rank, on which the MMD term \
             (objective.gamma = {gamma}, computed per rank) vanishes; use at least {} cells \
             or objective.gamma = 0",
            2 * world
        )));
    }
    Ok(())
}

/// A checksum of what every rank must share: the configuration as given and the prepared
/// data (genes, conditions, values).
pub fn fingerprint(config: &RunConfig, exp: &Experiment) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(config.to_toml().as_bytes());
    for g in &exp.data.genes {
        h.update(g.as_bytes());
        h.update(&[0]);
    }
    for c in &exp.data.table.conditions {
        h.update(c.name().as_bytes());
        h.update(&[0]);
    }
    // The values themselves in memory; streamed, the per-gene sums over every cell (reading
    // the whole file again at the start would cost a pass).
    match exp.data.x.in_memory() {
        Some(x) => {
            for chunk in x.chunks(4096) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                h.update(&bytes);
            }
        }
        None => {
            let m = exp.data.gene_moments();
            let bytes: Vec<u8> = m
                .sum
                .iter()
                .chain(&m.sum_sq)
                .flat_map(|v| v.to_le_bytes())
                .collect();
            h.update(&bytes);
        }
    }
    let cells = (exp.data.table.n_cells() * exp.data.n_genes()) as u64;
    ((h.finalize() as u64) << 32) | (cells & 0xffff_ffff)
}

/// A checksum of a few numbers (for [`agree`]).
pub fn checksum(values: &[u64]) -> u64 {
    let mut h = crc32fast::Hasher::new();
    values.iter().for_each(|v| h.update(&v.to_le_bytes()));
    h.finalize() as u64
}

/// Refuse to go on when some rank's `fingerprint` of `what` differs from rank 0's (every rank
/// returns an error, so none is left waiting in a collective).
pub fn agree(sync: &dyn GradSync, fingerprint: u64, what: &str) -> Result<(), TrainError> {
    if sync.world() == 1 {
        return Ok(());
    }
    let mut root = [fingerprint];
    sync.broadcast_u64(&mut root);
    let mine = f64::from(u8::from(root[0] != fingerprint));
    let mut differ = [mine];
    sync.all_reduce_sum_f64(&mut differ);
    if differ[0] == 0.0 {
        return Ok(());
    }
    Err(TrainError::Request(format!(
        "{} of {} ranks differ from rank 0 in the {what} (this is rank {}, which {}): start \
         every rank with the same --config, --set, data file and run directory",
        differ[0],
        sync.world(),
        sync.rank(),
        if mine > 0.0 { "differs" } else { "agrees" }
    )))
}

/// `module` with rank 0's parameter values on every rank.
pub fn broadcast_module<B: Backend, M: Module<B>>(sync: &dyn GradSync, module: M) -> M {
    if sync.world() == 1 {
        return module;
    }
    let mut values = flat::params_to_vec(&module);
    sync.broadcast_f32(&mut values);
    flat::params_from_slice(module, &values)
}

/// The moments of the ranks' blocks together: what one process would compute from all rows.
pub fn all_reduce_moments(sync: &dyn GradSync, mine: Moments) -> Moments {
    if sync.world() == 1 {
        return mine;
    }
    let n = mine.count as f64;
    let mut sums: Vec<f64> = std::iter::once(n)
        .chain(mine.mean.iter().map(|m| m * n))
        .collect();
    sync.all_reduce_sum_f64(&mut sums);
    let total = sums[0];
    let mean: Vec<f64> = match total > 0.0 {
        true => sums[1..].iter().map(|s| s / total).collect(),
        false => vec![0.0; mine.mean.len()],
    };
    let mut m2: Vec<f64> = (0..mean.len())
        .map(|k| mine.m2[k] + n * (mine.mean[k] - mean[k]).powi(2))
        .collect();
    sync.all_reduce_sum_f64(&mut m2);
    Moments {
        count: total as u64,
        mean,
        m2,
    }
}

#[cfg(test)]
mod tests {
    use super::local::LocalRanks;
    use super::*;

    #[test]
    fn shards_tile_the_batch() {
        let world = 4;
        let all: Vec<usize> = (0..world).flat_map(|r| shard(48, world, r)).collect();
        assert_eq!(all, (0..48).collect::<Vec<_>>());
        assert_eq!(shard(48, 1, 0), 0..48);
        assert!(check_shards(48, 4, 0.5).is_ok());
        let e = check_shards(10, 4, 0.0).unwrap_err().to_string();
        assert!(
            e.contains("train.batch_size") && e.contains("e.g. 12"),
            "{e}"
        );
        let e = check_shards(4, 4, 0.5).unwrap_err().to_string();
        assert!(
            e.contains("1 cell per rank") && e.contains("at least 8"),
            "{e}"
        );
        assert!(check_shards(4, 4, 0.0).is_ok() && check_shards(1, 1, 0.5).is_ok());
    }

    /// Two ranks as threads: the combined moments equal those of all rows in one block.
    #[test]
    fn moments_combine_as_one_block() {
        let rows: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 * 0.5 - 1.0).collect();
        let whole = Moments::of(&rows, 4);
        let combined: Vec<Moments> = std::thread::scope(|s| {
            let handles: Vec<_> = LocalRanks::group(2)
                .into_iter()
                .map(|r| {
                    // Uneven blocks: 2 rows on rank 0, 4 on rank 1.
                    let block = if r.rank() == 0 {
                        &rows[..8]
                    } else {
                        &rows[8..]
                    };
                    s.spawn(move || all_reduce_moments(&r, Moments::of(block, 4)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for m in &combined {
            assert_eq!(m.count, whole.count);
            for k in 0..4 {
                assert!((m.mean[k] - whole.mean[k]).abs() < 1e-12);
                assert!((m.m2[k] - whole.m2[k]).abs() < 1e-9);
            }
        }
        assert_eq!(combined[0], combined[1]);
        // A world of one leaves the moments as they are.
        assert_eq!(all_reduce_moments(&SingleProcess, whole.clone()), whole);
    }

    #[test]
    fn launch_reads_the_launchers_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let l = Launch::from_vars(env(&[
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("SLURM_NTASKS", "8"),
        ]));
        assert_eq!((l.world, l.rank, l.local_rank), (4, 3, 1));
        let l = Launch::from_vars(env(&[
            ("PMI_SIZE", "2"),
            ("PMI_RANK", "1"),
            ("SLURM_LOCALID", "1"),
        ]));
        assert_eq!((l.world, l.rank, l.local_rank), (2, 1, 1));
        let l = Launch::from_vars(env(&[
            ("SLURM_STEP_NUM_TASKS", "4"),
            ("SLURM_PROCID", "2"),
            ("SLURM_LOCALID", "2"),
        ]));
        assert_eq!((l.world, l.rank, l.local_rank), (4, 2, 2));
        // A Slurm batch script's own environment is not a launch of several ranks.
        let l = Launch::from_vars(env(&[("SLURM_NTASKS", "8"), ("SLURM_PROCID", "0")]));
        assert_eq!(l.world, 1);
        let l = Launch::from_vars(env(&[]));
        assert_eq!((l.world, l.rank, l.local_rank), (1, 0, 0));
    }
}
