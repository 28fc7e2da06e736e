//! The optimiser: Adam (scDFM: betas 0.9/0.999, eps 1e-8, no weight decay) or AdamW, with
//! optional per-parameter gradient-norm clipping, and its state as bytes for checkpoints.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer};
use std::collections::BTreeMap;

use burn::record::{BurnRecord, FullPrecisionSettings, Record, Recorder};

use crate::checkpoint::CheckpointRecorder;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;

use crate::config::{OptimizerKind, TrainSection};

/// A record whose item is a map keyed by parameter id, encoded with the keys sorted.
fn sorted_bytes<B: Backend, R, V>(record: R) -> Vec<u8>
where
    R: Record<B>,
    R::Item<FullPrecisionSettings>: IntoIterator<Item = (String, V)>,
    V: Serialize,
{
    let sorted: BTreeMap<String, V> = record
        .into_item::<FullPrecisionSettings>()
        .into_iter()
        .collect();
    let item = BurnRecord::<_, B>::new::<CheckpointRecorder>(sorted);
    Recorder::<B>::save_item(&CheckpointRecorder, item, ()).expect("in-memory record")
}

/// Adam or AdamW over a module `M`.
#[derive(Clone)]
pub enum TrainOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    Adam(OptimizerAdaptor<Adam, M, B>),
    AdamW(OptimizerAdaptor<AdamW, M, B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> TrainOptimizer<M, B> {
    pub fn new(cfg: &TrainSection) -> Self {
        let clip =
            (cfg.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(cfg.grad_clip as f32));
        match cfg.optimizer {
            OptimizerKind::AdamW => Self::AdamW(
                AdamWConfig::new()
                    .with_beta_1(cfg.beta1 as f32)
                    .with_beta_2(cfg.beta2 as f32)
                    .with_epsilon(cfg.epsilon as f32)
                    .with_weight_decay(cfg.weight_decay as f32)
                    .with_grad_clipping(clip)
                    .init(),
            ),
            OptimizerKind::Adam => Self::Adam(
                AdamConfig::new()
                    .with_beta_1(cfg.beta1 as f32)
                    .with_beta_2(cfg.beta2 as f32)
                    .with_epsilon(cfg.epsilon as f32)
                    .with_grad_clipping(clip)
                    .init(),
            ),
        }
    }

    pub fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Self::Adam(o) => o.step(lr, module, grads),
            Self::AdamW(o) => o.step(lr, module, grads),
        }
    }

    /// The full-precision state (moments and step counts) as bytes, parameters in id order so
    /// that equal states give equal bytes (Burn keeps them in a hash map). Burn's recorder
    /// reads the bytes back: a sorted map has the same encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Adam(o) => sorted_bytes::<B, _, _>(o.to_record()),
            Self::AdamW(o) => sorted_bytes::<B, _, _>(o.to_record()),
        }
    }

    /// Restore a state written by [`Self::to_bytes`] with the same optimiser kind.
    pub fn load_bytes(self, bytes: Vec<u8>, device: &B::Device) -> Result<Self, String> {
        let rec = CheckpointRecorder;
        Ok(match self {
            Self::Adam(o) => {
                let r = Recorder::<B>::load(&rec, bytes, device).map_err(|e| e.to_string())?;
                Self::Adam(o.load_record(r))
            }
            Self::AdamW(o) => {
                let r = Recorder::<B>::load(&rec, bytes, device).map_err(|e| e.to_string())?;
                Self::AdamW(o.load_record(r))
            }
        })
    }
}
