//! The `kiln` command-line tool: compile models into WebGPU bundles, run and inspect bundles,
//! and a self-contained demo.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use kiln::compiler::{self, CompileOptions};
use kiln::convert::{rel_l2, to_host};
use kiln::npy::{output_file_name, read_npy, write_npy};
use kiln::runtime::{Bundle, HostTensor, Session, SessionOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod llm_cmd;
mod profile_cmd;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Ahead-of-time tensor compiler for WebGPU")]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or progress lines on stderr (they are also hidden when stderr is not a
    /// terminal).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a model (ONNX, or a GGUF language model) into a bundle directory.
    Compile {
        /// Model file (.onnx or .gguf).
        model: PathBuf,
        /// GGUF models: tokens the KV cache holds (default: the model's context length).
        #[arg(long)]
        context: Option<usize>,
        /// GGUF models: element type of the KV cache. `f16` (default) halves its memory and the
        /// attention's reads (keys and values are rounded to f16 when appended, as llama.cpp
        /// does; stored two per 32-bit word, so any WebGPU adapter runs it); `f32` keeps them exact.
        #[arg(long, default_value = "f16", value_parser = ["f32", "f16"])]
        kv_cache: String,
        /// GGUF models: the inputs of the q/k/v, gate/up, down and output projections with q4_0,
        /// q4_1 or q8_0 weights. `q8` rounds them to 8-bit integers per block of 32, as llama.cpp
        /// does, so decode multiplies integers by integers (faster on GPUs with an integer dot
        /// product); `f32` keeps them as computed; `auto` (default) rounds only the inputs of
        /// projections that read at least 8 MiB of such weights per token, where it pays.
        #[arg(long, default_value = "auto", value_parser = ["auto", "q8", "f32"])]
        activations: String,
        /// Output bundle directory (replaced only if compilation succeeds).
        #[arg(short, long)]
        out: PathBuf,
        /// Give a symbolic dim a fixed value, e.g. `--dim batch=1` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// 0: one kernel per op; 1: fuse elementwise chains; 2: all optimizations (default);
        /// 3: also attention as one kernel (experimental: one thread per query row, slow on large GPUs).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// Target limits profile: `webgpu-default`, `desktop`, `h200`, or a RON file.
        #[arg(long, default_value = "webgpu-default")]
        target: String,
        /// Tuning records (RON) that override the analytic default schedules.
        #[arg(long)]
        tuning: Option<PathBuf>,
        /// `f32`: every kernel computes in f32. `f16`: f32 GEMMs and the tiled quantized GEMMs
        /// (a prompt's prefill) also ship an f16 variant on cooperative matrices (tensor
        /// cores), which the runtime runs where the adapter supports it (f16 operands, f32
        /// accumulation); elsewhere the f32 kernel runs. Default: f16 for a GGUF language model
        /// (as llama.cpp computes its prompt), f32 for an ONNX model.
        #[arg(long, value_parser = ["f32", "f16"])]
        precision: Option<String>,
        /// Storage order of packed quantized weights: `rows` (default, GGUF's order) or
        /// `block-columns` (block j of every row together; experimental, for measuring).
        #[arg(long, default_value = "rows", value_parser = ["rows", "block-columns"])]
        weight_layout: String,
        /// Freeze a graph input to the value in a .npy file, `NAME=FILE.npy` (repeatable): it
        /// becomes a compile-time constant (e.g. a Reshape shape or Slice starts given as an
        /// input) and the bundle no longer has that input.
        #[arg(long = "freeze", value_name = "NAME=FILE")]
        freeze: Vec<String>,
        /// Write the graph (text and Graphviz DOT) and the kernel list after every pass into DIR.
        #[arg(long, value_name = "DIR")]
        dump: Option<PathBuf>,
        /// Dump only after this pass (specialize, rewrite, form-kernels, schedule, ...) into DIR.
        #[arg(long, num_args = 2, value_names = ["PASS", "DIR"])]
        dump_after: Vec<String>,
    },
    /// Tune the schedules of a model's matrix products and convolutions on this machine's GPU
    /// and write (or extend) a tuning database for `kiln compile --tuning`.
    Tune {
        /// Model file (.onnx, or .gguf: a language model, whose prefill and decode kernels
        /// are tuned for a 512-token prompt).
        model: PathBuf,
        /// Tuning database (RON); existing records are kept and their kernels skipped.
        #[arg(short, long)]
        out: PathBuf,
        /// Wall-clock budget in seconds for the whole run (loading included); kernels not
        /// reached keep their default schedule.
        #[arg(long, default_value_t = kiln::tune::DEFAULT_BUDGET_SECS)]
        budget: u64,
        /// Target limits profile the schedules must fit: `webgpu-default`, `desktop`, `h200`, or a RON file.
        #[arg(long, default_value = "webgpu-default")]
        target: String,
        /// A symbolic dim's value, `NAME=VALUE` (repeatable): the model is specialized as
        /// `kiln compile --dim` does, so compile with the same values to use the records.
        /// Dims left symbolic are timed at 128. Not for a GGUF model.
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// Optimization level the kernels are formed at (as for `kiln compile`).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// Timed iterations per candidate.
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// Re-tune kernels that already have a record.
        #[arg(long)]
        force: bool,
        /// GGUF models: the KV cache type the bundle will be compiled with (`kiln compile
        /// --kv-cache`), so the attention kernels' records match it.
        #[arg(long, default_value = "f16", value_parser = ["f32", "f16"])]
        kv_cache: String,
        /// GGUF models: the activations the bundle will be compiled with (`kiln compile
        /// --activations`); 8-bit inputs are other GEMV kernels with their own records.
        #[arg(long, default_value = "auto", value_parser = ["auto", "q8", "f32"])]
        activations: String,
        /// The precision the bundle will be compiled with (`kiln compile --precision`; the
        /// same default: f16 for a GGUF model, f32 for ONNX). With f16 the kernels' f16
        /// cooperative-matrix variants are tuned too, where the adapter runs them.
        #[arg(long, value_parser = ["f32", "f16"])]
        precision: Option<String>,
    },
    /// Run a bundle on the GPU with inputs from .npy files.
    Run {
        /// Bundle directory.
        bundle: PathBuf,
        /// An input, `NAME=FILE.npy` (repeatable).
        #[arg(short, long = "input", value_name = "NAME=FILE")]
        inputs: Vec<String>,
        /// Directory for the outputs (`<name>.npy`); nothing is written without it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Program to run.
        #[arg(long, default_value = "run")]
        program: String,
        /// Refuse the bundle unless its manifest has this digest (`sha256-...`, as printed by
        /// `kiln compile`); the manifest lists the sha256 of every other file.
        #[arg(long, value_name = "DIGEST")]
        integrity: Option<String>,
    },
    /// Time a bundle's program on the GPU (median of several runs).
    Bench {
        /// Bundle directory.
        bundle: PathBuf,
        /// An input, `NAME=FILE.npy` (repeatable); inputs not given are synthesized.
        #[arg(short, long = "input", value_name = "NAME=FILE")]
        inputs: Vec<String>,
        /// Value of a symbolic dim for synthesized inputs, `NAME=VALUE` (repeatable).
        #[arg(long = "dim", value_name = "NAME=VALUE")]
        dims: Vec<String>,
        /// Timed iterations (after one warm-up run).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Program to run.
        #[arg(long, default_value = "run")]
        program: String,
        /// Language-model bundles: prompt length to time the prefill with.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// Language-model bundles: decode steps to time.
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Instead of timing, profile one run on the GPU (language models: the prefill of
        /// --prompt-tokens and one decode step): each dispatch's time from timestamp queries,
        /// grouped by kernel kind and by operation, and the host's share of the wall time.
        #[arg(long)]
        profile: bool,
        /// Language-model bundles: how the timed (or profiled) steps draw tokens (greedy by default).
        #[command(flatten)]
        sampling: llm_cmd::SamplingArgs,
    },
    /// Chat with a language-model bundle on stdin/stdout, using the model's chat template
    /// (an empty line ends the conversation).
    Chat {
        /// Bundle directory (from `kiln compile MODEL.gguf`).
        bundle: PathBuf,
        /// Most tokens per reply.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        /// A system message to start the conversation with.
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        sampling: llm_cmd::SamplingArgs,
    },
    /// Generate text with a language-model bundle (streams the text, or the token ids with
    /// --ids, to stdout; prefill and decode tokens/s on stderr).
    Generate {
        /// Bundle directory (from `kiln compile MODEL.gguf`).
        bundle: PathBuf,
        /// Prompt token ids, e.g. `1,2,3`.
        #[arg(
            long,
            value_name = "IDS",
            conflicts_with = "prompt",
            required_unless_present = "prompt"
        )]
        prompt_ids: Option<String>,
        /// Prompt text, tokenized with the bundle's tokenizer.
        #[arg(long, value_name = "TEXT")]
        prompt: Option<String>,
        /// Wrap --prompt in the model's chat template as one user message.
        #[arg(long, requires = "prompt")]
        chat: bool,
        /// Print the generated token ids on one line instead of the text.
        #[arg(long)]
        ids: bool,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        #[command(flatten)]
        sampling: llm_cmd::SamplingArgs,
    },
    /// Print a summary of a bundle (or of a GGUF model file).
    Inspect {
        /// Bundle directory, or a `.gguf` file.
        bundle: PathBuf,
        /// List every dispatch with its kernel and the graph nodes fused into it.
        #[arg(long)]
        kernels: bool,
    },
    /// Run the ONNX backend node tests (made by scripts/onnx_conformance_data.py) on the GPU.
    Conformance {
        /// Directory of cases (`DIR/<case>/model.onnx` + `test_data_set_N/`).
        dir: PathBuf,
        /// Write a Markdown report here (e.g. docs/onnx-conformance.md).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Only cases whose name contains this substring.
        #[arg(long)]
        filter: Option<String>,
        /// The expected-outcome list to gate on (e.g. tests/onnx-conformance-expected.txt):
        /// exit non-zero if any case does worse than listed.
        #[arg(long, value_name = "FILE")]
        expected: Option<PathBuf>,
        /// Rewrite the --expected list with this run's outcomes (accepting improvements, and
        /// any regressions: review the diff).
        #[arg(long, requires = "expected")]
        update_expected: bool,
        /// Worker processes (0: one per core).
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        /// Time limit per case, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Internal: serve cases to a parent runner over stdin/stdout.
        #[arg(long, hide = true)]
        worker: bool,
    },
    /// Compile the built-in demo model, run it on the GPU and compare with the interpreter.
    Demo {
        /// Batch size to run (at least 1).
        #[arg(long, default_value_t = 2, value_parser = parse_batch)]
        batch: usize,
        /// Where to write the demo bundle (default: a temporary directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `--batch` of `kiln demo`: a positive integer.
fn parse_batch(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("the batch size must be at least 1".into()),
        Ok(b) => Ok(b),
        Err(_) => Err(format!("'{s}' is not a positive integer")),
    }
}

fn main() -> ExitCode {
    // Adapter enumeration makes libwayland probe for a display; without XDG_RUNTIME_DIR it
    // prints a spurious "error:" line on headless machines. Point it at the temp dir instead
    // (it then finds no compositor socket and stays quiet). Done before any thread starts.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    // The conformance runner writes cases to worker processes through pipes and must survive a
    // worker that crashed (its write fails instead); everything else ends quietly on SIGPIPE.
    if !matches!(cli.command, Command::Conformance { worker: false, .. }) {
        restore_default_sigpipe();
    }
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(format!(
        "kiln={level},kiln_compiler={level},kiln_runtime={level},wgpu=error,naga=error"
    )))
    .format_timestamp(None)
    .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Set by `-q`: progress bars stay hidden.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where progress bars draw: stderr (indicatif hides them when it is not a terminal), or
/// nowhere with `-q`.
fn progress_target() -> indicatif::ProgressDrawTarget {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe (`kiln inspect b | head -1`) fails and
/// `println!` panics. Restoring the default action ends the process quietly instead, as for
/// other command-line tools (the shell sees status 141). Called before any thread starts.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called from main before any thread starts; SIG_DFL is a valid action for SIGPIPE
    // and no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Compile {
            model,
            context,
            kv_cache,
            activations,
            out,
            dims,
            opt_level,
            target,
            tuning,
            precision,
            weight_layout,
            freeze,
            dump,
            dump_after,
        } => {
            let dump = match (dump, &dump_after[..]) {
                (Some(dir), []) => Some(compiler::passes::DumpOptions { dir, after: None }),
                (None, [pass, dir]) => Some(compiler::passes::DumpOptions {
                    dir: dir.into(),
                    after: Some(pass.clone()),
                }),
                (None, []) => None,
                _ => bail!("give either --dump DIR or --dump-after PASS DIR"),
            };
            let cache = llm_cmd::CacheArgs {
                context,
                kv_cache: kiln::ir::DType::from_name(&kv_cache).expect("clap checks the value"),
                activations: compiler::llm::Activations::from_name(&activations).expect("clap checks the value"),
            };
            compile_cmd(
                &model,
                cache,
                &out,
                &dims,
                &freeze,
                opt_level,
                &target,
                tuning.as_deref(),
                precision
                    .map(|p| p.parse().map_err(|e: String| anyhow!(e)))
                    .transpose()?,
                weight_layout.parse().map_err(|e: String| anyhow!(e))?,
                dump,
            )
        }
        Command::Run {
            bundle,
            inputs,
            out,
            program,
            integrity,
        } => run_cmd(&bundle, &inputs, out.as_deref(), &program, integrity.as_deref()),
        Command::Tune {
            model,
            out,
            budget,
            target,
            dims,
            opt_level,
            iters,
            force,
            kv_cache,
            activations,
            precision,
        } => {
            let cache = llm_cmd::CacheArgs {
                context: None,
                kv_cache: kiln::ir::DType::from_name(&kv_cache).expect("clap checks the value"),
                activations: compiler::llm::Activations::from_name(&activations).expect("clap checks the value"),
            };
            let precision = precision
                .map(|p| p.parse().map_err(|e: String| anyhow!(e)))
                .transpose()?;
            tune_cmd(
                &model, &out, budget, &target, &dims, opt_level, iters, force, cache, precision,
            )
        }
        Command::Inspect { bundle, kernels } => inspect_cmd(&bundle, kernels),
        Command::Bench {
            bundle,
            inputs,
            dims,
            iters,
            program,
            prompt_tokens,
            gen_tokens,
            profile,
            sampling,
        } => {
            let is_llm = Bundle::load(&bundle)?
                .manifest()
                .program(kiln::runtime::llm::PREFILL)
                .is_some();
            let sampling = sampling.to_sampling()?;
            if is_llm && profile {
                llm_cmd::profile_llm(&bundle, prompt_tokens, &sampling)
            } else if is_llm {
                llm_cmd::bench_llm(&bundle, prompt_tokens, gen_tokens, iters.min(5), &sampling)
            } else if sampling != kiln::runtime::llm::Sampling::greedy() {
                bail!(
                    "{}: --temperature, --top-k, --top-p, --repeat-penalty and --seed apply to language-model bundles only",
                    bundle.display()
                )
            } else {
                bench_cmd(&bundle, &inputs, &dims, iters, &program, profile)
            }
        }
        Command::Generate {
            bundle,
            prompt_ids,
            prompt,
            chat,
            ids,
            max_tokens,
            sampling,
        } => {
            let prompt = match (prompt, prompt_ids) {
                (Some(text), _) => llm_cmd::Prompt::Text { text, chat },
                (None, Some(ids)) => llm_cmd::Prompt::Ids(ids),
                (None, None) => anyhow::bail!("give --prompt TEXT or --prompt-ids IDS"),
            };
            llm_cmd::generate_cmd(&bundle, &prompt, max_tokens, ids, &sampling.to_sampling()?)
        }
        Command::Chat {
            bundle,
            max_tokens,
            system,
            sampling,
        } => llm_cmd::chat_cmd(&bundle, max_tokens, system.as_deref(), &sampling.to_sampling()?),
        Command::Conformance { worker: true, .. } => kiln::conformance::worker_main(),
        Command::Conformance {
            dir,
            report,
            filter,
            expected,
            update_expected,
            jobs,
            timeout,
            worker: false,
        } => {
            let command_line = std::iter::once("kiln".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            let timeout = std::time::Duration::from_secs(timeout);
            let worker_args = vec![
                "conformance".to_string(),
                dir.display().to_string(),
                "--worker".to_string(),
            ];
            kiln::conformance::run_cli(&kiln::conformance::Options {
                quiet: QUIET.load(std::sync::atomic::Ordering::Relaxed),
                dir,
                filter,
                report,
                expected,
                update_expected,
                jobs,
                timeout,
                worker_args,
                command_line,
            })
        }
        Command::Demo { batch, out } => demo_cmd(batch, out),
    }
}

/// Parses `NAME=VALUE` dim assignments; a name given twice is an error.
fn parse_dims(dims: &[String]) -> Result<kiln::ir::DimBindings> {
    let mut b = kiln::ir::DimBindings::new();
    for d in dims {
        let (name, value) = d
            .split_once('=')
            .ok_or_else(|| anyhow!("--dim '{d}': expected NAME=VALUE"))?;
        let v: i64 = value
            .trim()
            .parse()
            .map_err(|_| anyhow!("--dim '{d}': '{value}' is not an integer"))?;
        if v < 0 {
            bail!("--dim '{d}': a dim cannot be negative");
        }
        if let Some(prev) = b.insert(name.trim().to_string(), v) {
            bail!("--dim '{}' is given more than once ({prev} and {v})", name.trim());
        }
    }
    Ok(b)
}

/// Reads `NAME=FILE.npy` freeze values as IR tensors.
fn parse_freeze(specs: &[String]) -> Result<HashMap<String, kiln::ir::Tensor>> {
    let mut values = HashMap::new();
    for spec in specs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--freeze '{spec}': expected NAME=FILE.npy"))?;
        let t = read_npy(Path::new(file)).with_context(|| format!("--freeze '{name}'"))?;
        let t = kiln::convert::to_ir(&t).map_err(|e| anyhow!("--freeze '{name}': {file}: {e}"))?;
        if values.insert(name.to_string(), t).is_some() {
            bail!("--freeze: input '{name}' is given more than once");
        }
    }
    Ok(values)
}

/// `kiln compile MODEL.gguf`'s precision without `--precision`: the prefill's quantized GEMMs
/// also ship their f16 cooperative-matrix variant. Measured on the H200 against f32 in the
/// same runs (docs/performance.md, fifth to seventh sessions' merged main, 512-token prompts):
/// 1.43x to 1.50x the f32 prefill at 1.7B, 1.17x to 1.33x at 360M, 0.98x to 1.04x at 135M,
/// decode within 1% (its GEMVs have no variant); with it prefill was at or above llama.cpp's
/// at all three sizes.
const GGUF_PRECISION: compiler::Precision = compiler::Precision::F16;

#[allow(clippy::too_many_arguments)]
fn compile_cmd(
    model: &Path,
    cache: llm_cmd::CacheArgs,
    out: &Path,
    dims: &[String],
    freeze: &[String],
    opt_level: u8,
    target: &str,
    tuning: Option<&Path>,
    precision: Option<compiler::Precision>,
    quant_layout: compiler::QuantLayout,
    dump: Option<compiler::passes::DumpOptions>,
) -> Result<()> {
    let t0 = Instant::now();
    let dims = parse_dims(dims)?;
    let frozen = parse_freeze(freeze)?;
    let target = kiln::schedules::DeviceLimits::from_name_or_file(target).map_err(|e| anyhow!(e))?;
    let tuning = tuning
        .map(|p| kiln::schedules::tuning::TuningDb::load(p).map_err(|e| anyhow!(e)))
        .transpose()?;
    let ext = model
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if cache.context.is_some() && ext != "gguf" {
        bail!("--context applies to GGUF language models only");
    }
    let loaded = match ext.as_str() {
        "onnx" => compiler::frontend::onnx::load_onnx_frozen(model, &dims, &frozen)?,
        "gguf" => {
            let opts = CompileOptions {
                opt_level,
                dims,
                target,
                tuning,
                dump,
                precision: precision.unwrap_or(GGUF_PRECISION),
                quant_layout,
            };
            let manifest = llm_cmd::compile_gguf(model, out, cache, &opts)?;
            let dispatches: Vec<String> = manifest
                .programs
                .iter()
                .map(|p| format!("{} {}", p.dispatches.len(), p.name))
                .collect();
            println!(
                "compiled {} -> {}: {} kernels, dispatches: {}, {} weights, KV cache {} MiB, in {:.2?}",
                model.display(),
                out.display(),
                manifest.kernels.len(),
                dispatches.join(", "),
                manifest.weights.len(),
                // The state buffers' own sizes (an f16 cache packs two values per word).
                manifest
                    .states
                    .iter()
                    .filter_map(|s| manifest.buffers[s.buffer].size.as_const())
                    .sum::<i64>()
                    >> 20,
                t0.elapsed()
            );
            println!("integrity: {}", manifest.integrity());
            return Ok(());
        }
        _ => bail!(
            "{}: unknown model format (expected a .onnx or .gguf file)",
            model.display()
        ),
    };
    log::info!("pass frontend (load and lower the ONNX model): {:.2?}", t0.elapsed());
    let opts = CompileOptions {
        opt_level,
        dims: dims.clone(),
        target,
        tuning,
        dump,
        precision: precision.unwrap_or_default(),
        quant_layout,
    };
    // The ONNX frontend already substituted --dim values; the graph has no such symbols left.
    let opts = CompileOptions {
        dims: Default::default(),
        ..opts
    };
    let bar = spinner(format!("compiling {}", model.display()));
    let compiled = compiler::compile(&loaded, &opts);
    bar.finish_and_clear();
    let compiled = compiled?;
    let t_write = Instant::now();
    let manifest = compiler::write_bundle(&compiled, out)?;
    log::info!("pass write-bundle: {:.2?}", t_write.elapsed());
    let dispatches: usize = manifest.programs.iter().map(|p| p.dispatches.len()).sum();
    println!(
        "compiled {} -> {}: {} kernels, {} dispatches, {} weights, in {:.2?}",
        model.display(),
        out.display(),
        manifest.kernels.len(),
        dispatches,
        manifest.weights.len(),
        t0.elapsed()
    );
    println!("integrity: {}", manifest.integrity());
    Ok(())
}

/// Prompt tokens (and filled cache rows) a language model's kernels are timed at by `kiln tune`.
const LLM_TIMING_TOKENS: i64 = 512;

#[allow(clippy::too_many_arguments)]
fn tune_cmd(
    model: &Path,
    out: &Path,
    budget: u64,
    target: &str,
    dims: &[String],
    opt_level: u8,
    iters: usize,
    force: bool,
    cache: llm_cmd::CacheArgs,
    precision: Option<compiler::Precision>,
) -> Result<()> {
    use kiln::schedules::tuning::TuningDb;
    use kiln::tune::{Rejection, TuneOptions};
    let t0 = Instant::now();
    let opts = TuneOptions {
        target: kiln::schedules::DeviceLimits::from_name_or_file(target).map_err(|e| anyhow!(e))?,
        budget: std::time::Duration::from_secs(budget),
        started: t0,
        dims: parse_dims(dims)?,
        iters: iters.max(1),
        force,
        ..Default::default()
    };
    let ext = model
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    // An ONNX model's records are checked in the whole model after tuning (kiln::tune_check).
    let mut onnx: Option<(compiler::Model, TuneOptions)> = None;
    let jobs = match ext.as_deref() {
        Some("onnx") => {
            let loaded = compiler::frontend::onnx::load_onnx_frozen(model, &Default::default(), &HashMap::new())?;
            let opts = TuneOptions {
                precision: precision.unwrap_or_default(),
                ..opts.clone()
            };
            let jobs = kiln::tune::jobs(&loaded, &opts, opt_level);
            onnx = Some((loaded, opts));
            jobs
        }
        Some("gguf") => {
            if !dims.is_empty() {
                bail!("--dim does not apply to a GGUF model (its prompt is timed at {LLM_TIMING_TOKENS} tokens)");
            }
            let (_, loaded) = llm_cmd::load_gguf(model, cache)?;
            let opts = TuneOptions {
                default_dim: LLM_TIMING_TOKENS,
                precision: precision.unwrap_or(GGUF_PRECISION),
                ..opts.clone()
            };
            kiln::tune::jobs_for_programs(&loaded, &compiler::llm::programs(), &opts, opt_level)
        }
        _ => bail!(
            "{}: unknown model format (expected a .onnx or .gguf file)",
            model.display()
        ),
    }
    .map_err(|e| anyhow!("{}: {e}", model.display()))?;
    let mut db = if out.exists() {
        TuningDb::load(out).map_err(|e| anyhow!(e))?
    } else {
        TuningDb::default()
    };
    let todo: Vec<_> = jobs
        .iter()
        .filter(|j| force || !db.records.contains_key(&j.key))
        .collect();
    // An ONNX model's check in the whole model gets the last part of the budget.
    let (opts, then) = match &onnx {
        Some(_) => (
            TuneOptions {
                budget: opts.budget.mul_f64(1.0 - kiln::tune_check::CHECK_SHARE),
                ..opts
            },
            ", then checking the new records in the whole model",
        ),
        None => (opts, ""),
    };
    eprintln!(
        "{}: {} tunable kernels, {} already in {}, tuning {} within {:.0} s{then}",
        model.display(),
        jobs.len(),
        jobs.len() - todo.len(),
        out.display(),
        todo.len(),
        opts.budget.as_secs_f64()
    );
    let runtime = kiln::runtime::Runtime::new()?;
    eprintln!("adapter: {}", runtime.adapter_info().name);
    // Variants the adapter cannot run are left out (the tuner skips them too).
    let (todo, unrunnable): (Vec<_>, Vec<_>) = todo
        .into_iter()
        .partition(|j| kiln::tune::unrunnable(j, &runtime).is_none());
    if let Some(why) = unrunnable.first().and_then(|j| kiln::tune::unrunnable(j, &runtime)) {
        eprintln!(
            "{} cooperative-matrix variant kernel(s) not tuned here: {why}",
            unrunnable.len()
        );
    }
    let total: usize = todo.iter().map(|j| j.candidates.len()).sum();
    let bar = indicatif::ProgressBar::with_draw_target(Some(total as u64), progress_target()).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} candidates, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut rejected, mut timed) = (0usize, 0usize);
    let reports = kiln::tune::tune(
        &jobs,
        &mut db,
        &runtime,
        &opts,
        |job, r| {
            bar.inc(1);
            bar.set_message(job.key.clone());
            match &r.outcome {
                Ok(t) => {
                    timed += 1;
                    log::debug!("{}: {} {:.1} us", job.key, r.schedule, t.as_secs_f64() * 1e6);
                }
                Err(e) => {
                    rejected += 1;
                    let why = match e {
                        Rejection::Compile(m) => format!("does not compile: {m}"),
                        Rejection::Mismatch { error } => {
                            format!("disagrees with the interpreter (rel. L2 {error:.1e})")
                        }
                        Rejection::Run(m) => format!("failed on the device: {m}"),
                    };
                    log::info!("{}: {} rejected, {why}", job.key, r.schedule);
                }
            }
        },
        |_, db| Ok(db.save(out)?),
    )?;
    bar.finish_and_clear();
    for r in &reports {
        let default = r.candidates.first().and_then(|c| c.outcome.as_ref().ok());
        match (&r.record, default) {
            (Some(rec), Some(d)) => println!(
                "{}: {} {:.1} us (default {} {:.1} us, {:.2}x)",
                r.key,
                rec.schedule,
                rec.micros,
                r.candidates[0].schedule,
                d.as_secs_f64() * 1e6,
                d.as_secs_f64() * 1e6 / rec.micros
            ),
            (Some(rec), None) => println!("{}: {} {:.1} us", r.key, rec.schedule, rec.micros),
            (None, _) => println!("{}: no candidate passed", r.key),
        }
    }
    // Each new record with the kernel's analytic default (the first candidate).
    let new_keys: Vec<(String, kiln::schedules::Schedule)> = reports
        .iter()
        .filter(|r| r.record.is_some())
        .filter_map(|r| r.candidates.first().map(|c| (r.key.clone(), c.schedule)))
        .collect();
    if let (Some((loaded, copts)), false) = (&onnx, new_keys.is_empty()) {
        check_records_in_model(loaded, copts, opt_level, &mut db, &new_keys, &runtime, out)?;
    }
    println!(
        "tuned {} kernels ({timed} candidates timed, {rejected} rejected) in {:.1?}; wrote {}",
        reports.len(),
        t0.elapsed(),
        out.display()
    );
    Ok(())
}

/// `kiln tune`'s last step for an ONNX model: the new records checked in the whole model
/// ([`kiln::tune_check`]); a record whose kernels ran slower there than the default's becomes
/// the default in the database at `out`. Where the adapter cannot time dispatches the records
/// stay, with a warning.
fn check_records_in_model(
    model: &compiler::Model,
    opts: &kiln::tune::TuneOptions,
    opt_level: u8,
    db: &mut kiln::schedules::tuning::TuningDb,
    keys: &[(String, kiln::schedules::Schedule)],
    runtime: &kiln::runtime::Runtime,
    out: &Path,
) -> Result<()> {
    let spinner = indicatif::ProgressBar::with_draw_target(None, progress_target());
    spinner.set_message(format!("checking {} tuned kernels in the whole model", keys.len()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let checks = kiln::tune_check::check_in_model(
        model,
        opts,
        opt_level,
        db,
        keys,
        runtime,
        kiln::tune_check::CHECK_ROUNDS,
    );
    spinner.finish_and_clear();
    let checks = match checks {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: the records were not checked in the whole model: {e}");
            return Ok(());
        }
    };
    for c in &checks {
        println!(
            "{}: in the model {:.1} us tuned, {:.1} us default: {}",
            c.key,
            c.tuned.as_secs_f64() * 1e6,
            c.untuned.as_secs_f64() * 1e6,
            if c.kept {
                "kept"
            } else {
                "the default is recorded instead"
            }
        );
    }
    db.save(out).map_err(|e| anyhow!(e))?;
    Ok(())
}

fn run_cmd(
    bundle_dir: &Path,
    inputs: &[String],
    out: Option<&Path>,
    program: &str,
    integrity: Option<&str>,
) -> Result<()> {
    let bundle = match integrity {
        Some(digest) => Bundle::load_with_integrity(bundle_dir, digest)?,
        None => Bundle::load(bundle_dir)?,
    };
    let mut given = HashMap::new();
    for spec in inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--input '{spec}': expected NAME=FILE.npy"))?;
        let t = read_npy(Path::new(file)).with_context(|| format!("input '{name}'"))?;
        if given.insert(name.to_string(), t).is_some() {
            bail!("input '{name}' is given more than once");
        }
    }
    if out.is_some() {
        // Distinct outputs must not map to the same file: one would silently overwrite the other.
        let mut files: HashMap<String, &str> = HashMap::new();
        for o in &bundle.manifest().outputs {
            let file = output_file_name(&o.name);
            if let Some(prev) = files.insert(file.clone(), &o.name) {
                bail!("outputs '{prev}' and '{}' would both be written to '{file}' in --out; rename one of them in the model", o.name);
            }
        }
    }
    let mut session = open_session(&bundle)?;
    log::info!(
        "adapter: {} ({:?})",
        session.adapter_info().name,
        session.adapter_info().backend
    );
    let t0 = Instant::now();
    let outputs = session.run(program, &given)?;
    log::info!("run '{program}' took {:.2?}", t0.elapsed());
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (name, t) in &outputs {
        println!("{name}: {} {:?}", t.dtype.name(), t.shape);
        if let Some(dir) = out {
            write_npy(&dir.join(output_file_name(name)), t).with_context(|| format!("output '{name}'"))?;
        }
    }
    Ok(())
}

/// A synthesized input: floats uniform in [0, 1) (deterministic), integers and bools 1.
/// Its size was checked by [`check_sizes`] before.
fn bench_cmd(
    bundle_dir: &Path,
    inputs: &[String],
    dims: &[String],
    iters: usize,
    program: &str,
    profile: bool,
) -> Result<()> {
    let bundle = Bundle::load(bundle_dir)?;
    let m = bundle.manifest();
    let mut dims = parse_dims(dims)?;
    for name in dims.keys() {
        if !m.symbols.contains(name) {
            bail!(
                "--dim {name}: the bundle has no symbolic dim '{name}' (its symbolic dims: {})",
                if m.symbols.is_empty() {
                    "none".to_string()
                } else {
                    m.symbols.join(", ")
                }
            );
        }
    }
    let mut given = HashMap::new();
    for spec in inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--input '{spec}': expected NAME=FILE.npy"))?;
        let t = read_npy(Path::new(file)).with_context(|| format!("input '{name}'"))?;
        if given.insert(name.to_string(), t).is_some() {
            bail!("input '{name}' is given more than once");
        }
    }
    bind_given_dims(m, &given, &mut dims)?;
    let t0 = Instant::now();
    let mut session = open_session(&bundle)?;
    let setup = t0.elapsed();
    // Sizes first: a huge --dim must be refused before anything is allocated.
    check_sizes(m, &dims, session.limits())?;
    for spec in &m.inputs {
        if !given.contains_key(&spec.name) {
            given.insert(
                spec.name.clone(),
                kiln::convert::synthetic_input(spec, &dims).map_err(|e| anyhow!(e))?,
            );
        }
    }
    if profile {
        return profile_cmd::profile_program(&mut session, program, &given);
    }
    let iters = iters.max(1);
    let bar = indicatif::ProgressBar::with_draw_target(Some(iters as u64), progress_target());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} timed runs of '{msg}' (after a warm-up run) [{elapsed}]",
    ) {
        bar.set_style(style);
    }
    bar.set_message(program.to_string());
    let t = session.bench_with_progress(program, &given, iters, &mut |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let t = t?;
    let info = session.adapter_info();
    println!("device: {} ({:?})", info.name, info.backend);
    println!(
        "bundle: {} ({} kernels, {} dispatches)",
        bundle_dir.display(),
        m.kernels.len(),
        m.program(program).map_or(0, |p| p.dispatches.len())
    );
    println!("session setup: {:.2} ms", setup.as_secs_f64() * 1e3);
    println!(
        "program '{program}': median {:.3} ms, min {:.3} ms, mean {:.3} ms over {} runs",
        t.median().as_secs_f64() * 1e3,
        t.min().as_secs_f64() * 1e3,
        t.mean().as_secs_f64() * 1e3,
        t.times.len()
    );
    Ok(())
}

/// Adds the symbols that given inputs bind (bare symbolic dims of their shapes) to `dims`; a
/// `--dim` that contradicts an input is an error naming both.
fn bind_given_dims(
    m: &kiln::abi::Manifest,
    given: &HashMap<String, HostTensor>,
    dims: &mut kiln::ir::DimBindings,
) -> Result<()> {
    let from_dim_flag: std::collections::HashSet<String> = dims.keys().cloned().collect();
    for spec in &m.inputs {
        let Some(t) = given.get(&spec.name) else { continue };
        for (j, (e, &d)) in spec.shape.iter().zip(&t.shape).enumerate() {
            let kiln::abi::SizeExpr::Sym(s) = e else { continue };
            match dims.get(s) {
                Some(&v) if v != d as i64 => {
                    let source = if from_dim_flag.contains(s) {
                        format!("--dim {s}={v}")
                    } else {
                        format!("another input, which has {s} = {v}")
                    };
                    bail!(
                        "--input '{}' has {s} = {d} (dim {j} of shape {:?}), which contradicts {source}",
                        spec.name,
                        t.shape
                    );
                }
                Some(_) => {}
                None => {
                    dims.insert(s.clone(), d as i64);
                }
            }
        }
    }
    Ok(())
}

/// Evaluates every input, output and intermediate buffer size for `dims` and refuses, before
/// anything is allocated, sizes beyond what the device can bind or 64-bit arithmetic holds.
fn check_sizes(
    m: &kiln::abi::Manifest,
    dims: &kiln::ir::DimBindings,
    limits: &kiln::runtime::wgpu::Limits,
) -> Result<()> {
    let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    let dims_str = || {
        let mut v: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.sort();
        v.join(", ")
    };
    for (i, b) in m.buffers.iter().enumerate() {
        let Ok(size) = b.size.eval(dims) else { continue };
        if size < 0 || size as u64 > max {
            bail!(
                "with {} buffer {i} '{}' would need {size} bytes ('{}'), more than the device allows ({max} bytes, maxStorageBufferBindingSize / maxBufferSize)",
                dims_str(),
                b.label,
                b.size
            );
        }
    }
    for spec in &m.inputs {
        let mut elems: i64 = 1;
        for d in &spec.shape {
            let Ok(v) = d.eval(dims) else { break };
            elems = elems.checked_mul(v).ok_or_else(|| {
                anyhow!(
                    "input '{}' has more elements than 64-bit integers hold with {}",
                    spec.name,
                    dims_str()
                )
            })?;
        }
        let bytes = (elems as u64).saturating_mul(spec.dtype.host_size() as u64);
        if bytes > max {
            bail!(
                "with {} input '{}' would need {bytes} bytes, more than the device allows ({max} bytes)",
                dims_str(),
                spec.name
            );
        }
    }
    Ok(())
}

fn inspect_cmd(bundle_dir: &Path, list_kernels: bool) -> Result<()> {
    if bundle_dir.extension().is_some_and(|e| e == "gguf") {
        print!("{}", kiln::compiler::frontend::gguf::Gguf::open(bundle_dir)?.summary());
        return Ok(());
    }
    let bundle = Bundle::load(bundle_dir)?;
    let m = bundle.manifest();
    println!("bundle: {}", bundle_dir.display());
    println!("model: {}", m.model);
    println!("format: v{} ({})", m.format_version, m.compiler_version);
    println!("target: {}", m.requirements.target);
    let shape = |s: &[kiln::abi::SizeExpr]| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    println!(
        "symbols: {}",
        if m.symbols.is_empty() {
            "none".into()
        } else {
            m.symbols.join(", ")
        }
    );
    for i in &m.inputs {
        // An f16 input that only GEMMs read keeps f16 storage (two values per 32-bit word).
        let pairs = if i.storage == kiln::abi::ElemType::F16 {
            " (f16 pairs on the GPU)"
        } else {
            ""
        };
        println!("input: {} {}[{}]{pairs}", i.name, i.dtype.name(), shape(&i.shape));
    }
    for o in &m.outputs {
        println!("output: {} {}[{}]", o.name, o.dtype.name(), shape(&o.shape));
    }
    println!("kernels: {}", m.kernels.len());
    if m.programs.len() == 1 {
        println!("dispatches: {}", m.programs[0].dispatches.len());
    } else {
        for (pi, p) in m.programs.iter().enumerate() {
            println!("dispatches: {} (program {})", p.dispatches.len(), p.name);
            if p.inputs.is_some() || !p.scalars.is_empty() {
                for i in m.program_inputs(pi) {
                    println!("  input: {} {}[{}]", i.name, i.dtype.name(), shape(&i.shape));
                }
                for o in m.program_outputs(pi) {
                    println!("  output: {} {}[{}]", o.name, o.dtype.name(), shape(&o.shape));
                }
                if !p.scalars.is_empty() {
                    println!("  scalars: {}", p.scalars.join(", "));
                }
            }
        }
    }
    for st in &m.states {
        println!("state: {} {}{:?}", st.name, st.storage.name(), st.shape);
    }
    let weight_bytes: u64 = m
        .weights
        .iter()
        .map(|w| w.shape.iter().product::<u64>() * w.dtype.host_size() as u64)
        .sum();
    println!("weights: {} tensors, {} bytes", m.weights.len(), weight_bytes);
    println!("buffers: {}", m.buffers.len());
    let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
    for k in &m.kernels {
        *by_kind.entry(k.schedule.split('(').next().unwrap_or("?")).or_default() += 1;
    }
    for (k, n) in by_kind {
        println!("  {k} kernels: {n}");
    }
    for (name, v) in &m.requirements.limits {
        println!("  requires {name} >= {v}");
    }
    if list_kernels {
        for p in &m.programs {
            for (i, d) in p.dispatches.iter().enumerate() {
                let k = &m.kernels[d.kernel];
                let ops: Vec<&str> = d.label.split('+').collect();
                println!("{}[{i}] {} {}: {} op(s)", p.name, k.name, k.schedule, ops.len());
                for op in ops {
                    println!("    {op}");
                }
            }
        }
    }
    Ok(())
}

/// A progress spinner on stderr with the elapsed time, for work the runtime does in one call
/// (pipelines and weight upload, timed runs). Hidden when stderr is not a terminal.
fn spinner(msg: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(progress_target());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar.set_message(msg);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Opens a session (device, pipelines, weight upload) under a spinner naming the weight size.
fn open_session(bundle: &Bundle) -> Result<Session> {
    let m = bundle.manifest();
    let bytes: u64 = (0..m.weights.len()).map(|w| bundle.weight_data(w).len() as u64).sum();
    let bar = spinner(format!(
        "creating {} pipelines and uploading {} weights ({:.1} MiB)",
        m.kernels.len(),
        m.weights.len(),
        bytes as f64 / (1 << 20) as f64
    ));
    let session = Session::new(bundle, &SessionOptions::default());
    bar.finish_and_clear();
    Ok(session?)
}

/// A directory removed when dropped (on success and on every error path), unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn demo_cmd(batch: usize, out: Option<PathBuf>) -> Result<()> {
    let model = kiln::demo::demo_model()?;
    let keep = out.is_some();
    let dir = out.unwrap_or_else(|| std::env::temp_dir().join(format!("kiln-demo-{}", std::process::id())));
    let guard = TempDir {
        path: dir.clone(),
        keep,
    };
    let t0 = Instant::now();
    let manifest = compiler::compile_to_dir(&model, &CompileOptions::default(), &dir)?;
    println!(
        "compiled the built-in model '{}' ({} graph nodes) -> {} kernels, {} dispatches in {:.2?}",
        model.name,
        model.graph.len(),
        manifest.kernels.len(),
        manifest.programs[0].dispatches.len(),
        t0.elapsed()
    );
    let bundle = Bundle::load(&dir)?;
    let mut session = Session::new(&bundle, &SessionOptions::default()).context(
        "no GPU run possible; on Debian/Ubuntu install Mesa's software Vulkan driver with `apt-get install mesa-vulkan-drivers`",
    )?;
    let batch_dim = i64::try_from(batch).map_err(|_| anyhow!("--batch {batch} is too large"))?;
    check_sizes(
        bundle.manifest(),
        &kiln::ir::DimBindings::from([("batch".to_string(), batch_dim)]),
        session.limits(),
    )
    .with_context(|| format!("--batch {batch}"))?;
    let x = kiln::demo::demo_input(batch);
    let info = session.adapter_info();
    println!("device: {} ({:?})", info.name, info.backend);
    let inputs = HashMap::from([("x".to_string(), to_host(&x, kiln::abi::ElemType::F32))]);
    let t1 = Instant::now();
    let gpu: HashMap<String, HostTensor> = session.run("run", &inputs)?.into_iter().collect();
    let gpu_time = t1.elapsed();
    let reference = kiln::ir::interp::evaluate(&model.graph, &HashMap::from([("x".to_string(), x)]))?;
    println!("batch {batch}: GPU run {gpu_time:.2?}");
    for name in ["pooled", "y"] {
        let g = gpu[name].to_f32();
        let r = reference[name].to_f32();
        let err = rel_l2(&g, &r);
        println!(
            "{name} {:?}: relative L2 error vs interpreter = {err:.2e}",
            gpu[name].shape
        );
        println!("  gpu        : {}", preview(&g));
        println!("  interpreter: {}", preview(&r));
        if err > 1e-4 {
            bail!("GPU result for '{name}' differs from the interpreter (relative L2 error {err:.2e} > 1e-4)");
        }
    }
    drop(guard);
    Ok(())
}

fn preview(v: &[f32]) -> String {
    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.5}")).collect();
    format!("[{}{}]", head.join(", "), if v.len() > 6 { ", ..." } else { "" })
}
