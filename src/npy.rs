//! `.npy` files <-> [`HostTensor`]s (via the `npyz` crate), for `kiln run`.

use anyhow::{bail, Context, Result};
use half::f16;
use kiln_abi::ElemType;
use kiln_runtime::HostTensor;
use npyz::WriterBuilder;
use std::path::Path;

/// Reads a C-order `.npy` file of f32, f16, i32, i64, u32, u8, i8 or bool (decoded by
/// [`kiln_npy::decode`]).
pub fn read_npy(path: &Path) -> Result<HostTensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let a = match kiln_npy::decode(&bytes) {
        Ok(a) => a,
        Err(e @ kiln_npy::NpyError::Header(_)) => bail!("{} is {e}", path.display()),
        Err(kiln_npy::NpyError::Data(e)) => bail!("reading the data of {}: {e}", path.display()),
        Err(e) => bail!("{}: {e}", path.display()),
    };
    Ok(HostTensor::new(a.dtype, a.shape, a.data)?)
}

fn write_typed<T: npyz::AutoSerialize + Clone>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    w.extend(data.iter().cloned())?;
    w.finish().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes a host tensor as `.npy` in its own dtype.
pub fn write_npy(path: &Path, t: &HostTensor) -> Result<()> {
    let le4 = |b: &[u8]| -> Vec<[u8; 4]> { b.chunks_exact(4).map(|c| c.try_into().unwrap()).collect() };
    match t.dtype {
        ElemType::F32 => write_typed(path, &t.shape, &t.to_f32()),
        ElemType::F16 => {
            let v: Vec<f16> = t
                .data
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect();
            write_typed(path, &t.shape, &v)
        }
        ElemType::I32 => write_typed(
            path,
            &t.shape,
            &le4(&t.data).into_iter().map(i32::from_le_bytes).collect::<Vec<_>>(),
        ),
        ElemType::U32 => write_typed(
            path,
            &t.shape,
            &le4(&t.data).into_iter().map(u32::from_le_bytes).collect::<Vec<_>>(),
        ),
        ElemType::I64 => write_typed(path, &t.shape, &t.to_i64()),
        ElemType::U8 => write_typed(path, &t.shape, &t.data),
        ElemType::I8 => write_typed(path, &t.shape, &t.data.iter().map(|&b| b as i8).collect::<Vec<_>>()),
        ElemType::Bool => write_typed(path, &t.shape, &t.to_bool()),
    }
}

/// A file name for an output: every character other than a letter, digit, `.`, `-` or `_`
/// becomes `_`.
pub fn output_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{s}.npy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_each_dtype() {
        let dir = std::env::temp_dir().join(format!("kiln-npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            HostTensor::from_f32(&[2, 3], &[0.5, -1.0, 2.0, 3.25, 4.0, -5.5]),
            HostTensor::from_f16(&[2], &[f16::from_f32(1.5), f16::from_f32(-2.0)]),
            HostTensor::from_i32(&[3], &[1, -2, 3]),
            HostTensor::from_i64(&[2, 1], &[-7, 1 << 40]),
            HostTensor::from_u32(&[1], &[u32::MAX]),
            HostTensor::from_u8(&[2], &[0, 255]),
            HostTensor::from_i8(&[2], &[-128, 127]),
            HostTensor::from_bool(&[3], &[true, false, true]),
        ];
        for (i, t) in cases.iter().enumerate() {
            let p = dir.join(format!("{i}.npy"));
            write_npy(&p, t).unwrap();
            let back = read_npy(&p).unwrap_or_else(|e| panic!("{:?}: {e:#}", t.dtype));
            assert_eq!(
                (&back.dtype, &back.shape, &back.data),
                (&t.dtype, &t.shape, &t.data),
                "{:?}",
                t.dtype
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
