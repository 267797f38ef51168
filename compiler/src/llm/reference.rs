//! The reference generation loop on the CPU interpreter: the oracle for GPU generation.
//!
//! It runs the same graph the bundle was compiled from, step by step, carrying the KV cache
//! (the graph's states) between steps exactly as the GPU session does: a prefill over the
//! prompt, then one decode step per generated token. The sampling inputs are built as the
//! runtime's `Generator` builds them: the parameters with the step counter set to the
//! position of the sampled token (`past + n`), and the last [`REPEAT_WINDOW`] tokens of the
//! sequence (prompt and generated), -1 padded.

use super::{LlmError, LOGITS, NEXT_TOKEN, PAST, RECENT_TOKENS, REPEAT_WINDOW, SAMPLING, TOKENS};
use kiln_ir::sample::SampleParams;
use kiln_ir::{DimBindings, Graph, Tensor};
use std::collections::HashMap;

/// What one step computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Logits of the last position (`vocab` values).
    pub logits: Vec<f32>,
    /// The token the graph drew from them (the ArgMax when greedy).
    pub next_token: i32,
}

/// A generation in progress on the interpreter: the graph, the KV cache, the position.
#[derive(Debug)]
pub struct Reference<'g> {
    graph: &'g Graph,
    states: HashMap<String, Tensor>,
    past: usize,
    sampling: SampleParams,
    history: Vec<i32>,
}

/// The recent-token input: the last [`REPEAT_WINDOW`] ids of `history`, -1 padded.
pub fn recent_window(history: &[i32]) -> Vec<i32> {
    let start = history.len().saturating_sub(REPEAT_WINDOW);
    let mut w = history[start..].to_vec();
    w.resize(REPEAT_WINDOW, -1);
    w
}

impl<'g> Reference<'g> {
    /// Starts with an empty cache (zeros, as a fresh GPU session), greedy.
    pub fn new(graph: &'g Graph) -> Reference<'g> {
        Reference::with_sampling(graph, SampleParams::greedy())
    }

    /// Starts with an empty cache and the given sampling settings.
    pub fn with_sampling(graph: &'g Graph, sampling: SampleParams) -> Reference<'g> {
        Reference {
            graph,
            states: HashMap::new(),
            past: 0,
            sampling,
            history: Vec::new(),
        }
    }

    /// Tokens already in the cache.
    pub fn past(&self) -> usize {
        self.past
    }

    /// Runs `tokens` at positions `past ..` (a prefill for several, a decode step for one)
    /// and appends them to the cache.
    pub fn step(&mut self, tokens: &[i32]) -> Result<Step, LlmError> {
        self.history.extend_from_slice(tokens);
        let step = (self.past + tokens.len()) as u32;
        let inputs: HashMap<String, Tensor> = [
            (TOKENS.to_string(), Tensor::i32(vec![tokens.len()], tokens.to_vec())),
            (
                SAMPLING.to_string(),
                Tensor::i32(vec![kiln_ir::sample::PARAMS_LEN], self.sampling.encode(step).to_vec()),
            ),
            (
                RECENT_TOKENS.to_string(),
                Tensor::i32(vec![REPEAT_WINDOW], recent_window(&self.history)),
            ),
        ]
        .into();
        let scalars: DimBindings = [(PAST.to_string(), self.past as i64)].into_iter().collect();
        let out = kiln_ir::interp::evaluate_with(self.graph, &inputs, &scalars, &mut self.states)?;
        self.past += tokens.len();
        let logits = out[LOGITS].to_f32();
        let next_token = out[NEXT_TOKEN].to_f64()[0] as i32;
        Ok(Step { logits, next_token })
    }

    /// Generation with this reference's sampling settings: prefill `prompt`, then feed each
    /// chosen token back for `max_new` tokens in all; returns every step (the first is the
    /// prefill's).
    pub fn generate(&mut self, prompt: &[i32], max_new: usize) -> Result<Vec<Step>, LlmError> {
        let mut steps = Vec::with_capacity(max_new);
        if max_new == 0 {
            return Ok(steps);
        }
        let mut s = self.step(prompt)?;
        while steps.len() + 1 < max_new {
            let next = s.next_token;
            steps.push(s);
            s = self.step(&[next])?;
        }
        steps.push(s);
        Ok(steps)
    }

    /// Greedy generation ([`Reference::generate`] with greedy settings).
    pub fn greedy(&mut self, prompt: &[i32], max_new: usize) -> Result<Vec<Step>, LlmError> {
        self.sampling = SampleParams::greedy();
        self.generate(prompt, max_new)
    }
}
