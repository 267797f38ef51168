//! Queued runs: a program recorded and submitted without waiting for it, its outputs forwarded
//! on the GPU into the next run's inputs or into small readback buffers that are mapped later.
//!
//! This is what lets a caller keep several runs in flight: the language-model generator
//! (`crate::llm`) submits decode step n+1 while step n runs, feeds each step's `next_token` into
//! the next step's `tokens` input by a buffer copy, and reads the token ids back in batches.
//! Queue order makes this safe: parameter and input writes of a run ([`wgpu::Queue::write_buffer`])
//! land after every earlier submission and before the run's own commands.
//!
//! Queued runs push no error scopes (a browser would pay a round trip per scope); a validation
//! error is caught by the device's uncaptured-error handler and reported by the next
//! [`Session::read_async`].

use super::{copy_size, gpu_err, Session};
use crate::callback::callback_future;
use crate::error::{Result, RuntimeError};
use crate::host::{storage_size, HostTensor};
use std::collections::HashMap;

/// A copy that a queued run ([`Session::submit_queued`]) records after its dispatches.
#[derive(Clone, Copy, Debug)]
pub enum Forward<'a> {
    /// Output `output` into the buffer of the same program's input `input`, at byte `offset`
    /// (both must have the same storage type). The next run names `input` as resident, so it
    /// reads the forwarded value instead of an upload.
    ToInput {
        /// Output of the run.
        output: &'a str,
        /// Input of the same program.
        input: &'a str,
        /// Byte offset in the input's buffer (a multiple of 4).
        offset: u64,
    },
    /// Output `output` (its storage bytes) into `readback` at byte `offset`.
    ToReadback {
        /// Output of the run.
        output: &'a str,
        /// Where it goes.
        readback: Readback,
        /// Byte offset in the readback buffer (a multiple of 4).
        offset: u64,
    },
}

/// A small mappable buffer of a session that queued runs copy outputs into
/// ([`Session::readback`]); read with [`Session::read_async`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readback {
    index: usize,
}

/// A readback buffer and the last submission that copies into it.
pub(super) struct ReadbackBuffer {
    buffer: wgpu::Buffer,
    last: Option<wgpu::SubmissionIndex>,
}

impl ReadbackBuffer {
    /// Bytes of the buffer.
    pub(super) fn size(&self) -> u64 {
        self.buffer.size()
    }
}

fn queued_err(program: &str, message: String) -> RuntimeError {
    RuntimeError::Queued {
        program: program.to_string(),
        message,
    }
}

impl Session {
    /// Readback buffer number `slot` of this session, holding at least `bytes` (created or
    /// grown as needed; its content is undefined until a queued run copies into it).
    pub fn readback(&mut self, slot: usize, bytes: u64) -> Readback {
        let bytes = copy_size(bytes);
        while self.readbacks.len() <= slot {
            self.readbacks.push(None);
        }
        if !matches!(&self.readbacks[slot], Some(r) if r.size() >= bytes) {
            let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("readback {slot}")),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.readbacks[slot] = Some(ReadbackBuffer { buffer, last: None });
        }
        Readback { index: slot }
    }

    /// Records program `program` like [`Session::run_with_async`] and submits it without
    /// waiting, then records `forwards` after its dispatches. Inputs named in `resident` are
    /// not uploaded: their buffers keep what an earlier run forwarded into them (they are still
    /// given in `inputs`, for the shapes). Nothing is read back; outputs stay on the GPU.
    pub fn submit_queued(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        resident: &[&str],
        forwards: &[Forward<'_>],
    ) -> Result<()> {
        let pi = self.program_index(program)?;
        let m = &self.manifest;
        let (ins, outs) = (m.program_inputs(pi), m.program_outputs(pi));
        let input = |name: &str| {
            ins.iter()
                .position(|i| i.name == name)
                .ok_or_else(|| queued_err(program, format!("'{name}' is not an input of the program")))
        };
        let output = |name: &str| {
            outs.iter()
                .position(|o| o.name == name)
                .ok_or_else(|| queued_err(program, format!("'{name}' is not an output of the program")))
        };
        for r in resident {
            input(r)?;
        }
        // Per forward: output index, destination buffer (None: a readback), readback, offset.
        let mut copies = Vec::with_capacity(forwards.len());
        for f in forwards {
            let (out, offset) = match *f {
                Forward::ToInput { output: o, offset, .. } | Forward::ToReadback { output: o, offset, .. } => {
                    (output(o)?, offset)
                }
            };
            if offset % 4 != 0 {
                return Err(queued_err(
                    program,
                    format!("forward offset {offset} is not a multiple of 4"),
                ));
            }
            match *f {
                Forward::ToInput { input: name, .. } => {
                    let i = input(name)?;
                    if ins[i].storage != outs[out].storage {
                        return Err(queued_err(
                            program,
                            format!(
                                "output '{}' is stored as {} but input '{name}' as {}",
                                outs[out].name,
                                outs[out].storage.name(),
                                ins[i].storage.name()
                            ),
                        ));
                    }
                    copies.push((out, Some(ins[i].buffer), None, offset));
                }
                Forward::ToReadback { readback, .. } => {
                    if !matches!(self.readbacks.get(readback.index), Some(Some(_))) {
                        return Err(queued_err(program, format!("no readback buffer {}", readback.index)));
                    }
                    copies.push((out, None, Some(readback.index), offset));
                }
            }
        }
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(program) });
        let plan = self.prepare(pi, inputs, scalars, resident, &mut enc)?;
        self.record(&plan, &mut enc, 1);
        let outs = self.manifest.program_outputs(pi);
        let mut touched = Vec::new();
        for (out, dst, rb, offset) in copies {
            let spec = &outs[out];
            let bytes = plan.outputs.iter().find(|o| o.index == out).map_or(0, |o| o.bytes);
            let elem = storage_size(spec.storage).expect("checked at load");
            if bytes == 0 || bytes % 4 != 0 || elem != 4 {
                return Err(queued_err(
                    program,
                    format!(
                        "output '{}' has {bytes} bytes; only whole 32-bit words are forwarded",
                        spec.name
                    ),
                ));
            }
            let src = self.slots[spec.buffer].buffer.as_ref().expect("allocated by prepare");
            let (dst, what) = match (dst, rb) {
                (Some(b), _) => (
                    self.slots[b].buffer.as_ref().expect("inputs are allocated by prepare"),
                    format!("buffer {b} '{}'", self.manifest.buffers[b].label),
                ),
                (None, Some(r)) => {
                    touched.push(r);
                    (
                        &self.readbacks[r].as_ref().expect("checked above").buffer,
                        format!("readback {r}"),
                    )
                }
                (None, None) => unreachable!("every forward has a destination"),
            };
            if offset + bytes > dst.size() {
                return Err(queued_err(
                    program,
                    format!(
                        "forwarding {bytes} bytes of '{}' to byte {offset} of {what} ({} bytes) overflows it",
                        spec.name,
                        dst.size()
                    ),
                ));
            }
            enc.copy_buffer_to_buffer(src, 0, dst, offset, bytes);
        }
        let idx = self.gpu.queue.submit([enc.finish()]);
        for r in touched {
            if let Some(rb) = self.readbacks[r].as_mut() {
                rb.last = Some(idx.clone());
            }
        }
        Ok(())
    }

    /// Waits until the queued runs that copy into `readback` are done and returns its first
    /// `bytes` bytes. Later submissions keep running meanwhile. Reports a GPU error that any
    /// queued run raised.
    pub async fn read_async(&mut self, readback: Readback, bytes: u64) -> Result<Vec<u8>> {
        let context = format!("readback {}", readback.index);
        let (buffer, last) = match self.readbacks.get(readback.index) {
            Some(Some(r)) if bytes <= r.size() => (r.buffer.clone(), r.last.clone()),
            _ => {
                return Err(gpu_err(
                    context,
                    format!("no readback buffer {} of at least {bytes} bytes", readback.index),
                ))
            }
        };
        let n = copy_size(bytes);
        let (tx, rx) = callback_future();
        buffer.slice(..n).map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        let idx = last.unwrap_or_else(|| self.gpu.queue.submit([]));
        self.drive(idx, &context)?;
        match rx.await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(gpu_err(context, e.to_string())),
            None => {
                return Err(gpu_err(
                    context,
                    "the device dropped a readback buffer's mapping request".into(),
                ))
            }
        }
        // Unmapped on every path, so the next queued run can copy into it again.
        let data = buffer
            .slice(..n)
            .get_mapped_range()
            .map(|view| view[..bytes as usize].to_vec())
            .map_err(|e| gpu_err(context.clone(), e.to_string()));
        buffer.unmap();
        let data = data?;
        self.check_uncaptured(&context)?;
        Ok(data)
    }
}

/// Blocking wrapper for native callers.
#[cfg(not(target_arch = "wasm32"))]
impl Session {
    /// Blocking form of [`Session::read_async`].
    pub fn read(&mut self, readback: Readback, bytes: u64) -> Result<Vec<u8>> {
        pollster::block_on(self.read_async(readback, bytes))
    }
}
