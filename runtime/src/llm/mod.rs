//! Language-model generation on a [`Session`] whose bundle has programs `prefill` and
//! `decode` (see docs/llm.md for the contract).
//!
//! A [`Generator`] tracks the position (`past`, the tokens in the KV cache on the GPU) and runs
//! one program per step, binding the scalar `past` and reading back only what the step needs:
//! the next token (one i32, drawn on the GPU by the bundle's sampling kernel with the
//! [`Sampling`] settings; the ArgMax when greedy) and, when asked, the logits. It works on token ids only; turning ids into text is the caller's, through a
//! [`TokenSink`], so a tokenizer plugs in without the runtime knowing it.

mod chain;
pub use chain::{CHAIN_BATCH, CHAIN_DEPTH, CHAIN_ENV};

use crate::error::{Result, RuntimeError};
use crate::{HostTensor, Session};
use std::collections::HashMap;
use web_time::{Duration, Instant};

/// Token-id input of both programs (`[n]`, i32).
pub const TOKENS: &str = "tokens";
/// Logits output (`[1, vocab]`, f32) of the last position.
pub const LOGITS: &str = "logits";
/// Next-token output (`[1]`, i32), drawn on the GPU.
pub const NEXT_TOKEN: &str = "next_token";
/// Sampling-parameter input (`[SAMPLING_LEN]` i32, [`Sampling::encode`]).
pub const SAMPLING: &str = "sampling";
/// Recent-token input (`[window]` i32, -1 padded) that the repetition penalty applies to.
pub const RECENT_TOKENS: &str = "recent_tokens";
/// Length of the sampling-parameter input.
pub const SAMPLING_LEN: usize = 8;
/// Scalar symbol: tokens already in the KV cache.
pub const PAST: &str = "past";
/// Program over a prompt.
pub const PREFILL: &str = "prefill";
/// Program over one token.
pub const DECODE: &str = "decode";

/// How the next token is drawn (the bundle's contract, the same layout as the compiler's
/// `kiln_ir::sample::SampleParams`; the runtime does not depend on the compiler).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 is greedy (the most likely token).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: u32,
    /// Keep the smallest set of most likely tokens with probability at least `top_p` (1: all).
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of the last `window` tokens by this (1: off).
    pub repeat_penalty: f32,
    /// Seed of the draws: draw `s` of a seed is a hash of (seed, position), so a generation
    /// is reproducible.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::greedy()
    }
}

impl Sampling {
    /// Greedy decoding without penalty.
    pub fn greedy() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            seed: 0,
        }
    }

    /// Whether every draw is the most likely token (and the repetition penalty is off), so a
    /// bundle without a sampling kernel can run it.
    pub fn is_plain_greedy(&self) -> bool {
        (self.temperature <= 0.0 || self.top_k == 1) && self.repeat_penalty == 1.0
    }

    /// Checks the ranges; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RuntimeError::HostTensor(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature {} must be finite and >= 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p {} must be in (0, 1]", self.top_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad(format!("repeat penalty {} must be finite and > 0", self.repeat_penalty));
        }
        Ok(())
    }

    /// The `sampling` input for the token at position `step`: temperature (f32 bits), top-k,
    /// top-p (bits), repetition penalty (bits), seed low and high words, step, 1/temperature
    /// (bits; 0 when greedy).
    pub fn encode(&self, step: u32) -> [i32; SAMPLING_LEN] {
        let inv_t = if self.temperature > 0.0 {
            1.0 / self.temperature
        } else {
            0.0
        };
        [
            self.temperature.to_bits() as i32,
            self.top_k.min(i32::MAX as u32) as i32,
            self.top_p.to_bits() as i32,
            self.repeat_penalty.to_bits() as i32,
            self.seed as u32 as i32,
            (self.seed >> 32) as u32 as i32,
            step as i32,
            inv_t.to_bits() as i32,
        ]
    }
}

/// What one step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// The next token, drawn on the GPU (the ArgMax of the logits when greedy).
    pub next_token: i32,
    /// The last position's logits, when the step was asked for them.
    pub logits: Option<Vec<f32>>,
}

/// Receives generated tokens, e.g. to detokenize and print them.
pub trait TokenSink {
    /// Called with each generated token id; return `false` to stop generating.
    fn token(&mut self, id: i32) -> bool;
}

impl<F: FnMut(i32) -> bool> TokenSink for F {
    fn token(&mut self, id: i32) -> bool {
        self(id)
    }
}

/// Timings of one [`Generator::generate`] call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens processed by the prefill.
    pub prompt_tokens: usize,
    /// Wall time of the prefill (including reading back the first token).
    pub prefill: Duration,
    /// Tokens produced by decode steps.
    pub decode_tokens: usize,
    /// Wall time of all decode steps.
    pub decode: Duration,
    /// Host time spent recording and submitting chained decode steps (zero step by step),
    /// which the GPU overlaps with running the steps queued before.
    pub encode: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second over the decode steps.
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.decode_tokens as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// Length of the bundle's `recent_tokens` input (`None`: a bundle compiled before sampling on
/// the GPU, which has no sampling inputs).
pub fn sampling_window(session: &Session) -> Option<usize> {
    session
        .manifest()
        .program(DECODE)
        .and_then(|p| p.inputs.as_ref())
        .and_then(|ins| ins.iter().find(|i| i.name == RECENT_TOKENS))
        .and_then(|i| i.shape.first())
        .and_then(|d| d.eval(&Default::default()).ok())
        .map(|w| w as usize)
}

/// The inputs of one `prefill`/`decode` step: `tokens`, and where the bundle samples on the GPU
/// (`window` is [`sampling_window`]) the `sampling` parameters for the draw at position `step`
/// and the last `window` ids of `history` (the sequence including `tokens`), padded with -1.
pub fn step_inputs(
    tokens: &[i32],
    history: &[i32],
    window: Option<usize>,
    sampling: &Sampling,
    step: u32,
) -> HashMap<String, HostTensor> {
    let mut inputs = HashMap::from([(TOKENS.to_string(), HostTensor::from_i32(&[tokens.len()], tokens))]);
    if let Some(w) = window {
        inputs.insert(
            SAMPLING.to_string(),
            HostTensor::from_i32(&[SAMPLING_LEN], &sampling.encode(step)),
        );
        let mut recent = history[history.len().saturating_sub(w)..].to_vec();
        recent.resize(w, -1);
        inputs.insert(RECENT_TOKENS.to_string(), HostTensor::from_i32(&[w], &recent));
    }
    inputs
}

/// A generation in progress: the session holding the KV cache, and the position.
#[derive(Debug)]
pub struct Generator<'s> {
    session: &'s mut Session,
    past: usize,
    context: usize,
    sampling: Sampling,
    /// Tokens of the sequence so far, for the repetition penalty's window.
    history: Vec<i32>,
    /// Length of the `recent_tokens` input (`None`: a bundle without a sampling kernel).
    window: Option<usize>,
    /// Decode steps per readback batch of [`Generator::generate_async`] (0: step by step).
    batch: usize,
    /// Whether the bundle's decode program can feed its token back on the GPU.
    chainable: bool,
}

impl<'s> Generator<'s> {
    /// Starts at position 0 on a session of a language-model bundle (the KV cache is reset).
    pub async fn new_async(session: &'s mut Session) -> Result<Generator<'s>> {
        let m = session.manifest();
        for p in [PREFILL, DECODE] {
            if m.program(p).is_none() {
                return Err(RuntimeError::InvalidBundle(format!(
                    "bundle '{}' is not a language model: it has no program '{p}'",
                    m.model
                )));
            }
        }
        let context = m.states.first().and_then(|s| s.shape.first()).copied().unwrap_or(0) as usize;
        let window = sampling_window(session);
        let chainable = chain::chainable(session);
        session.reset_states_async().await?;
        Ok(Generator {
            session,
            past: 0,
            context,
            sampling: Sampling::greedy(),
            history: Vec::new(),
            window,
            batch: chain::default_batch(),
            chainable,
        })
    }

    /// Sets how many decode steps [`Generator::generate_async`] queues per readback of token
    /// ids (the default is [`CHAIN_BATCH`], or the [`CHAIN_ENV`] environment variable): 0 (or a
    /// bundle whose decode program cannot feed its token back on the GPU) runs the
    /// step-by-step loop, which waits for every token before recording the next step. Both
    /// produce the same tokens.
    pub fn set_decode_batch(&mut self, batch: usize) {
        self.batch = batch;
    }

    /// The decode steps per readback batch that generation will use (0: step by step).
    pub fn decode_batch(&self) -> usize {
        if self.chainable {
            self.batch
        } else {
            0
        }
    }

    /// Sets how the following tokens are drawn (greedy by default). A bundle compiled
    /// without a sampling kernel accepts only greedy settings.
    pub fn set_sampling(&mut self, sampling: Sampling) -> Result<()> {
        sampling.validate()?;
        if self.window.is_none() && !sampling.is_plain_greedy() {
            return Err(RuntimeError::InvalidBundle(format!(
                "bundle '{}' has no '{RECENT_TOKENS}' input (compiled before sampling on the GPU): only greedy decoding; recompile it",
                self.session.manifest().model
            )));
        }
        self.sampling = sampling;
        Ok(())
    }

    /// The current sampling settings.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Tokens in the KV cache.
    pub fn past(&self) -> usize {
        self.past
    }

    /// Tokens the KV cache can hold (the compiled context).
    pub fn context(&self) -> usize {
        self.context
    }

    /// Runs `tokens` (the prompt with `prefill`, one token with `decode`, chosen by length) at
    /// the current position and appends them to the cache.
    pub async fn step_async(&mut self, tokens: &[i32], want_logits: bool) -> Result<StepOutput> {
        if tokens.is_empty() {
            return Err(RuntimeError::HostTensor("a step needs at least one token".into()));
        }
        if self.past + tokens.len() > self.context {
            return Err(RuntimeError::Scalar {
                program: if tokens.len() == 1 { DECODE } else { PREFILL }.into(),
                message: format!(
                    "{} tokens after the {} already in the KV cache exceed the compiled context of {} tokens",
                    tokens.len(),
                    self.past,
                    self.context
                ),
            });
        }
        let program = if tokens.len() == 1 { DECODE } else { PREFILL };
        let mut history = self.history.clone();
        history.extend_from_slice(tokens);
        // The sampled token's position is the step counter of the draw.
        let step = (self.past + tokens.len()) as u32;
        let inputs = step_inputs(tokens, &history, self.window, &self.sampling, step);
        if let Some(w) = self.window {
            let keep = history.len().saturating_sub(w);
            history.drain(..keep);
        }
        let read: &[&str] = if want_logits {
            &[NEXT_TOKEN, LOGITS]
        } else {
            &[NEXT_TOKEN]
        };
        let outs = self
            .session
            .run_with_async(program, &inputs, &[(PAST, self.past as i64)], Some(read))
            .await?;
        self.past += tokens.len();
        self.history = history;
        let mut next_token = None;
        let mut logits = None;
        for (name, t) in outs {
            match name.as_str() {
                NEXT_TOKEN => next_token = t.to_i64().first().map(|&v| v as i32),
                LOGITS => logits = Some(t.to_f32()),
                _ => {}
            }
        }
        let next_token = next_token
            .ok_or_else(|| RuntimeError::InvalidBundle(format!("program '{program}' returned no '{NEXT_TOKEN}'")))?;
        Ok(StepOutput { next_token, logits })
    }

    /// Greedy generation ([`Generator::generate_async`] after setting greedy sampling).
    pub async fn generate_greedy_async(
        &mut self,
        prompt: &[i32],
        max_tokens: usize,
        sink: &mut dyn TokenSink,
    ) -> Result<GenerationStats> {
        self.sampling = Sampling::greedy();
        self.generate_async(prompt, max_tokens, sink).await
    }

    /// Generation with the current [`Sampling`]: prefills `prompt`, then decodes until
    /// `max_tokens` tokens were produced, the cache is full, or `sink` says stop. Only token
    /// ids are read back. Decode steps are chained ([`Generator::set_decode_batch`]): queued
    /// ahead with each token fed to the next step on the GPU, and the ids read back and handed
    /// to `sink` a batch at a time; steps queued past the token that `sink` refused are
    /// discarded, so the tokens, [`Generator::past`] and the penalty window end as in the
    /// step-by-step loop.
    pub async fn generate_async(
        &mut self,
        prompt: &[i32],
        max_tokens: usize,
        sink: &mut dyn TokenSink,
    ) -> Result<GenerationStats> {
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len(),
            ..Default::default()
        };
        if max_tokens == 0 {
            return Ok(stats);
        }
        let t0 = Instant::now();
        let mut next = self.step_async(prompt, false).await?.next_token;
        stats.prefill = t0.elapsed();
        let mut produced = 1;
        if !sink.token(next) {
            return Ok(stats);
        }
        let t1 = Instant::now();
        let steps = (max_tokens - produced).min(self.context.saturating_sub(self.past));
        if self.decode_batch() > 0 && steps > 0 {
            let r = self
                .decode_chained(next, steps, self.decode_batch(), sink, &mut stats)
                .await;
            stats.decode = t1.elapsed();
            return r.map(|()| stats);
        }
        while produced < max_tokens && self.past < self.context {
            next = self.step_async(&[next], false).await?.next_token;
            produced += 1;
            stats.decode_tokens += 1;
            if !sink.token(next) {
                break;
            }
        }
        stats.decode = t1.elapsed();
        Ok(stats)
    }
}

/// Blocking wrappers for native callers.
#[cfg(not(target_arch = "wasm32"))]
impl<'s> Generator<'s> {
    /// Blocking form of [`Generator::new_async`].
    pub fn new(session: &'s mut Session) -> Result<Generator<'s>> {
        pollster::block_on(Self::new_async(session))
    }

    /// Blocking form of [`Generator::step_async`].
    pub fn step(&mut self, tokens: &[i32], want_logits: bool) -> Result<StepOutput> {
        pollster::block_on(self.step_async(tokens, want_logits))
    }

    /// Blocking form of [`Generator::generate_async`].
    pub fn generate(&mut self, prompt: &[i32], max_tokens: usize, sink: &mut dyn TokenSink) -> Result<GenerationStats> {
        pollster::block_on(self.generate_async(prompt, max_tokens, sink))
    }

    /// Blocking form of [`Generator::generate_greedy_async`].
    pub fn generate_greedy(
        &mut self,
        prompt: &[i32],
        max_tokens: usize,
        sink: &mut dyn TokenSink,
    ) -> Result<GenerationStats> {
        pollster::block_on(self.generate_greedy_async(prompt, max_tokens, sink))
    }
}
