//! The backend's random stream, shared safely between threads.
//!
//! Burn's backends keep one random stream per process (`Backend::seed` replaces it for every
//! thread), so two threads that seed and draw at the same time would interleave their draws and
//! neither result could be reproduced. Every section that seeds the stream and then draws from
//! it (initialising a model, a training step's noise, a forward pass with dropout, a
//! generation's starting noise) holds the guard of [`seeded`] from the seed to its last draw: the draws of a section
//! then depend only on its own seed, whatever else the process runs (`ccfm demo` trains several
//! models at once). Work that draws nothing (a backward pass, integrating an ODE from noise
//! drawn beforehand) runs outside it.

use std::sync::{Mutex, MutexGuard};

use burn::tensor::backend::Backend;

static STREAM: Mutex<()> = Mutex::new(());

/// Seed the backend's stream with `seed` and hold it until the returned guard is dropped.
/// Sections do not nest: a thread that already holds the guard must not call this again.
pub fn seeded<B: Backend>(device: &B::Device, seed: u64) -> MutexGuard<'static, ()> {
    // A panic in another section leaves nothing inconsistent behind: the next section seeds.
    let guard = STREAM.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, seed);
    guard
}
