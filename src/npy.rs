//! `.npy` files <-> [`HostTensor`]s (via the `npyz` crate), for `kiln run`.

use anyhow::{bail, Context, Result};
use half::f16;
use kiln_abi::ElemType;
use kiln_runtime::HostTensor;
use npyz::WriterBuilder;
use std::path::Path;

/// Reads a C-order `.npy` file of f32, f16, i32, i64, u32, u8, i8 or bool.
pub fn read_npy(path: &Path) -> Result<HostTensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!(
            "{}: Fortran-order arrays are not supported; save with np.ascontiguousarray",
            path.display()
        );
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{}: shape {:?} does not fit this machine", path.display(), npy.shape()))?;
    // The header's shape must match the data that is there: checked before anything is
    // allocated for it (a forged header cannot make the reader allocate or wrap around).
    let elems = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let item = npy.dtype().num_bytes().unwrap_or(1).max(1);
    let needed = elems.and_then(|n| n.checked_mul(item));
    if needed.is_none_or(|n| n > bytes.len()) {
        bail!(
            "{}: the header's shape {:?} needs {} bytes of data, but the file has {} bytes in all",
            path.display(),
            shape,
            needed.map_or("more than 2^64".to_string(), |n| n.to_string()),
            bytes.len()
        );
    }
    // `descr()` is the Python literal of the header's dtype, quotes included (`'<f4'`).
    let descr = npy.dtype().descr();
    let ctx = || format!("reading the data of {}", path.display());
    let t = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => HostTensor::from_f32(&shape, &npy.into_vec::<f32>().with_context(ctx)?),
        "f2" => HostTensor::from_f16(&shape, &npy.into_vec::<f16>().with_context(ctx)?),
        "i4" => HostTensor::from_i32(&shape, &npy.into_vec::<i32>().with_context(ctx)?),
        "i8" => HostTensor::from_i64(&shape, &npy.into_vec::<i64>().with_context(ctx)?),
        "u4" => HostTensor::from_u32(&shape, &npy.into_vec::<u32>().with_context(ctx)?),
        "u1" => HostTensor::from_u8(&shape, &npy.into_vec::<u8>().with_context(ctx)?),
        "i1" => HostTensor::from_i8(&shape, &npy.into_vec::<i8>().with_context(ctx)?),
        "b1" => HostTensor::from_bool(&shape, &npy.into_vec::<bool>().with_context(ctx)?),
        other => bail!(
            "{}: dtype '{other}' is not supported (use float32, float16, int32, int64, uint32, uint8, int8 or bool)",
            path.display()
        ),
    };
    Ok(t)
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
