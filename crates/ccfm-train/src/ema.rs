//! Exponential moving average of the weights: `ema = decay * ema + (1 - decay) * weights`
//! after every optimiser step, kept on the inner (non-autodiff) backend. Parameters are matched
//! by their id, so the EMA copy must start as a copy of the model.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

struct Collect<B: Backend> {
    params: HashMap<ParamId, TensorPrimitive<B>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params.insert(param.id, param.val().into_primitive());
    }
}

struct Blend<B: Backend> {
    params: HashMap<ParamId, TensorPrimitive<B>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self.params.remove(&id) {
            Some(p) => {
                let current = Tensor::<B, D>::from_primitive(p);
                tensor.mul_scalar(self.decay) + current.mul_scalar(1.0 - self.decay)
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Blend `current` (same parameter ids) into `ema`.
pub fn update_ema<B: Backend, M: Module<B>>(ema: M, current: &M, decay: f64) -> M {
    let mut collect = Collect {
        params: HashMap::new(),
    };
    current.visit(&mut collect);
    ema.map(&mut Blend {
        params: collect.params,
        decay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn ema_moves_towards_the_weights() {
        let device = Default::default();
        // Materialise the lazy initialisation before copying.
        let a: Linear<Flex> = ccfm_layers::materialize(LinearConfig::new(3, 2).init(&device));
        let ema = a.clone();
        // Move the model: weights + 1.
        let moved = a.clone().map(&mut Shift);
        let ema = update_ema(ema, &moved, 0.9);
        let (w0, w1, we) = (
            a.weight.val().into_data().to_vec::<f32>().unwrap(),
            moved.weight.val().into_data().to_vec::<f32>().unwrap(),
            ema.weight.val().into_data().to_vec::<f32>().unwrap(),
        );
        for i in 0..w0.len() {
            assert!((we[i] - (0.9 * w0[i] + 0.1 * w1[i])).abs() < 1e-6);
            assert!((w1[i] - w0[i] - 1.0).abs() < 1e-6);
        }
    }

    struct Shift;
    impl<B: Backend> ModuleMapper<B> for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, m) = param.consume();
            Param::from_mapped_value(id, t.add_scalar(1.0), m)
        }
    }
}
