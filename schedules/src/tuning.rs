//! The tuning database: measured-best schedules by kernel key, stored as RON so records are
//! readable, diffable and travel with a bundle's sources.

use crate::Schedule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One tuning record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningRecord {
    /// Best schedule found.
    pub schedule: Schedule,
    /// Its measured time in microseconds.
    pub micros: f64,
    /// Adapter it was measured on.
    pub device: String,
}

/// Records by kernel key (the kernel's kind and problem shape, e.g. `gemm:m=128,n=384,k=384`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TuningDb {
    /// Records by key.
    pub records: BTreeMap<String, TuningRecord>,
}

/// Why a tuning file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// Reading or writing the file failed.
    #[error("tuning file {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a RON tuning database.
    #[error("tuning file {}: {source}", path.display())]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// RON's error (with its position).
        source: Box<ron::error::SpannedError>,
    },
    /// The database could not be serialized.
    #[error("serializing tuning records: {0}")]
    Serialize(#[from] ron::Error),
}

impl TuningDb {
    /// Reads a RON tuning file.
    pub fn load(path: &Path) -> Result<TuningDb, TuningError> {
        let text = std::fs::read_to_string(path).map_err(|source| TuningError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ron::from_str(&text).map_err(|source| TuningError::Malformed {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Writes the database as pretty RON.
    pub fn save(&self, path: &Path) -> Result<(), TuningError> {
        let text = ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())?;
        std::fs::write(path, text).map_err(|source| TuningError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A database holding one schedule chosen by hand ([`TuningDb::force`]).
    pub fn forcing(key: impl Into<String>, schedule: Schedule) -> TuningDb {
        let mut db = TuningDb::default();
        db.force(key, schedule);
        db
    }

    /// Records a schedule chosen by hand for a key (untimed, device `forced`): how tests and
    /// experiments force a schedule, as `kiln compile --tuning` applies a measured one.
    pub fn force(&mut self, key: impl Into<String>, schedule: Schedule) -> &mut TuningDb {
        let record = TuningRecord {
            schedule,
            micros: 0.0,
            device: "forced".into(),
        };
        self.records.insert(key.into(), record);
        self
    }

    /// The recorded schedule for a key.
    pub fn get(&self, key: &str) -> Option<Schedule> {
        self.records.get(key).map(|r| r.schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GemmParams;

    #[test]
    fn ron_round_trip() {
        let mut db = TuningDb::default();
        db.records.insert(
            "gemm:m=64,n=64,k=64".into(),
            TuningRecord {
                schedule: Schedule::Gemm(GemmParams::new(64, 64, 16, 4, 4).with_ksplit(8)),
                micros: 12.5,
                device: "llvmpipe".into(),
            },
        );
        let dir = std::env::temp_dir().join(format!("kiln-tune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.ron");
        db.save(&p).unwrap();
        assert_eq!(TuningDb::load(&p).unwrap(), db);
        let err = TuningDb::load(&dir.join("missing.ron")).unwrap_err();
        assert!(matches!(err, TuningError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.ron"));
        std::fs::write(dir.join("bad.ron"), "not ron (").unwrap();
        let err = TuningDb::load(&dir.join("bad.ron")).unwrap_err();
        assert!(matches!(err, TuningError::Malformed { .. }), "{err}");
    }

    #[test]
    fn forced_schedules_are_untimed_records() {
        let s = Schedule::Gemm(GemmParams::new(32, 32, 8, 4, 4));
        let mut db = TuningDb::forcing("gemm:m=1,n=2,k=3", s);
        db.force("gemm:m=4,n=5,k=6", s);
        assert_eq!(db.get("gemm:m=4,n=5,k=6"), Some(s));
        let r = &db.records["gemm:m=1,n=2,k=3"];
        assert_eq!((r.schedule, r.micros, r.device.as_str()), (s, 0.0, "forced"));
    }

    #[test]
    fn gemm_records_without_ksplit_read_as_one_split() {
        let text = "(bm: 64, bn: 32, bk: 8, tm: 2, tn: 2)";
        let p: GemmParams = ron::from_str(text).unwrap();
        assert_eq!(p, GemmParams::new(64, 32, 8, 2, 2));
        // ... and a schedule without split-K serializes as before (manifests stay unchanged).
        assert_eq!(ron::to_string(&p).unwrap(), text.replace(' ', ""));
    }
}
