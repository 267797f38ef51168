//! Chained decoding: decode steps queued back to back with the generated token kept on the GPU.
//!
//! The step-by-step loop waits for each step's token before it records the next step, so the
//! GPU idles while the host encodes. Here each step is a queued run
//! ([`Session::submit_queued`]) whose `next_token` output is copied on the GPU into the next
//! step's `tokens` input, into the repetition-penalty window (`recent_tokens`, kept as a ring:
//! the token at sequence position `i` sits in slot `i % window`; the sampling kernel only
//! asks whether an id is in the window, so the order does not matter) and into a readback
//! buffer. The steps of a batch share one readback buffer; up to [`CHAIN_DEPTH`] batches are
//! in flight, so the host encodes batch n+1 while the GPU runs batch n and reads batch n's ids
//! with one wait. Everything else a step needs is known in advance: the position `past` and
//! the sampling input's `step` (the position of the draw). Tokens are handed to the sink as
//! their batch arrives; steps queued past the one whose token the sink refused (or past an
//! error) are discarded: they only wrote KV-cache rows at positions after the generator's
//! `past`, which the next step overwrites before anything reads them.

use super::{
    GenerationStats, Generator, TokenSink, DECODE, NEXT_TOKEN, PAST, RECENT_TOKENS, SAMPLING, SAMPLING_LEN, TOKENS,
};
use crate::error::Result;
use crate::session::Forward;
use crate::HostTensor;
use std::collections::{HashMap, VecDeque};
use web_time::Instant;

/// Default decode steps per readback batch (the most tokens a user waits for at once).
pub const CHAIN_BATCH: usize = 8;
/// Batches in flight at once.
pub const CHAIN_DEPTH: usize = 2;
/// Environment variable that overrides the default batch natively (`0`: step by step).
pub const CHAIN_ENV: &str = "KILN_DECODE_BATCH";

/// The default batch: [`CHAIN_ENV`] when set to a number, else [`CHAIN_BATCH`].
pub(super) fn default_batch() -> usize {
    std::env::var(CHAIN_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CHAIN_BATCH)
}

/// Whether the bundle's decode program can feed its token back on the GPU: `next_token` and
/// `tokens` (and `recent_tokens`, where present) stored in the same 32-bit type.
pub(super) fn chainable(session: &crate::Session) -> bool {
    let m = session.manifest();
    let Some(p) = m.program(DECODE) else { return false };
    let find = |list: &Option<Vec<crate::abi::IoSpec>>, name: &str| {
        list.as_ref()
            .and_then(|l| l.iter().find(|i| i.name == name))
            .map(|i| i.storage)
    };
    let out = find(&p.outputs, NEXT_TOKEN);
    let ok = |s: Option<crate::abi::ElemType>| {
        s.is_some() && s == out && crate::host::storage_size(s.expect("checked")) == Some(4)
    };
    let recent = find(&p.inputs, RECENT_TOKENS);
    ok(find(&p.inputs, TOKENS)) && (recent.is_none() || ok(recent))
}

impl Generator<'_> {
    /// Runs `steps` decode steps after `first` (the token the previous step drew, not yet in
    /// the cache) in batches of `batch`, handing each drawn token to `sink`; the position and
    /// the penalty window end where the step-by-step loop would have left them.
    pub(super) async fn decode_chained(
        &mut self,
        first: i32,
        steps: usize,
        batch: usize,
        sink: &mut dyn TokenSink,
        stats: &mut GenerationStats,
    ) -> Result<()> {
        let base = self.past;
        let batch = batch.max(1);
        let mut inputs = HashMap::from([(TOKENS.to_string(), HostTensor::from_i32(&[1], &[first]))]);
        if let Some(w) = self.window {
            inputs.insert(
                SAMPLING.to_string(),
                HostTensor::from_i32(&[SAMPLING_LEN], &self.sampling.encode(0)),
            );
            // The window of the first step: the last `w` ids of the sequence up to `first`,
            // each in the slot of its position.
            let mut ring = vec![-1; w];
            let seq: Vec<i32> = self.history.iter().copied().chain([first]).collect();
            let start = (base + 1).saturating_sub(seq.len());
            for (j, &t) in seq.iter().enumerate().skip(seq.len().saturating_sub(w)) {
                ring[(start + j) % w] = t;
            }
            inputs.insert(RECENT_TOKENS.to_string(), HostTensor::from_i32(&[w], &ring));
        }
        let readbacks: Vec<_> = (0..CHAIN_DEPTH)
            .map(|i| self.session.readback(i, 4 * batch as u64))
            .collect();
        // Tokens fed to the steps: step s reads fed[s].
        let mut fed = vec![first];
        let mut queued: VecDeque<(usize, usize, usize)> = VecDeque::new();
        let mut submitted = 0;
        let mut stopped = None;
        let mut slot = 0;
        while submitted < steps && queued.len() < CHAIN_DEPTH {
            let count = batch.min(steps - submitted);
            let t = Instant::now();
            self.submit_batch(&mut inputs, base, submitted, count, readbacks[slot])?;
            stats.encode += t.elapsed();
            queued.push_back((slot, submitted, count));
            submitted += count;
            slot = (slot + 1) % CHAIN_DEPTH;
        }
        'outer: while let Some((slot, start, count)) = queued.pop_front() {
            let bytes = self.session.read_async(readbacks[slot], 4 * count as u64).await?;
            // Keep the GPU busy while the sink handles this batch.
            if submitted < steps {
                let next = batch.min(steps - submitted);
                let t = Instant::now();
                self.submit_batch(&mut inputs, base, submitted, next, readbacks[slot])?;
                stats.encode += t.elapsed();
                queued.push_back((slot, submitted, next));
                submitted += next;
            }
            for (i, word) in bytes.chunks_exact(4).enumerate() {
                let token = i32::from_le_bytes(word.try_into().expect("4 bytes"));
                stats.decode_tokens += 1;
                if !sink.token(token) {
                    stopped = Some(start + i);
                    break 'outer;
                }
                fed.push(token);
            }
        }
        // Steps 0..=last ran for real: their tokens are in the cache.
        let done = stopped.map_or(steps, |s| s + 1);
        self.past = base + done;
        self.history.extend_from_slice(&fed[..done]);
        if let Some(w) = self.window {
            let keep = self.history.len().saturating_sub(w);
            self.history.drain(..keep);
        }
        Ok(())
    }

    /// Queues steps `start..start + count` (counted from the chain's first step at position
    /// `base`), each copying its token into the next step's inputs and into slot `i` of
    /// `readback`.
    fn submit_batch(
        &mut self,
        inputs: &mut HashMap<String, HostTensor>,
        base: usize,
        start: usize,
        count: usize,
        readback: crate::Readback,
    ) -> Result<()> {
        for i in 0..count {
            let s = start + i;
            let past = base + s;
            // The first step uploads the token and the window; later steps read what the
            // step before forwarded.
            let resident: &[&str] = match (s, self.window) {
                (0, _) => &[],
                (_, Some(_)) => &[TOKENS, RECENT_TOKENS],
                (_, None) => &[TOKENS],
            };
            let mut forwards = vec![
                Forward::ToInput {
                    output: NEXT_TOKEN,
                    input: TOKENS,
                    offset: 0,
                },
                Forward::ToReadback {
                    output: NEXT_TOKEN,
                    readback,
                    offset: 4 * i as u64,
                },
            ];
            if let Some(w) = self.window {
                // The drawn token takes sequence position past + 1.
                forwards.push(Forward::ToInput {
                    output: NEXT_TOKEN,
                    input: RECENT_TOKENS,
                    offset: 4 * ((past + 1) % w) as u64,
                });
                let params = self.sampling.encode((past + 1) as u32);
                let t = inputs.get_mut(SAMPLING).expect("inserted with the window");
                *t = HostTensor::from_i32(&[SAMPLING_LEN], &params);
            }
            self.session
                .submit_queued(DECODE, inputs, &[(PAST, past as i64)], resident, &forwards)?;
        }
        Ok(())
    }
}
