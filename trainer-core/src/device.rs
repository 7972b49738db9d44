//! Device names, as `modsync train --device` and `modsync worker --device` take them.
//!
//! | name      | backend                                  | build                |
//! |-----------|------------------------------------------|----------------------|
//! | `cpu`     | burn-flex, Burn's pure-Rust CPU backend  | always               |
//! | `cuda:N`  | LibTorch (burn-tch) on CUDA device N     | `--features tch`     |
//! | `cuda`    | the same as `cuda:0`                     | `--features tch`     |
//! | `cpu-tch` | LibTorch on the CPU                      | `--features tch`     |
//!
//! Every tensor of a run is created on the device given to [`crate::Trainer::new`], and the
//! initial weights and every sampled point are drawn on the host (ChaCha8), so a run's starting
//! point is the same on every backend; only the floating-point rounding of the steps differs.

use burn::tensor::Device;

use crate::error::ConfigError;

/// Whether this build has the LibTorch backend (`cuda:N`, `cpu-tch`).
pub const HAS_TCH: bool = cfg!(feature = "tch");

/// The device names this build accepts, for help texts and errors.
pub fn known_devices() -> &'static str {
    if HAS_TCH {
        "cpu, cuda:N, cpu-tch"
    } else {
        "cpu (cuda:N and cpu-tch need a modsync built with --features tch)"
    }
}

/// What a device name asks for, before any backend is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn-flex on the CPU.
    Cpu,
    /// LibTorch on the CPU.
    CpuTch,
    /// LibTorch on CUDA device N.
    Cuda(usize),
}

impl DeviceKind {
    /// Parses a `--device` name (surrounding blanks ignored; empty means `cpu`).
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        let name = name.trim();
        match name {
            "" | "cpu" => return Ok(Self::Cpu),
            "cpu-tch" => return Ok(Self::CpuTch),
            "cuda" => return Ok(Self::Cuda(0)),
            _ => {}
        }
        if let Some(index) = name.strip_prefix("cuda:") {
            return index.parse::<usize>().map(Self::Cuda).map_err(|_| {
                ConfigError::new(
                    "--device",
                    format!("{name:?}: the CUDA device index must be a number, as in cuda:0"),
                )
            });
        }
        Err(ConfigError::new(
            "--device",
            format!("unknown device {name:?} (expected {})", known_devices()),
        ))
    }

    /// True for the LibTorch devices.
    pub fn needs_tch(self) -> bool {
        !matches!(self, Self::Cpu)
    }
}

/// Turns a `--device` name into a Burn device, or says why this build cannot use it: an unknown
/// name, a LibTorch device in a build without the `tch` feature, or a CUDA index this machine
/// does not have.
pub fn parse_device(name: &str) -> Result<Device, ConfigError> {
    let kind = DeviceKind::parse(name)?;
    if kind.needs_tch() && !HAS_TCH {
        return Err(ConfigError::new(
            "--device",
            format!(
                "device {} needs a modsync built with --features tch (this build has only cpu)",
                name.trim()
            ),
        ));
    }
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        DeviceKind::CpuTch => Ok(libtorch::cpu()),
        #[cfg(feature = "tch")]
        DeviceKind::Cuda(index) => libtorch::cuda(index),
        #[cfg(not(feature = "tch"))]
        DeviceKind::CpuTch | DeviceKind::Cuda(_) => unreachable!("checked above"),
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch is deprecated upstream; it is still the fastest GPU path here.
mod libtorch {
    use burn::tensor::{Device, DeviceType};

    use crate::error::ConfigError;

    pub fn cpu() -> Device {
        Device::libtorch()
    }

    pub fn cuda(index: usize) -> Result<Device, ConfigError> {
        let count = Device::enumerate(DeviceType::LibTorch).into_vec().len();
        if index >= count {
            let found = match count {
                0 => "no CUDA device (or a LibTorch without CUDA support)".to_string(),
                1 => "1 CUDA device (cuda:0)".to_string(),
                n => format!("{n} CUDA devices (cuda:0 to cuda:{})", n - 1),
            };
            return Err(ConfigError::new(
                "--device",
                format!("cuda:{index} is not available: LibTorch sees {found}"),
            ));
        }
        Ok(Device::libtorch_cuda(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(DeviceKind::parse("cpu"), Ok(DeviceKind::Cpu));
        assert_eq!(DeviceKind::parse(" cpu "), Ok(DeviceKind::Cpu));
        assert_eq!(DeviceKind::parse(""), Ok(DeviceKind::Cpu));
        assert_eq!(DeviceKind::parse("cpu-tch"), Ok(DeviceKind::CpuTch));
        assert_eq!(DeviceKind::parse("cuda"), Ok(DeviceKind::Cuda(0)));
        assert_eq!(DeviceKind::parse("cuda:3"), Ok(DeviceKind::Cuda(3)));
        let e = DeviceKind::parse("cuda:x").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid --device:") && e.contains("cuda:0"),
            "{e}"
        );
        let e = DeviceKind::parse("gpu").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid --device: unknown device \"gpu\""),
            "{e}"
        );
    }

    #[test]
    fn cpu_is_flex() {
        assert!(parse_device("cpu").is_ok());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn tch_devices_need_the_feature() {
        for name in ["cuda:0", "cuda", "cpu-tch"] {
            let e = parse_device(name).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "invalid --device: device {name} needs a modsync built with --features tch (this build has only cpu)"
                )
            );
        }
    }

    #[cfg(feature = "tch")]
    #[test]
    fn tch_devices() {
        assert!(parse_device("cpu-tch").is_ok());
        // No machine has 10,000 GPUs: the index is checked against what LibTorch sees.
        let e = parse_device("cuda:9999").unwrap_err().to_string();
        assert!(e.contains("cuda:9999 is not available"), "{e}");
    }
}
