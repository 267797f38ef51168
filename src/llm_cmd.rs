//! `kiln compile MODEL.gguf`, `kiln generate` and the language-model form of `kiln bench`.

use anyhow::{anyhow, bail, Result};
use kiln::compiler::{self, llm, CompileOptions};
use kiln::runtime::llm::{Generator, PREFILL, TOKENS};
use kiln::runtime::{Bundle, Session, SessionOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Compiles a GGUF language model into a bundle with programs `prefill` and `decode` and a KV
/// cache of `context` tokens (the model's trained context when `None`).
pub fn compile_gguf(
    model: &Path,
    out: &Path,
    context: Option<usize>,
    opts: &CompileOptions,
) -> Result<kiln::abi::Manifest> {
    let t0 = Instant::now();
    let loaded = llm::gguf::load_gguf_llm(model, context).map_err(|e| anyhow!("{}: {e}", model.display()))?;
    log::info!(
        "pass frontend (read the GGUF model, build the graph): {:.2?}",
        t0.elapsed()
    );
    if !opts.dims.is_empty() {
        bail!("--dim does not apply to a GGUF model (use --context to size the KV cache)");
    }
    let compiled = llm::compile_llm(&loaded, opts)?;
    Ok(compiler::write_bundle(&compiled, out)?)
}

/// Parses `--prompt-ids 1,2,3`.
fn parse_ids(s: &str) -> Result<Vec<i32>> {
    s.split(',')
        .map(|t| {
            t.trim()
                .parse::<i32>()
                .map_err(|_| anyhow!("--prompt-ids: '{}' is not a token id", t.trim()))
        })
        .collect()
}

fn open(bundle_dir: &Path) -> Result<(Bundle, Session)> {
    let bundle = Bundle::load(bundle_dir)?;
    if bundle.manifest().program(PREFILL).is_none() {
        bail!(
            "{}: not a language-model bundle (it has no '{PREFILL}' program; compile a .gguf model)",
            bundle_dir.display()
        );
    }
    let session = Session::new(&bundle, &SessionOptions::default())?;
    Ok((bundle, session))
}

/// Sampling settings of `kiln generate`.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// 0: greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Nucleus threshold (1: off).
    pub top_p: f32,
    /// Seed of the random draws.
    pub seed: u64,
}

/// `kiln generate`: prefill the prompt ids, decode up to `max_tokens`, print the generated ids
/// on one line of stdout as they come, and prefill/decode tokens per second on stderr.
pub fn generate_cmd(bundle_dir: &Path, prompt_ids: &str, max_tokens: usize, sampling: &Sampling) -> Result<()> {
    if sampling.temperature > 0.0 || sampling.top_k > 0 || sampling.top_p < 1.0 {
        bail!(
            "only greedy decoding is implemented yet (on the GPU); leave out --temperature, --top-k and --top-p (seed {} unused)",
            sampling.seed
        );
    }
    let prompt = parse_ids(prompt_ids)?;
    if prompt.is_empty() {
        bail!("--prompt-ids: give at least one token id");
    }
    let (_bundle, mut session) = open(bundle_dir)?;
    let mut gen = Generator::new(&mut session)?;
    if prompt.len() >= gen.context() {
        bail!(
            "the prompt has {} tokens; the bundle's KV cache holds {} (compile with a larger --context)",
            prompt.len(),
            gen.context()
        );
    }
    let stdout = std::io::stdout();
    let mut first = true;
    let stats = gen.generate_greedy(&prompt, max_tokens, &mut |t: i32| {
        let mut out = stdout.lock();
        let _ = write!(out, "{}{t}", if first { "" } else { "," });
        let _ = out.flush();
        first = false;
        true
    })?;
    println!();
    eprintln!(
        "prefill: {} tokens in {:.1} ms ({:.1} tokens/s); decode: {} tokens in {:.1} ms ({:.1} tokens/s)",
        stats.prompt_tokens,
        stats.prefill.as_secs_f64() * 1e3,
        stats.prefill_tokens_per_s(),
        stats.decode_tokens,
        stats.decode.as_secs_f64() * 1e3,
        stats.decode_tokens_per_s()
    );
    Ok(())
}

/// `kiln bench` on a language-model bundle: a prompt of `prompt_tokens` ids, then
/// `gen_tokens` greedy decode steps (each one submission and a 4-byte readback), `iters`
/// times after a warm-up; medians on stdout.
pub fn bench_llm(bundle_dir: &Path, prompt_tokens: usize, gen_tokens: usize, iters: usize) -> Result<()> {
    let (bundle, mut session) = open(bundle_dir)?;
    let vocab = bundle
        .manifest()
        .program(PREFILL)
        .and_then(|p| p.inputs.as_ref())
        .and_then(|ins| ins.iter().find(|i| i.name == TOKENS))
        .and_then(|i| i.index_bound.as_ref())
        .map(|b| b.bound as usize)
        .unwrap_or(2)
        .max(2);
    let prompt: Vec<i32> = (0..prompt_tokens.max(1))
        .map(|i| ((i * 7919 + 1) % vocab) as i32)
        .collect();
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for it in 0..iters.max(1) + 1 {
        let mut gen = Generator::new(&mut session)?;
        if prompt.len() + gen_tokens > gen.context() {
            bail!(
                "--prompt-tokens {} + --gen-tokens {gen_tokens} exceed the bundle's KV cache of {} tokens",
                prompt.len(),
                gen.context()
            );
        }
        let stats = gen.generate_greedy(&prompt, gen_tokens + 1, &mut |_| true)?;
        if it > 0 {
            prefill.push(stats.prefill);
            decode.push(stats.decode / stats.decode_tokens.max(1) as u32);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (p, d) = (median(&mut prefill), median(&mut decode));
    println!(
        "prefill {} tokens: {:.3} ms ({:.1} tokens/s); decode: {:.3} ms/token ({:.1} tokens/s) over {gen_tokens} tokens; median of {}",
        prompt.len(),
        p.as_secs_f64() * 1e3,
        prompt.len() as f64 / p.as_secs_f64(),
        d.as_secs_f64() * 1e3,
        1.0 / d.as_secs_f64().max(1e-12),
        prefill.len()
    );
    Ok(())
}
