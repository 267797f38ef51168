//! `kiln bench --profile`: per-dispatch GPU times of one run, from timestamp queries.

use anyhow::{bail, Result};
use kiln::runtime::llm::{sampling_window, step_inputs, Sampling, DECODE, NEXT_TOKEN, PAST, PREFILL};
use kiln::runtime::{HostTensor, Profile, Session};
use std::collections::HashMap;

/// Groups shown per table.
const TOP: usize = 15;

/// Refuses early, with the adapter named, when it cannot time dispatches.
pub fn check_support(session: &Session) -> Result<()> {
    if !session.can_profile() {
        let info = session.adapter_info();
        bail!(
            "--profile: adapter '{}' ({}) does not offer WebGPU timestamp queries (feature 'timestamp-query'), \
             so dispatches cannot be timed; run `kiln bench` without --profile for wall times",
            info.name,
            info.backend.to_str()
        );
    }
    Ok(())
}

fn print(session: &Session, p: &Profile) {
    let info = session.adapter_info();
    println!("device: {} ({:?})", info.name, info.backend);
    print!("{}", p.report(TOP));
}

/// The floor of `p` (module `kiln::runtime::probe`): its dispatches at the probed cost each
/// against reading every weight once at the probed rate, beside its own GPU time.
fn print_floor(session: &mut Session, p: &Profile) -> Result<()> {
    let probe = session.probe_device()?;
    let weights = session.memory_report().weights;
    let n = p.dispatches.len();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let read = weights as f64 / probe.read_bytes_per_s;
    let chain = probe.dispatch * n as u32;
    let floor = probe.floor(weights, n);
    println!(
        "floor of '{}': max(weights {:.1} MiB read at {:.0} GB/s = {:.3} ms, {n} dispatches x {:.2} us = {:.3} ms) = {:.3} ms; \
         measured {:.3} ms on the GPU, {:.2}x the floor",
        p.program,
        weights as f64 / (1u64 << 20) as f64,
        probe.read_bytes_per_s / 1e9,
        read * 1e3,
        probe.dispatch.as_secs_f64() * 1e6,
        ms(chain),
        ms(floor),
        ms(p.gpu_total()),
        p.gpu_total().as_secs_f64() / floor.as_secs_f64().max(1e-12)
    );
    Ok(())
}

/// Profiles one run of `program` after a warm-up run (which allocates buffers and bind groups).
pub fn profile_program(session: &mut Session, program: &str, inputs: &HashMap<String, HostTensor>) -> Result<()> {
    check_support(session)?;
    session.run(program, inputs)?;
    let p = session.profile(program, inputs, &[], None)?;
    print(session, &p);
    print_floor(session, &p)
}

/// Profiles a language model: the prefill of `prompt` and then one decode step after it, each
/// after a warm-up run at the same position (the KV cache is reset before each prefill), both
/// drawing their token with `sampling`.
pub fn profile_llm(session: &mut Session, prompt: &[i32], sampling: &Sampling) -> Result<()> {
    check_support(session)?;
    let read = [NEXT_TOKEN];
    let window = sampling_window(session);
    let prefill_in = step_inputs(prompt, prompt, window, sampling, prompt.len() as u32);
    let past = prompt.len() as i64;
    // Warm-up: the first run of each program allocates its buffers and bind groups.
    session.reset_states()?;
    let out = session.run_with(PREFILL, &prefill_in, &[(PAST, 0)], Some(&read))?;
    let next = out.first().and_then(|(_, t)| t.to_i64().first().copied()).unwrap_or(0) as i32;
    let history: Vec<i32> = prompt.iter().copied().chain([next]).collect();
    let decode_in = step_inputs(&[next], &history, window, sampling, past as u32 + 1);
    session.run_with(DECODE, &decode_in, &[(PAST, past)], Some(&read))?;
    // Timed: the same prefill and decode step again on a cleared cache.
    session.reset_states()?;
    let p = session.profile(PREFILL, &prefill_in, &[(PAST, 0)], Some(&read))?;
    let d = session.profile(DECODE, &decode_in, &[(PAST, past)], Some(&read))?;
    print(session, &p);
    print!("{}", d.report(TOP));
    print_floor(session, &d)
}
