//! Reshaping stacked stream blocks: splitting `[K, m, n, w]` into its value and derivative
//! blocks, stacking blocks into the `[K, m·n, w]` a layer multiplies, and the small reshapes
//! of weight gradients.

use burn::tensor::Tensor;

/// Splits `[K, m, n, w]` into its value block and the first/second derivative blocks.
pub(super) fn split(
    t: Tensor<4>,
    k1: usize,
    k2: usize,
) -> (Tensor<4>, Option<Tensor<4>>, Option<Tensor<4>>) {
    let z1 = (k1 > 0).then(|| t.clone().narrow(1, 1, k1));
    let z2 = (k2 > 0).then(|| t.clone().narrow(1, 1 + k1, k2));
    (t.narrow(1, 0, 1), z1, z2)
}

/// Stacks blocks `[K, *, n, w]` into one `[K, m·n, w]` tensor.
pub(super) fn stack(blocks: Vec<Tensor<4>>) -> Tensor<3> {
    let t = if blocks.len() == 1 {
        blocks.into_iter().next().expect("one block")
    } else {
        Tensor::cat(blocks, 1)
    };
    let [k, m, n, w] = t.dims();
    t.reshape([k, m * n, w])
}

/// The first `count` stream blocks of `t`, or all of it.
pub(super) fn head(t: &Tensor<4>, count: usize) -> Tensor<4> {
    if t.dims()[1] == count {
        t.clone()
    } else {
        t.clone().narrow(1, 0, count)
    }
}

/// `[K, a, b]` → `[K, a·b]`.
pub(super) fn rows(t: Tensor<3>) -> Tensor<2> {
    let [k, a, b] = t.dims();
    t.reshape([k, a * b])
}

/// `[K, a, b]` → `[K, b, a]`.
pub(super) fn transpose(t: Tensor<3>) -> Tensor<3> {
    t.swap_dims(1, 2)
}
