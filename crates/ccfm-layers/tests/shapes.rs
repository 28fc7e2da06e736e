//! Every block maps the shapes it documents, with freshly initialised parameters.

use burn::backend::Flex;
use burn::tensor::{Distribution, Int, Tensor};
use ccfm_layers::*;

type B = Flex;

fn rand<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

#[test]
fn every_block_has_its_documented_shapes() {
    let dev = Default::default();
    let (b, t, d) = (3, 5, 16);
    assert_eq!(
        ContinuousValueEncoderConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t]))
            .dims(),
        [b, t, d]
    );
    assert_eq!(
        TimestepEmbedderConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b]))
            .dims(),
        [b, d]
    );
    assert_eq!(
        GeneadaLNConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t, d]), rand([b, t, d]))
            .dims(),
        [b, t, d]
    );
    let mask = CoexpressionMask::<B>::from_blocked(vec![false; 100], 10, &dev);
    let ids = Tensor::<B, 1, Int>::arange(0..(b * t) as i64, &dev)
        .reshape([b, t])
        .remainder_scalar(10);
    let enc = GeneEncoderConfig::new(12, d).init::<B>(&dev);
    assert_eq!(enc.forward(ids.clone(), &mask).dims(), [b, t, d]);
    assert_eq!(
        enc.forward_shared(Tensor::arange(0..t as i64, &dev), &mask)
            .dims(),
        [t, d]
    );
    assert_eq!(
        BatchLabelEncoderConfig::new(12, d)
            .init::<B>(&dev)
            .forward(ids)
            .dims(),
        [b, t, d]
    );
    for cross in [true, false] {
        let a = MultiheadDiffAttnConfig::new(d, 4, 2, cross).init::<B>(&dev);
        assert_eq!(
            a.forward(rand([b, t, d]), rand([b, t, d])).dims(),
            [b, t, d]
        );
        assert_eq!(a.lambda_full().dims(), [1]);
    }
    let dtb = DifferentialTransformerBlockConfig::new(d, 4, 1, false).init::<B>(&dev);
    assert_eq!(
        dtb.forward(rand([b, t, d]), rand([b, t, d]), rand([b, d]))
            .dims(),
        [b, t, d]
    );
    assert_eq!(dtb.modulation(rand([b, d])).dims(), [b, 6 * d]);
    let dpb = DiffPerceiverBlockConfig::new(d, 4, 0).init::<B>(&dev);
    assert_eq!(
        dpb.forward(rand([b, t, d]), rand([b, t, d]), rand([b, d]))
            .dims(),
        [b, t, d]
    );
    assert_eq!(
        FusionLayerConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t, 2 * d]))
            .dims(),
        [b, t, d]
    );
    assert_eq!(
        AdapterLayerConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t, 2 * d]))
            .dims(),
        [b, t, d]
    );
    assert_eq!(
        ExprDecoderConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t, 2 * d]))
            .dims(),
        [b, t]
    );
    assert_eq!(
        RmsNormConfig::new(d)
            .init::<B>(&dev)
            .forward(rand([b, t, d]))
            .dims(),
        [b, t, d]
    );
    let emb = LatentEmbedderConfig::new(d)
        .with_scgpt_dim(24)
        .with_bottleneck_dim(8)
        .init::<B>(&dev);
    assert_eq!(emb.forward(rand([b, t, 24])).dims(), [b, t, d]);
    let dec = LatentDecoderConfig::new(d)
        .with_scgpt_dim(24)
        .with_num_heads(4)
        .init::<B>(&dev);
    assert_eq!(dec.dh_blocks.len(), 2);
    assert_eq!(
        dec.forward(rand([b, t, d]), rand([b, d])).dims(),
        [b, t, 24]
    );
}

#[test]
fn linears_start_like_scdfm_xavier_weights_and_zero_bias() {
    let dev = Default::default();
    let l = linear::<B>(64, 32, true, &dev);
    let bias: Vec<f32> = l.bias.unwrap().val().into_data().to_vec().unwrap();
    assert!(bias.iter().all(|&v| v == 0.0));
    let w: Vec<f32> = l.weight.val().into_data().to_vec().unwrap();
    let bound = (6.0f32 / 96.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
    assert!(
        (var - bound * bound / 3.0).abs() < 0.2 * bound * bound / 3.0,
        "variance {var}"
    );
}

#[test]
fn lambda_init_follows_the_depth_schedule() {
    let expected = [0.2, 0.355_509_07, 0.470_713_02, 0.556_058_2];
    for (depth, e) in expected.iter().enumerate() {
        assert!((lambda_init(depth) - e).abs() < 1e-6);
    }
}
