//! Where a run's tensors live and how they get there: its device and [`Precision`] ([`Ctx`]),
//! and host ↔ device transfers. All host-side numbers are `f64`; the precision decides what
//! the device holds, so the same host data gives the same f32 values on every backend.

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Floating-point precision of every tensor in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision: the speed default, like reference PINN code.
    #[default]
    F32,
    /// Double precision: for derivative checks and reproducibility studies.
    F64,
}

/// The device and float type every tensor of a run uses.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The plain (non-autodiff) device: parameters, optimiser state, evaluation.
    pub device: Device,
    pub dtype: DType,
}

impl Ctx {
    pub fn new(device: Device, precision: Precision) -> Self {
        let dtype = match precision {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        };
        Self {
            device: device.without_autodiff(),
            dtype,
        }
    }

    /// Uploads a row-major `[rows, cols]` matrix.
    pub fn matrix(&self, values: &[f64], rows: usize, cols: usize) -> Tensor<2> {
        debug_assert_eq!(values.len(), rows * cols);
        Tensor::from_data(
            TensorData::new(values.to_vec(), [rows, cols]),
            (&self.device, self.dtype),
        )
    }

    /// Uploads a row-major `[a, b, c]` tensor (a pack's points: network, row, axis).
    pub fn tensor3(&self, values: &[f64], [a, b, c]: [usize; 3]) -> Tensor<3> {
        debug_assert_eq!(values.len(), a * b * c);
        Tensor::from_data(
            TensorData::new(values.to_vec(), [a, b, c]),
            (&self.device, self.dtype),
        )
    }

    /// Uploads a vector.
    pub fn vector(&self, values: &[f64]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            (&self.device, self.dtype),
        )
    }

    /// Uploads a column `[n, 1]`.
    pub fn column(&self, values: &[f64]) -> Tensor<2> {
        self.matrix(values, values.len(), 1)
    }
}

thread_local! {
    static HOST_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Host reads ([`to_host`] calls) made by this thread so far. Every read of trainer-core goes
/// through [`to_host`]; on a GPU each one is a synchronisation that costs as much as a small
/// step, so tests count them.
pub fn host_reads() -> u64 {
    HOST_READS.with(|c| c.get())
}

/// Copies any tensor back to the host as `f64` (exact for f32 and f64 tensors).
pub fn to_host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    HOST_READS.with(|c| c.set(c.get() + 1));
    t.try_into_vec_as::<f64>()
        .expect("reading a float tensor back to the host")
}

/// Reads a one-element tensor.
pub fn scalar(t: Tensor<1>) -> f64 {
    to_host(t)[0]
}
