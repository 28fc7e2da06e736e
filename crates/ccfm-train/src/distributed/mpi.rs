//! [`GradSync`] over MPI (rsmpi), for runs started by `mpirun`, `srun` or `pjsub`'s `mpiexec`.
//!
//! Collectives run on the calling thread (`MPI_THREAD_FUNNELED`: the backend may use threads,
//! MPI is called from the training loop only). A rank that panics aborts the whole run, so the
//! others do not wait in a collective forever.

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

use super::GradSync;
use crate::error::TrainError;

/// The world communicator of an MPI run (a world of one when started without a launcher).
pub struct MpiSync {
    // Finalises MPI when dropped, after the communicator.
    world: SimpleCommunicator,
    _universe: Universe,
}

impl MpiSync {
    /// Initialise MPI (once per process).
    pub fn init() -> Result<Self, TrainError> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                TrainError::Request("MPI was already initialised in this process".into())
            })?;
        let world = universe.world();
        if world.size() > 1 {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                eprintln!("ccfm: this rank failed; ending every rank of the run");
                SimpleCommunicator::world().abort(101);
            }));
        }
        Ok(Self {
            world,
            _universe: universe,
        })
    }
}

impl GradSync for MpiSync {
    fn world(&self) -> usize {
        self.world.size() as usize
    }

    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn broadcast_f32(&self, buf: &mut [f32]) {
        self.world.process_at_rank(0).broadcast_into(buf);
    }

    fn broadcast_u64(&self, buf: &mut [u64]) {
        self.world.process_at_rank(0).broadcast_into(buf);
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
