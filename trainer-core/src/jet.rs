//! Forward Taylor jets (SPEC §1): a value stream plus first and diagonal second derivative
//! streams with respect to chosen input axes, propagated through the network as ordinary
//! tensor ops so that one first-order backward gives ∇θ of a loss that contains u_x, u_xx, ….
//!
//! This is the autodiff path: the oracle of the training step (which stacks the streams and
//! runs its own reverse pass, `backprop/`) and the per-point gradients (NTK traces, the
//! orthogonality diagnostic). Inside Burn's autodiff graph streams are kept as separate tensors:
//! concatenating and slicing there cost more than the extra matmul calls (BURN-NOTES: 1.3–1.6×).

use burn::tensor::Tensor;

/// Which derivatives a loss needs: per input axis, none, first, or first and second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetSpec {
    /// `order[axis]` ∈ {0, 1, 2}.
    pub order: Vec<u8>,
}

impl JetSpec {
    /// Value only (plain boundary losses, evaluation).
    pub fn value(dim: usize) -> Self {
        Self {
            order: vec![0; dim],
        }
    }

    /// `first` axes get u_axis; `second` axes get u_axis and u_axis,axis.
    pub fn new(dim: usize, first: &[usize], second: &[usize]) -> Self {
        let mut order = vec![0u8; dim];
        for &a in first {
            order[a] = order[a].max(1);
        }
        for &a in second {
            order[a] = 2;
        }
        Self { order }
    }

    pub fn dim(&self) -> usize {
        self.order.len()
    }

    /// Union of two specs on the same input dimension.
    pub fn union(&self, other: &JetSpec) -> JetSpec {
        let order = self
            .order
            .iter()
            .zip(&other.order)
            .map(|(a, b)| *a.max(b))
            .collect();
        JetSpec { order }
    }
}

/// A second-derivative stream: either not asked for, known to be identically zero (after the
/// affine input layer), or a tensor.
#[derive(Clone, Debug)]
pub enum Second {
    NotNeeded,
    Zero,
    Tensor(Tensor<2>),
}

/// A value with its derivative streams, each `[n, features]`.
///
/// A first-derivative stream may have a single row (`[1, features]`) when it is the same for
/// every point, as after the first linear layer; elementwise ops broadcast it.
#[derive(Clone, Debug)]
pub struct Jet {
    pub value: Tensor<2>,
    /// `d1[axis]`: ∂/∂x_axis, present where the spec's order ≥ 1.
    pub d1: Vec<Option<Tensor<2>>>,
    /// `d2[axis]`: ∂²/∂x_axis², asked for where the spec's order = 2.
    pub d2: Vec<Second>,
}

impl Jet {
    /// ∂u/∂x_axis; panics if the spec did not ask for it (a programming error in a PDE).
    pub fn d1(&self, axis: usize) -> Tensor<2> {
        self.d1[axis]
            .clone()
            .expect("first derivative not in the jet spec")
    }

    /// ∂²u/∂x_axis²; panics if the spec did not ask for it.
    pub fn d2(&self, axis: usize) -> Tensor<2> {
        match &self.d2[axis] {
            Second::Tensor(t) => t.clone(),
            Second::Zero => self.value.zeros_like(),
            Second::NotNeeded => panic!("second derivative not in the jet spec"),
        }
    }

    /// `a = tanh(z)`: a' = s z', a'' = s z'' − 2 a s (z')² with s = 1 − a².
    pub fn tanh(self) -> Jet {
        let a = tanh(self.value);
        if self.d1.iter().all(Option::is_none) {
            return Jet {
                value: a,
                d1: self.d1,
                d2: self.d2,
            };
        }
        let s = a.clone().square().neg().add_scalar(1.0);
        // 2·a·s is shared by every second-derivative stream.
        let two_a_s = if self.d2.iter().any(|d| !matches!(d, Second::NotNeeded)) {
            Some(a.clone().mul(s.clone()).mul_scalar(2.0))
        } else {
            None
        };
        let mut d1 = Vec::with_capacity(self.d1.len());
        let mut d2 = Vec::with_capacity(self.d2.len());
        for (z1, z2) in self.d1.into_iter().zip(self.d2) {
            let Some(z1) = z1 else {
                d1.push(None);
                d2.push(Second::NotNeeded);
                continue;
            };
            let a2 = match z2 {
                Second::NotNeeded => Second::NotNeeded,
                Second::Zero => Second::Tensor(
                    two_a_s
                        .clone()
                        .expect("computed above")
                        .mul(z1.clone().square())
                        .neg(),
                ),
                Second::Tensor(z2) => Second::Tensor(
                    s.clone().mul(z2).sub(
                        two_a_s
                            .clone()
                            .expect("computed above")
                            .mul(z1.clone().square()),
                    ),
                ),
            };
            d1.push(Some(s.clone().mul(z1)));
            d2.push(a2);
        }
        Jet { value: a, d1, d2 }
    }
}

/// tanh as one autodiff node whose backward reuses the forward value.
///
/// Profiling a width-50 step on burn-flex showed ~30 % of the time in scalar libm `tanhf`:
/// flex evaluates tanh element by element, and Burn's autodiff tanh recomputes tanh from its
/// input in the backward pass. Here tanh(z) = 1 − 2/(1 + e^{2z}) is evaluated once on plain
/// tensors (exact limits ±1 when e^{2z} over- or underflows), and the graph node is
/// (z − detach(z))·s + a with the constants a and s = 1 − a²: its value is a and its Jacobian is
/// s, which is all a first-order backward needs.
pub fn tanh(z: Tensor<2>) -> Tensor<2> {
    let tracked = z.is_autodiff() && z.is_tracked();
    let a = tanh_plain(z.clone().inner());
    if !tracked {
        return if z.is_autodiff() { a.autodiff() } else { a };
    }
    let s = a.clone().square().neg().add_scalar(1.0);
    z.clone().sub(z.detach()).mul(s).add(a)
}

/// tanh(z) = 1 − 2/(1 + e^{2z}) on a plain tensor (exact limits ±1 when e^{2z} over- or
/// underflows); see [`tanh`] for why not Burn's tanh.
pub fn tanh_plain<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    z.mul_scalar(2.0)
        .exp()
        .add_scalar(1.0)
        .recip()
        .mul_scalar(-2.0)
        .add_scalar(1.0)
}
