//! Device performance profiles: the figures the optimizer's cost model prices kernels with.
//!
//! A profile is a RON file (`schedules/profiles/*.ron`; the built-in ones are compiled in):
//! the bandwidth a copy-like kernel reaches, the f32 FLOP rate Kiln's GEMM reaches, and the
//! cost of one dependent dispatch inside a compute pass. A kernel is priced
//! `dispatch_seconds + max(bytes / bandwidth, flops / peak_flops)`.

use serde::{Deserialize, Serialize};

/// Why a performance profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PerfProfileError {
    /// The file could not be read.
    #[error("performance profile {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not a RON `PerfProfile`.
    #[error("performance profile {origin}: {source}")]
    Malformed {
        /// Where the text came from.
        origin: String,
        /// RON's error (with its position).
        source: Box<ron::error::SpannedError>,
    },
    /// A figure is not a positive finite number.
    #[error("performance profile {origin}: {field} must be a positive finite number, got {value}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
}

/// Throughput and dispatch figures of a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfProfile {
    /// Profile name (matches a target name: `webgpu-default`, `desktop`, `h200`).
    pub name: String,
    /// Bytes per second a memory-bound kernel moves (reads plus writes).
    pub bandwidth: f64,
    /// f32 FLOP per second a compute-bound kernel reaches.
    pub peak_flops: f64,
    /// Seconds per dependent dispatch inside one compute pass.
    pub dispatch_seconds: f64,
}

/// The built-in profiles: (name, RON text).
const BUILTIN: &[(&str, &str)] = &[
    ("webgpu-default", include_str!("../profiles/webgpu-default.ron")),
    ("desktop", include_str!("../profiles/desktop.ron")),
    ("h200", include_str!("../profiles/h200.ron")),
];

impl PerfProfile {
    /// Parses and checks a profile; `origin` names the text's source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PerfProfile, PerfProfileError> {
        let p: PerfProfile = ron::from_str(text).map_err(|source| PerfProfileError::Malformed {
            origin: origin.to_string(),
            source: Box::new(source),
        })?;
        for (field, value) in [
            ("bandwidth", p.bandwidth),
            ("peak_flops", p.peak_flops),
            ("dispatch_seconds", p.dispatch_seconds),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(PerfProfileError::Invalid {
                    origin: origin.to_string(),
                    field,
                    value,
                });
            }
        }
        Ok(p)
    }

    /// Reads a profile from a RON file.
    pub fn from_file(path: &std::path::Path) -> Result<PerfProfile, PerfProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PerfProfileError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<PerfProfile> {
        let name = if name == "webgpu" { "webgpu-default" } else { name };
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        Some(Self::parse(text, name).expect("built-in profiles are valid (tested)"))
    }

    /// The profile for a compile target's name: the built-in of that name, else
    /// `webgpu-default`.
    pub fn for_target(target: &str) -> PerfProfile {
        Self::builtin(target).unwrap_or_else(|| {
            log::debug!("no performance profile named '{target}': using webgpu-default");
            Self::builtin("webgpu-default").expect("webgpu-default is built in")
        })
    }

    /// Seconds one kernel takes that moves `bytes` and computes `flops`.
    pub fn kernel_seconds(&self, bytes: f64, flops: f64) -> f64 {
        self.dispatch_seconds + (bytes / self.bandwidth).max(flops / self.peak_flops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_h200_has_the_measured_figures() {
        for (name, _) in BUILTIN {
            assert_eq!(PerfProfile::builtin(name).unwrap().name, *name);
        }
        let h = PerfProfile::builtin("h200").unwrap();
        assert_eq!((h.bandwidth, h.peak_flops, h.dispatch_seconds), (3.8e12, 30e12, 2.9e-6));
        assert_eq!(PerfProfile::for_target("no-such-device").name, "webgpu-default");
    }

    #[test]
    fn bad_profiles_get_typed_errors() {
        let bad = "(name: \"x\", bandwidth: -1.0, peak_flops: 1e12, dispatch_seconds: 1e-6)";
        assert!(matches!(
            PerfProfile::parse(bad, "t"),
            Err(PerfProfileError::Invalid { field: "bandwidth", .. })
        ));
        assert!(matches!(
            PerfProfile::parse("(name: 3)", "t"),
            Err(PerfProfileError::Malformed { .. })
        ));
        assert!(matches!(
            PerfProfile::from_file(std::path::Path::new("/nonexistent/p.ron")),
            Err(PerfProfileError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_kernel_costs_its_dispatch_plus_its_bound() {
        let p = PerfProfile::builtin("h200").unwrap();
        let t = p.kernel_seconds(3.8e12, 0.0);
        assert!((t - (1.0 + 2.9e-6)).abs() < 1e-12);
        let t = p.kernel_seconds(0.0, 30e12);
        assert!((t - (1.0 + 2.9e-6)).abs() < 1e-12);
    }
}
