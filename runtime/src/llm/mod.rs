//! Language-model generation on a [`Session`] whose bundle has programs `prefill` and
//! `decode` (see docs/llm.md for the contract).
//!
//! A [`Generator`] tracks the position (`past`, the tokens in the KV cache on the GPU) and runs
//! one program per step, binding the scalar `past` and reading back only what the step needs:
//! the greedy next token (one i32, the ArgMax computed on the GPU) and, when asked, the
//! logits. It works on token ids only; turning ids into text is the caller's, through a
//! [`TokenSink`], so a tokenizer plugs in without the runtime knowing it.

use crate::error::{Result, RuntimeError};
use crate::{HostTensor, Session};
use std::collections::HashMap;
use web_time::{Duration, Instant};

/// Token-id input of both programs (`[n]`, i32).
pub const TOKENS: &str = "tokens";
/// Logits output (`[1, vocab]`, f32) of the last position.
pub const LOGITS: &str = "logits";
/// Greedy next-token output (`[1]`, i32).
pub const NEXT_TOKEN: &str = "next_token";
/// Scalar symbol: tokens already in the KV cache.
pub const PAST: &str = "past";
/// Program over a prompt.
pub const PREFILL: &str = "prefill";
/// Program over one token.
pub const DECODE: &str = "decode";

/// What one step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// The greedy next token (ArgMax of the logits, computed on the GPU).
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

/// Timings of one [`Generator::generate_greedy`] call.
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

/// A generation in progress: the session holding the KV cache, and the position.
#[derive(Debug)]
pub struct Generator<'s> {
    session: &'s mut Session,
    past: usize,
    context: usize,
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
        session.reset_states_async().await?;
        Ok(Generator {
            session,
            past: 0,
            context,
        })
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
        let inputs = HashMap::from([(TOKENS.to_string(), HostTensor::from_i32(&[tokens.len()], tokens))]);
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

    /// Greedy generation: prefills `prompt`, then decodes until `max_tokens` tokens were
    /// produced, the cache is full, or `sink` says stop. Each token goes to `sink` as soon as
    /// it is known.
    pub async fn generate_greedy_async(
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
