//! What trainer-core's tests share, one place each: small runs and what they report (`run`:
//! a tiny config, a recording observer, the CPU contexts), and an independent f64 host
//! reference of the MLP, the PDEs and their losses (`host`).

// Each test binary that includes this module uses only part of it.
#![allow(dead_code, unused_imports)]

mod host;
mod run;

pub use host::*;
pub use run::*;
