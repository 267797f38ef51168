//! `kiln compile MODEL.gguf`, `kiln generate` and the language-model form of `kiln bench`.

use anyhow::{anyhow, bail, Result};
use kiln::compiler::frontend::gguf as llm_gguf;
use kiln::compiler::{self, llm, CompileOptions, Model};
use kiln::runtime::llm::{Generator, Sampling, PREFILL, TOKENS};
use kiln::runtime::text::{ChatTemplate, Message, StreamDecoder, Tokenizer, TokenizerModel, TokenizerSpec};
use kiln::runtime::{Bundle, Session, SessionOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a language model's KV cache and projection inputs are built (`kiln compile --context
/// --kv-cache --activations`).
#[derive(Clone, Copy, Debug)]
pub struct CacheArgs {
    /// Tokens the cache holds (the model's trained context when `None`).
    pub context: Option<usize>,
    /// Element type of the cache (f32 or f16).
    pub kv_cache: kiln::ir::DType,
    /// The numerics of the projections' inputs ([`llm::Activations`]).
    pub activations: llm::Activations,
}

impl Default for CacheArgs {
    /// The model's trained context, the default cache type ([`llm::DEFAULT_KV_CACHE`]) and
    /// activations ([`llm::DEFAULT_ACTIVATIONS`]).
    fn default() -> Self {
        CacheArgs {
            context: None,
            kv_cache: llm::DEFAULT_KV_CACHE,
            activations: llm::DEFAULT_ACTIVATIONS,
        }
    }
}

/// Reads a GGUF language model and builds its graph (with a KV cache as `cache` says).
pub fn load_gguf(model: &Path, cache: CacheArgs) -> Result<(llm_gguf::Gguf, Model)> {
    let gguf = llm_gguf::Gguf::open(model).map_err(|e| anyhow!("{}: {e}", model.display()))?;
    let name = model
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    let loaded = llm::gguf::config_from_gguf(&gguf, &name, cache.context)
        .and_then(|mut config| {
            config.kv_cache = cache.kv_cache;
            config.activations = cache.activations;
            llm::build(&config, &mut llm::gguf::GgufWeights::new(&gguf))
        })
        .map_err(|e| anyhow!("{}: {e}", model.display()))?;
    Ok((gguf, loaded))
}

/// Compiles a GGUF language model into a bundle with programs `prefill` and `decode` and a KV
/// cache as `cache` says.
pub fn compile_gguf(model: &Path, out: &Path, cache: CacheArgs, opts: &CompileOptions) -> Result<kiln::abi::Manifest> {
    let t0 = Instant::now();
    let (gguf, loaded) = load_gguf(model, cache)?;
    log::info!(
        "pass frontend (read the GGUF model, build the graph): {:.2?}",
        t0.elapsed()
    );
    if !opts.dims.is_empty() {
        bail!("--dim does not apply to a GGUF model (use --context to size the KV cache)");
    }
    let mut compiled = llm::compile_llm(&loaded, opts)?;
    if let Some(spec) = tokenizer_spec(&gguf).map_err(|e| anyhow!("{}: tokenizer metadata: {e}", model.display()))? {
        // Checked now, so a bundle never carries a tokenizer the runtime cannot build.
        Tokenizer::from_spec(&spec).map_err(|e| anyhow!("{}: tokenizer: {e}", model.display()))?;
        compiled
            .assets
            .push((TOKENIZER_FILE.into(), spec.to_json().into_bytes()));
    }
    Ok(compiler::write_bundle(&compiled, out)?)
}

/// The bundle file holding a language model's tokenizer ([`TokenizerSpec`] as JSON).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The tokenizer stored in a GGUF file's `tokenizer.*` metadata, or `None` if it has none.
fn tokenizer_spec(g: &llm_gguf::Gguf) -> Result<Option<TokenizerSpec>> {
    let Ok(model) = g.get_str("tokenizer.ggml.model") else {
        return Ok(None);
    };
    let tokens = g
        .get_str_array("tokenizer.ggml.tokens")?
        .into_iter()
        .map(String::from)
        .collect();
    let mut spec = TokenizerSpec::new(TokenizerModel::from_gguf_name(model)?, tokens);
    let opt_u32 = |k: &str| g.get(k).map(|_| g.get_u32(k)).transpose();
    let opt_bool = |k: &str| g.get(k).map(|_| g.get_bool(k)).transpose();
    spec.pre = g
        .get("tokenizer.ggml.pre")
        .map(|_| g.get_str("tokenizer.ggml.pre").map(String::from))
        .transpose()?;
    if g.get("tokenizer.ggml.scores").is_some() {
        spec.scores = g.get_f32_array("tokenizer.ggml.scores")?;
    }
    if g.get("tokenizer.ggml.token_type").is_some() {
        spec.token_type = g.get_i32_array("tokenizer.ggml.token_type")?;
    }
    if g.get("tokenizer.ggml.merges").is_some() {
        spec.merges = g
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .map(String::from)
            .collect();
    }
    spec.bos_token_id = opt_u32("tokenizer.ggml.bos_token_id")?;
    spec.eos_token_id = opt_u32("tokenizer.ggml.eos_token_id")?;
    spec.unknown_token_id = opt_u32("tokenizer.ggml.unknown_token_id")?;
    spec.padding_token_id = opt_u32("tokenizer.ggml.padding_token_id")?;
    spec.add_bos_token = opt_bool("tokenizer.ggml.add_bos_token")?;
    spec.add_space_prefix = opt_bool("tokenizer.ggml.add_space_prefix")?;
    spec.chat_template = g
        .get("tokenizer.chat_template")
        .map(|_| g.get_str("tokenizer.chat_template").map(String::from))
        .transpose()?;
    Ok(Some(spec))
}

/// The tokenizer of a language-model bundle (an error naming the bundle if it has none).
fn bundle_tokenizer(bundle: &Bundle, dir: &Path) -> Result<(TokenizerSpec, Tokenizer)> {
    let bytes = bundle.asset(TOKENIZER_FILE).ok_or_else(|| {
        anyhow!(
            "{}: the bundle has no {TOKENIZER_FILE} (its GGUF had no tokenizer metadata); use --prompt-ids",
            dir.display()
        )
    })?;
    let json = std::str::from_utf8(bytes).map_err(|e| anyhow!("{}: {TOKENIZER_FILE}: {e}", dir.display()))?;
    let spec = TokenizerSpec::from_json(json).map_err(|e| anyhow!("{}: {TOKENIZER_FILE}: {e}", dir.display()))?;
    let tok = Tokenizer::from_spec(&spec).map_err(|e| anyhow!("{}: {TOKENIZER_FILE}: {e}", dir.display()))?;
    Ok((spec, tok))
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

/// Sampling options of `kiln generate`, `kiln chat` and `kiln bench` (greedy by default). Tokens are drawn
/// on the GPU by the bundle's sampling kernel; only the chosen id is read back.
#[derive(Clone, Debug, clap::Args)]
pub struct SamplingArgs {
    /// Sampling temperature (0: greedy, the most likely token).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample from the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Nucleus sampling: the smallest set of most likely tokens with this probability (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Divide the logits of the last 64 tokens by this (multiply when negative; 1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Seed of the random draws (the same seed repeats a generation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The runtime's settings, with ranges checked.
    pub fn to_sampling(&self) -> Result<Sampling> {
        let s = Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
        };
        s.validate().map_err(|e| anyhow!("sampling options: {e}"))?;
        Ok(s)
    }
}

/// What `kiln generate` starts from.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Token ids (`--prompt-ids 1,2,3`).
    Ids(String),
    /// Text, tokenized with the bundle's tokenizer (`--prompt TEXT`); with `chat`, wrapped in
    /// the model's chat template as one user message.
    Text {
        /// The text.
        text: String,
        /// Apply the chat template.
        chat: bool,
    },
}

/// `kiln generate`: prefill the prompt, decode up to `max_tokens` (stopping at the end-of-text
/// token when the bundle has a tokenizer), stream the text (or, with `print_ids`, the ids on
/// one line) to stdout, and print prefill/decode tokens per second on stderr.
pub fn generate_cmd(
    bundle_dir: &Path,
    prompt: &Prompt,
    max_tokens: usize,
    print_ids: bool,
    sampling: &Sampling,
) -> Result<()> {
    let (bundle, mut session) = open(bundle_dir)?;
    let tokenizer = match prompt {
        Prompt::Text { .. } => Some(bundle_tokenizer(&bundle, bundle_dir)?),
        Prompt::Ids(_) => bundle_tokenizer(&bundle, bundle_dir).ok(),
    };
    let ids = match prompt {
        Prompt::Ids(s) => parse_ids(s)?,
        Prompt::Text { text, chat } => {
            let (spec, tok) = tokenizer.as_ref().expect("loaded above");
            let text = if *chat {
                ChatTemplate::new(spec)?.render(&[Message::new("user", text.as_str())], true)?
            } else {
                text.clone()
            };
            tok.encode(&text, tok.add_bos())?
                .into_iter()
                .map(|t| t as i32)
                .collect()
        }
    };
    if ids.is_empty() {
        bail!("the prompt is empty: give at least one token");
    }
    let print_text = !print_ids && tokenizer.is_some();
    let (stats, _) = run_generation(
        &mut session,
        sampling,
        &ids,
        max_tokens,
        tokenizer.as_ref().map(|t| &t.1),
        print_text,
        print_ids,
        "prompt",
    )?;
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

/// Prefills `ids` on a fresh KV cache and decodes with `sampling`, streaming text and/or ids to stdout;
/// stops at the tokenizer's end-of-text token. Returns the statistics and the generated ids.
/// `what` names the prompt in the error for one longer than the KV cache.
#[allow(clippy::too_many_arguments)]
fn run_generation(
    session: &mut Session,
    sampling: &Sampling,
    ids: &[i32],
    max_tokens: usize,
    tok: Option<&Tokenizer>,
    print_text: bool,
    print_ids: bool,
    what: &str,
) -> Result<(kiln::runtime::llm::GenerationStats, Vec<u32>)> {
    let mut gen = Generator::new(session)?;
    gen.set_sampling(*sampling)?;
    if ids.len() >= gen.context() {
        bail!(
            "the {what} has {} tokens; the bundle's KV cache holds {} (compile with a larger --context)",
            ids.len(),
            gen.context()
        );
    }
    let mut generated = Vec::new();
    let eos = tok.and_then(|t| t.eos_id());
    let mut stream = tok.map(|t| StreamDecoder::new(t, true));
    let stdout = std::io::stdout();
    let mut first = true;
    let stats = gen.generate(ids, max_tokens, &mut |t: i32| {
        if eos == Some(t as u32) {
            return false;
        }
        generated.push(t as u32);
        let mut out = stdout.lock();
        if print_ids {
            let _ = write!(out, "{}{t}", if first { "" } else { "," });
        }
        if print_text {
            if let Some(s) = stream.as_mut() {
                if let Ok(text) = s.push(t as u32) {
                    let _ = write!(out, "{text}");
                }
            }
        }
        let _ = out.flush();
        first = false;
        true
    })?;
    if let (true, Some(s)) = (print_text, stream) {
        print!("{}", s.finish());
    }
    println!();
    Ok((stats, generated))
}

/// `kiln chat`: an interactive conversation on stdin/stdout with the model's chat template.
/// Each turn renders the whole conversation and prefills it on a fresh KV cache (simple and
/// exact; the cache is not reused across turns yet). An empty line or end of input ends it.
pub fn chat_cmd(bundle_dir: &Path, max_tokens: usize, system: Option<&str>, sampling: &Sampling) -> Result<()> {
    let (bundle, mut session) = open(bundle_dir)?;
    let (spec, tok) = bundle_tokenizer(&bundle, bundle_dir)?;
    let template = ChatTemplate::new(&spec)?;
    let mut messages: Vec<Message> = system.map(|s| vec![Message::new("system", s)]).unwrap_or_default();
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        messages.push(Message::new("user", line.trim_end()));
        let prompt = template.render(&messages, true)?;
        let ids: Vec<i32> = tok
            .encode(&prompt, tok.add_bos())?
            .into_iter()
            .map(|t| t as i32)
            .collect();
        let (_, reply) = run_generation(
            &mut session,
            sampling,
            &ids,
            max_tokens,
            Some(&tok),
            true,
            false,
            "conversation",
        )?;
        messages.push(Message::new("assistant", tok.decode(&reply, true)?));
    }
}

/// `kiln bench --profile` on a language-model bundle: the prefill of a `prompt_tokens`-id
/// prompt (the same ids as [`bench_llm`]) and one decode step after it, drawing with `sampling`.
pub fn profile_llm(bundle_dir: &Path, prompt_tokens: usize, sampling: &Sampling) -> Result<()> {
    let (bundle, mut session) = open(bundle_dir)?;
    let prompt = bench_prompt(&bundle, prompt_tokens);
    crate::profile_cmd::profile_llm(&mut session, &prompt, sampling)
}

/// The prompt `kiln bench` times: `n` ids spread over the vocabulary.
fn bench_prompt(bundle: &Bundle, n: usize) -> Vec<i32> {
    let vocab = bundle
        .manifest()
        .program(PREFILL)
        .and_then(|p| p.inputs.as_ref())
        .and_then(|ins| ins.iter().find(|i| i.name == TOKENS))
        .and_then(|i| i.index_bound.as_ref())
        .map(|b| b.bound as usize)
        .unwrap_or(2)
        .max(2);
    (0..n.max(1)).map(|i| ((i * 7919 + 1) % vocab) as i32).collect()
}

/// `kiln bench` on a language-model bundle: a prompt of `prompt_tokens` ids, then
/// `gen_tokens` decode steps drawn with `sampling` (chained unless `KILN_DECODE_BATCH=0`:
/// queued ahead, ids read back in batches), `iters` times after a warm-up; medians on stdout.
pub fn bench_llm(
    bundle_dir: &Path,
    prompt_tokens: usize,
    gen_tokens: usize,
    iters: usize,
    sampling: &Sampling,
) -> Result<()> {
    let (bundle, mut session) = open(bundle_dir)?;
    let prompt = bench_prompt(&bundle, prompt_tokens);
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut encode = Vec::new();
    let mut batch = 0;
    for it in 0..iters.max(1) + 1 {
        let mut gen = Generator::new(&mut session)?;
        batch = gen.decode_batch();
        if prompt.len() + gen_tokens > gen.context() {
            bail!(
                "--prompt-tokens {} + --gen-tokens {gen_tokens} exceed the bundle's KV cache of {} tokens",
                prompt.len(),
                gen.context()
            );
        }
        gen.set_sampling(*sampling)?;
        let stats = gen.generate(&prompt, gen_tokens + 1, &mut |_| true)?;
        if it > 0 {
            prefill.push(stats.prefill);
            decode.push(stats.decode / stats.decode_tokens.max(1) as u32);
            encode.push(stats.encode / stats.decode_tokens.max(1) as u32);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (p, d, e) = (median(&mut prefill), median(&mut decode), median(&mut encode));
    let mem = session.memory_report();
    let mode = if batch > 0 {
        format!(
            "chained in batches of {batch}, host encode {:.3} ms/token",
            e.as_secs_f64() * 1e3
        )
    } else {
        "step by step".to_string()
    };
    println!(
        "prefill {} tokens: {:.3} ms ({:.1} tokens/s); decode: {:.3} ms/token ({:.1} tokens/s) over {gen_tokens} tokens ({mode}{}); median of {}",
        prompt.len(),
        p.as_secs_f64() * 1e3,
        prompt.len() as f64 / p.as_secs_f64(),
        d.as_secs_f64() * 1e3,
        1.0 / d.as_secs_f64().max(1e-12),
        if sampling.is_plain_greedy() {
            String::new()
        } else {
            format!(
                ", sampling: temperature {}, top-k {}, top-p {}, repeat penalty {}",
                sampling.temperature, sampling.top_k, sampling.top_p, sampling.repeat_penalty
            )
        },
        prefill.len()
    );
    println!("memory: {mem}");
    Ok(())
}
