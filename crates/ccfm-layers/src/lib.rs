//! Tensor layers of CCFM. Each block is a Burn `Config` + `Module` pair with `init(&device)`,
//! generic over the backend, with field names that mirror the reference checkpoints
//! (a PyTorch `nn.Sequential` position `name.N` becomes the field `name_N`; see [`checkpoint`]).
//!
//! | module | blocks |
//! |---|---|
//! | [`activation`] | [`activation::gelu_tanh`] (GELU, tanh approximation, from cheap ops) |
//! | [`value_encoder`] | `ContinuousValueEncoder` |
//! | [`timestep`] | `TimestepEmbedder` (sinusoid of raw t, cos first) |
//! | [`gene_encoder`] | `GeneEncoder` (embedding + LayerNorm + co-expression masked cross-attention), `BatchLabelEncoder` |
//! | [`adaln`] | `GeneadaLN`, [`adaln::modulate`] |
//! | [`norm`] | `RmsNorm`, [`norm::layer_norm_plain`] (no affine) |
//! | [`diff_attn`] | `MultiheadDiffAttn` (differential attention, both `cross` modes) |
//! | [`blocks`] | `DifferentialTransformerBlock`, `DiffPerceiverBlock`, timm-style `Mlp` |
//! | [`heads`] | `ExprDecoder`, `AdapterLayer`, `FusionLayer` |
//! | [`latent`] | `LatentEmbedder`, `LatentDecoder` (+ `AdaLnBlock`, `SelfAttention`): the CCFM latent stream |
//! | [`checkpoint`] | loading scDFM state dicts (safetensors) into these modules |
//! | [`rng`] | [`rng::seeded`]: the backend's one random stream, seeded and held by one section at a time |
//!
//! Every `Linear` is initialised like scDFM: xavier-uniform weight, zero bias ([`linear`]).

pub mod activation;
pub mod adaln;
pub mod blocks;
pub mod checkpoint;
pub mod diff_attn;
pub mod gene_encoder;
pub mod heads;
pub mod latent;
pub mod norm;
pub mod rng;
pub mod timestep;
pub mod value_encoder;

pub use adaln::{modulate, GeneadaLN, GeneadaLNConfig};
pub use blocks::{
    DiffPerceiverBlock, DiffPerceiverBlockConfig, DifferentialTransformerBlock,
    DifferentialTransformerBlockConfig, Mlp, MlpConfig,
};
pub use checkpoint::{load_scdfm_safetensors, LoadError, LoadReport};
pub use diff_attn::{lambda_init, MultiheadDiffAttn, MultiheadDiffAttnConfig};
pub use gene_encoder::{
    BatchLabelEncoder, BatchLabelEncoderConfig, CoexpressionMask, GeneEncoder, GeneEncoderConfig,
};
pub use heads::{
    AdapterLayer, AdapterLayerConfig, ExprDecoder, ExprDecoderConfig, FusionLayer,
    FusionLayerConfig,
};
pub use latent::{
    AdaLnBlock, AdaLnBlockConfig, LatentDecoder, LatentDecoderConfig, LatentEmbedder,
    LatentEmbedderConfig, SelfAttention,
};
pub use norm::{layer_norm_plain, RmsNorm, RmsNormConfig};
pub use timestep::{timestep_frequency_embedding, TimestepEmbedder, TimestepEmbedderConfig};
pub use value_encoder::{ContinuousValueEncoder, ContinuousValueEncoderConfig};

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};

/// Initialise every parameter of `module` now, in field order. Burn initialises parameters
/// lazily, at their first use, drawing from the backend's random stream then; a model whose
/// parameters are first touched inside a seeded generation or training step would consume that
/// stream and make results depend on call order. Model constructors call this.
pub fn materialize<B: Backend, M: burn::module::Module<B>>(module: M) -> M {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
    module
}

/// A `Linear(d_input -> d_output)` initialised as scDFM does for every `nn.Linear`:
/// xavier-uniform weight and a zero bias.
pub fn linear<B: Backend>(
    d_input: usize,
    d_output: usize,
    bias: bool,
    device: &B::Device,
) -> Linear<B> {
    let mut l = LinearConfig::new(d_input, d_output)
        .with_bias(bias)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device);
    if bias {
        l.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
    }
    l
}
