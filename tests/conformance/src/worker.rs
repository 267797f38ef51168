//! Worker processes and the pool that feeds them: each case runs in a worker (the current
//! executable started with [`Options::worker_args`], serving [`worker_main`]) that reads case
//! directories on stdin and answers one line per case on stdout. Each case is wrapped in
//! [`std::panic::catch_unwind`]; a worker that dies (abort, segfault, stack overflow) or exceeds
//! the per-case time limit is killed and replaced, and the case is counted as an error. So no
//! case can crash or hang the runner. Each worker picks its adapter once and gives every case's
//! session a clone of that [`Runtime`] (each session still creates its own device).

use crate::case::{discover, Case};
use crate::outcome::{CaseResult, Counts, Outcome, Phases, Summary};
use crate::run::{one_line, run_case, PANIC_LOCATION, TMP_PREFIX};
use crate::Options;
use anyhow::{anyhow, bail, Context, Result};
use kiln_runtime::Runtime;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of every protocol line a worker writes on stdout.
const TAG: &str = "@@kiln-conformance";
/// Separates the frozen input names of a `pass-frozen` protocol line.
const NAME_SEP: &str = "\u{1f}";

// Worker process

fn sanitize(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// The worker loop (behind `kiln conformance DIR --worker`): announces the device, then reads
/// `<case dir>\t<op>` lines on stdin and answers each with one result line on stdout.
pub fn worker_main() -> Result<()> {
    // Quiet panics: the message reaches the result line through catch_unwind; keep the location.
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_LOCATION.with(|l| *l.borrow_mut() = loc);
    }));
    let stdout = std::io::stdout();
    // One adapter for the worker's life; each case's session gets a clone (and its own device).
    let runtime = Runtime::new();
    let device = match &runtime {
        Ok(r) => {
            let i = r.adapter_info();
            format!(
                "{} ({}, driver {} {})",
                i.name,
                i.backend.to_str(),
                i.driver,
                i.driver_info
            )
        }
        Err(e) => format!("none: {}", one_line(&e.to_string(), 500)),
    };
    let runtime = runtime.ok();
    writeln!(stdout.lock(), "{TAG}-ready\t{}", sanitize(&device))?;
    stdout.lock().flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Some((dir, op)) = line.split_once('\t') else {
            continue;
        };
        let (outcome, p) = run_case(Path::new(dir), op, runtime.as_ref());
        let (kind, op, msg) = match &outcome {
            Outcome::Pass => ("pass", String::new(), String::new()),
            Outcome::PassFrozen(names) => ("pass-frozen", String::new(), names.join(NAME_SEP)),
            Outcome::Fail(m) => ("fail", String::new(), m.clone()),
            Outcome::Unsupported { op, reason } => ("unsupported", op.clone(), reason.clone()),
            Outcome::Error(m) => ("error", String::new(), m.clone()),
            Outcome::OutOfScope(m) => ("out-of-scope", String::new(), m.clone()),
        };
        let us = |d: Duration| d.as_micros().to_string();
        let mut out = stdout.lock();
        writeln!(
            out,
            "{TAG}\t{kind}\t{}\t{}\t{}\t{}\t{}\t{}",
            sanitize(&op),
            us(p.load),
            us(p.compile),
            us(p.session),
            us(p.run),
            sanitize(&msg)
        )?;
        out.flush()?;
    }
    Ok(())
}

fn parse_reply(line: &str) -> Option<(Outcome, Phases)> {
    let mut f = line.splitn(8, '\t');
    if f.next()? != TAG {
        return None;
    }
    let kind = f.next()?;
    let op = f.next()?.to_string();
    let mut d = || f.next().and_then(|s| s.parse::<u64>().ok()).map(Duration::from_micros);
    let phases = Phases {
        load: d()?,
        compile: d()?,
        session: d()?,
        run: d()?,
    };
    let msg = f.next().unwrap_or("").to_string();
    let outcome = match kind {
        "pass" => Outcome::Pass,
        "pass-frozen" => Outcome::PassFrozen(msg.split(NAME_SEP).map(String::from).collect()),
        "fail" => Outcome::Fail(msg),
        "unsupported" => Outcome::Unsupported { op, reason: msg },
        "out-of-scope" => Outcome::OutOfScope(msg),
        _ => Outcome::Error(msg),
    };
    Some((outcome, phases))
}

enum Event {
    Line(String),
    Eof,
}

/// A worker process as the runner sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Event>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

enum Trouble {
    Timeout,
    Died(String),
}

impl Worker {
    /// Starts the current executable with `args` (which make it run [`worker_main`]) and waits
    /// for its device line.
    fn spawn(args: &[String]) -> Result<(Worker, String)> {
        let exe = std::env::current_exe().context("locating the current executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a conformance worker process")?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) if l.starts_with(TAG) => {
                        if tx.send(Event::Line(l)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(Event::Eof);
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Ok(mut t) = tail.lock() {
                    t.push_back(line);
                    if t.len() > 20 {
                        t.pop_front();
                    }
                }
            }
        });
        let mut w = Worker {
            child,
            stdin,
            rx,
            stderr_tail,
        };
        match w.rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Event::Line(l)) if l.starts_with(&format!("{TAG}-ready\t")) => {
                let device = l.split_once('\t').map(|x| x.1.to_string()).unwrap_or_default();
                Ok((w, device))
            }
            _ => {
                let why = w.death_note();
                w.kill();
                bail!("a conformance worker did not start: {why}")
            }
        }
    }

    /// Runs one case; `Err` if the worker timed out or died (it must then be replaced).
    fn run(&mut self, case: &Case, timeout: Duration) -> std::result::Result<(Outcome, Phases), Trouble> {
        let line = format!("{}\t{}\n", case.dir.display(), sanitize(&case.op));
        if self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            return Err(Trouble::Died(self.death_note()));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Event::Line(l)) => {
                parse_reply(&l).ok_or_else(|| Trouble::Died(format!("unreadable reply '{}'", one_line(&l, 200))))
            }
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => Err(Trouble::Died(self.death_note())),
            Err(RecvTimeoutError::Timeout) => Err(Trouble::Timeout),
        }
    }

    /// Why the worker died: its exit status and the last line it wrote on stderr.
    fn death_note(&mut self) -> String {
        // Give the process a moment to finish dying so its status is known.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = match status {
            Some(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
                    _ => s.to_string(),
                }
            }
            None => "stopped answering".into(),
        };
        std::thread::sleep(Duration::from_millis(50)); // let the stderr reader catch up
        let last = self
            .stderr_tail
            .lock()
            .ok()
            .and_then(|t| t.iter().rev().find(|l| !l.trim().is_empty()).cloned())
            .map(|l| format!("; last stderr line: {}", one_line(&l, 200)))
            .unwrap_or_default();
        format!("{status}{last}")
    }

    /// Ends the worker and removes the bundle directories it may have left behind.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let prefix = format!("{}-{}-", TMP_PREFIX, self.child.id());
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The runner

/// Runs every case of `opts.dir` (matching the filter) and returns the results.
pub fn run_suite(opts: &Options) -> Result<Summary> {
    let t0 = Instant::now();
    let cases = discover(&opts.dir, opts.filter.as_deref())?;
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        opts.jobs
    };
    let plain: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].scope.is_ok()).collect();
    let jobs = jobs.clamp(1, plain.len().max(1));

    let mut results: Vec<Option<CaseResult>> = cases
        .iter()
        .map(|c| match &c.scope {
            Ok(()) => None,
            Err(why) => Some(CaseResult {
                case: c.clone(),
                outcome: Outcome::OutOfScope(why.clone()),
                phases: Phases::default(),
            }),
        })
        .collect();

    let bar = progress_bar(plain.len() as u64);
    if opts.quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let queue = Mutex::new(plain.iter().copied().collect::<VecDeque<usize>>());
    let done: Mutex<Vec<(usize, Outcome, Phases)>> = Mutex::new(Vec::new());
    let counts = Mutex::new(Counts::default());
    let device: Mutex<Option<String>> = Mutex::new(None);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut worker: Option<Worker> = None;
                loop {
                    if fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        break;
                    };
                    let case = &cases[i];
                    if worker.is_none() {
                        match Worker::spawn(&opts.worker_args) {
                            Ok((w, dev)) => {
                                if let Some(why) = dev.strip_prefix("none: ") {
                                    w.kill();
                                    *fatal.lock().expect("lock") =
                                        Some(anyhow!("no GPU adapter for the conformance run: {why}"));
                                    break;
                                }
                                device.lock().expect("lock").get_or_insert(dev);
                                worker = Some(w);
                            }
                            Err(e) => {
                                *fatal.lock().expect("lock") = Some(e);
                                break;
                            }
                        }
                    }
                    let w = worker.as_mut().expect("started above");
                    let started = Instant::now();
                    let (outcome, phases) = match w.run(case, opts.timeout) {
                        Ok(r) => r,
                        Err(trouble) => {
                            let w = worker.take().expect("present");
                            let msg = match trouble {
                                Trouble::Timeout => {
                                    format!("timeout: no result after {:.0?}", opts.timeout)
                                }
                                Trouble::Died(why) => {
                                    format!("crash: the worker process died ({why})")
                                }
                            };
                            w.kill();
                            let run = started.elapsed();
                            (
                                Outcome::Error(msg),
                                Phases {
                                    run,
                                    ..Phases::default()
                                },
                            )
                        }
                    };
                    if let Ok(mut c) = counts.lock() {
                        c.add(&outcome);
                        bar.set_message(format!(
                            "pass {} pass-frozen {} fail {} unsupported {} error {}",
                            c.pass, c.pass_frozen, c.fail, c.unsupported, c.error
                        ));
                    }
                    bar.inc(1);
                    if bar.is_hidden() && !opts.quiet {
                        let pos = bar.position();
                        let len = bar.length().unwrap_or(0);
                        if pos.is_multiple_of(100) || pos == len {
                            eprintln!(
                                "conformance: {pos}/{len} cases, {:.0?} ({})",
                                t0.elapsed(),
                                bar.message()
                            );
                        }
                    }
                    done.lock().expect("lock").push((i, outcome, phases));
                }
                if let Some(w) = worker {
                    w.kill();
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = fatal.into_inner().expect("lock") {
        return Err(e);
    }
    for (i, outcome, phases) in done.into_inner().expect("lock") {
        results[i] = Some(CaseResult {
            case: cases[i].clone(),
            outcome,
            phases,
        });
    }
    let results: Vec<CaseResult> = results.into_iter().map(|r| r.expect("every case ran")).collect();
    let onnx_version = std::fs::read_to_string(opts.dir.join("ONNX_VERSION"))
        .ok()
        .map(|s| s.trim().to_string());
    Ok(Summary {
        results,
        device: device
            .into_inner()
            .expect("lock")
            .unwrap_or_else(|| "none (no plain case ran)".into()),
        wall: t0.elapsed(),
        jobs,
        onnx_version,
    })
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} eta {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_reply_round_trips() {
        let line = format!("{TAG}\tunsupported\tConv\t1\t2\t3\t4\tno lowering");
        let (o, p) = parse_reply(&line).unwrap();
        assert_eq!(
            o,
            Outcome::Unsupported {
                op: "Conv".into(),
                reason: "no lowering".into()
            }
        );
        assert_eq!(p.total(), Duration::from_micros(10));
        assert!(parse_reply("noise").is_none());
        let line = format!("{TAG}\tpass-frozen\t\t1\t2\t3\t4\tshape{NAME_SEP}axes, b");
        assert_eq!(
            parse_reply(&line).unwrap().0,
            Outcome::PassFrozen(vec!["shape".into(), "axes, b".into()])
        );
    }
}
