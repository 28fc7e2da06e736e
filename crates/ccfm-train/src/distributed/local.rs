//! Ranks as threads of one process, exchanging host buffers: the collectives of
//! [`GradSync`] without an MPI library, for the unit tests of the collective helpers. (Not for
//! training: a backend's random stream is per process, so thread ranks would share it.)

use std::sync::{Arc, Barrier, Mutex};

use super::GradSync;

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

/// One rank of a group made by [`LocalRanks::group`]; give each to its own thread.
pub struct LocalRanks {
    rank: usize,
    world: usize,
    shared: Arc<Shared>,
}

impl LocalRanks {
    /// `world` ranks that communicate with each other.
    pub fn group(world: usize) -> Vec<Self> {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(world),
            slots: Mutex::new(vec![Vec::new(); world]),
        });
        (0..world)
            .map(|rank| Self {
                rank,
                world,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's buffer, in rank order (each rank must call it with the same length).
    fn exchange(&self, mine: Vec<f64>) -> Vec<Vec<f64>> {
        self.shared.slots.lock().expect("no rank panicked")[self.rank] = mine;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().expect("no rank panicked").clone();
        self.shared.barrier.wait();
        all
    }

    /// Rank-order sums, so every rank gets the same values.
    fn sum(&self, buf: &[f64]) -> Vec<f64> {
        let all = self.exchange(buf.to_vec());
        (0..buf.len())
            .map(|i| all.iter().map(|b| b[i]).sum())
            .collect()
    }
}

impl GradSync for LocalRanks {
    fn world(&self) -> usize {
        self.world
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn broadcast_f32(&self, buf: &mut [f32]) {
        let all = self.exchange(buf.iter().map(|&v| v as f64).collect());
        buf.iter_mut()
            .zip(&all[0])
            .for_each(|(v, &r)| *v = r as f32);
    }

    fn broadcast_u64(&self, buf: &mut [u64]) {
        // u64 through f64 would round: send the two halves.
        let halves = buf
            .iter()
            .flat_map(|&v| [(v >> 32) as f64, (v & 0xffff_ffff) as f64])
            .collect();
        let all = self.exchange(halves);
        for (i, v) in buf.iter_mut().enumerate() {
            *v = (all[0][2 * i] as u64) << 32 | all[0][2 * i + 1] as u64;
        }
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) {
        let sums = self.sum(&buf.iter().map(|&v| v as f64).collect::<Vec<_>>());
        buf.iter_mut().zip(sums).for_each(|(v, s)| *v = s as f32);
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        let sums = self.sum(buf);
        buf.copy_from_slice(&sums);
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
