//! What the reverse pass runs over: the stacked jet [`Streams`] and the layers of a pack of
//! networks ([`PackLayers`]), cut out of their parameter rows.

use std::ops::Range;

use burn::tensor::Tensor;

use crate::jet::JetSpec;
use crate::mlp::Architecture;

/// Which streams are stacked, in block order: the value, then the first derivatives along
/// `first` (the axes that also have a second derivative come first), then the second
/// derivatives along `second` (a prefix of `first`), so block `1 + i` pairs with
/// `1 + first.len() + i` in the tanh jet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streams {
    pub first: Vec<usize>,
    pub second: Vec<usize>,
}

impl Streams {
    pub fn from_spec(spec: &JetSpec) -> Self {
        let axes = |o: u8| (0..spec.dim()).filter(move |&a| spec.order[a] == o);
        let second: Vec<usize> = axes(2).collect();
        let first = second.iter().copied().chain(axes(1)).collect();
        Self { first, second }
    }

    /// Number of row blocks.
    pub fn count(&self) -> usize {
        1 + self.first.len() + self.second.len()
    }

    pub(super) fn k1(&self) -> usize {
        self.first.len()
    }

    pub(super) fn k2(&self) -> usize {
        self.second.len()
    }
}

/// The layers of K networks: weights `[K, d_in, d_out]` and biases `[K, 1, d_out]`, views of
/// the parameter rows `[K, P]` (θ, or ModSync's θ̃).
#[derive(Clone, Debug)]
pub struct PackLayers {
    pub weights: Vec<Tensor<3>>,
    pub biases: Vec<Tensor<3>>,
}

impl PackLayers {
    /// Cuts parameter rows `[K, P]` into layers.
    pub fn from_rows(theta: &Tensor<2>, arch: &Architecture) -> Self {
        let k = theta.dims()[0];
        let (weights, biases) = arch
            .slots()
            .iter()
            .map(|s| {
                let w = theta
                    .clone()
                    .slice([0..k, s.weight.clone()])
                    .reshape([k, s.d_in, s.d_out]);
                let b = theta
                    .clone()
                    .slice([0..k, s.bias.clone()])
                    .reshape([k, 1, s.d_out]);
                (w, b)
            })
            .unzip();
        Self { weights, biases }
    }

    /// Networks in the pack.
    pub fn count(&self) -> usize {
        self.weights[0].dims()[0]
    }

    /// The networks `members` of the pack.
    pub(super) fn members(&self, members: &Range<usize>) -> Self {
        if members.len() == self.count() {
            return self.clone();
        }
        let pick = |t: &Tensor<3>| t.clone().narrow(0, members.start, members.len());
        Self {
            weights: self.weights.iter().map(pick).collect(),
            biases: self.biases.iter().map(pick).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_put_second_order_axes_first() {
        // burgers: u_xx and u_t → first = [x, t], second = [x].
        let s = Streams::from_spec(&JetSpec::new(2, &[1], &[0]));
        assert_eq!(
            (s.first.as_slice(), s.second.as_slice()),
            (&[0, 1][..], &[0][..])
        );
        let s = Streams::from_spec(&JetSpec::new(3, &[0], &[2]));
        assert_eq!(
            (s.first.as_slice(), s.second.as_slice()),
            (&[2, 0][..], &[2][..])
        );
        assert_eq!(s.count(), 4);
        assert_eq!(Streams::from_spec(&JetSpec::value(3)).count(), 1);
    }
}
