//! A module's parameters and gradients as one flat `f32` buffer in module order — the order
//! every rank visits the same model in, so buffers line up element for element.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("a float tensor converts to f32")
}

/// Every float parameter of `module`, in module order, concatenated.
pub fn params_to_vec<B: Backend, M: Module<B>>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.extend(host(param.val()));
        }
    }
    let mut c = Collect(Vec::new());
    module.visit(&mut c);
    c.0
}

/// `module` with its parameters replaced by `values`, laid out as [`params_to_vec`] writes
/// them (ids, shapes and gradient tracking are kept).
pub fn params_from_slice<B: Backend, M: Module<B>>(module: M, values: &[f32]) -> M {
    struct Replace<'a>(&'a [f32]);
    impl<B: Backend> ModuleMapper<B> for Replace<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let shape = tensor.shape();
            let (mine, rest) = self.0.split_at(shape.num_elements());
            self.0 = rest;
            let tracked = tensor.is_require_grad();
            let mut new =
                Tensor::from_data(TensorData::new(mine.to_vec(), shape), &tensor.device());
            if tracked {
                new = new.require_grad();
            }
            Param::from_mapped_value(id, new, mapper)
        }
    }
    module.map(&mut Replace(values))
}

/// The gradients of `module`'s parameters in module order, then one flag per parameter
/// (1 where it has a gradient; a parameter without one contributes zeros). After a sum over
/// ranks the flag says whether any rank had a gradient. The gradients are joined on the
/// device and copied to the host once.
pub fn grads_to_vec<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> Vec<f32> {
    struct Collect<'a, I: Backend> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<I, 1>>,
        flags: Vec<f32>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_, B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let n = param.shape().num_elements();
            let (part, flag) = match self.grads.get::<B::InnerBackend, D>(param.id) {
                Some(g) => (g.reshape([n]), 1.0),
                None => (Tensor::zeros([n], &param.val().inner().device()), 0.0),
            };
            self.parts.push(part);
            self.flags.push(flag);
        }
    }
    let mut c = Collect {
        grads,
        parts: Vec::new(),
        flags: Vec::new(),
    };
    module.visit(&mut c);
    let mut values = match c.parts.is_empty() {
        true => Vec::new(),
        false => host(Tensor::cat(c.parts, 0)),
    };
    values.extend(c.flags);
    values
}

/// Gradients from a buffer laid out as [`grads_to_vec`] writes it (after the mean over the
/// ranks): a parameter gets its values as a gradient where its flag is non-zero, i.e. where
/// any rank had a gradient. The values go to the device once.
pub fn grads_from_slice<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    buf: &[f32],
) -> GradientsParams {
    struct Rebuild<'a, I: Backend> {
        all: Option<Tensor<I, 1>>,
        offset: usize,
        flags: &'a [f32],
        out: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Rebuild<'_, B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let shape = param.shape();
            let span = self.offset..self.offset + shape.num_elements();
            self.offset = span.end;
            let (flag, rest) = self.flags.split_first().expect("one flag per parameter");
            self.flags = rest;
            if let (true, Some(all)) = (*flag > 0.0, &self.all) {
                let g: Tensor<B::InnerBackend, D> = all.clone().slice(span).reshape(shape);
                self.out.register(param.id, g);
            }
        }
    }
    let (values, flags) = buf.split_at(buf.len() - count_params(module));
    let all = first_device(module).map(|d| {
        let data = TensorData::new(values.to_vec(), [values.len()]);
        Tensor::<B::InnerBackend, 1>::from_data(data, &d)
    });
    let mut r = Rebuild {
        all,
        offset: 0,
        flags,
        out: GradientsParams::new(),
    };
    module.visit(&mut r);
    r.out
}

/// The device of `module`'s first parameter (its gradients live there), if it has one.
fn first_device<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
) -> Option<burn::tensor::Device<B::InnerBackend>> {
    struct First<I: Backend>(Option<burn::tensor::Device<I>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for First<B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.get_or_insert_with(|| param.val().inner().device());
        }
    }
    let mut first = First::<B::InnerBackend>(None);
    module.visit(&mut first);
    first.0
}

/// Number of float parameter tensors of `module` (the flags [`grads_to_vec`] appends).
pub fn count_params<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<B, D>>) {
            self.0 += 1;
        }
    }
    let mut c = Count(0);
    module.visit(&mut c);
    c.0
}
