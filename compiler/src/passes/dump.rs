//! Text and Graphviz DOT forms of the graph and of the kernel list, for `kiln compile --dump`.

use crate::lower::KernelDraft;
use crate::CompileError;
use kiln_ir::{Graph, Op};
use kiln_schedules::Schedule;
use std::fmt::Write as _;
use std::path::Path;

fn write(dir: &Path, file: &str, text: &str) -> Result<(), CompileError> {
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(dir.join(file), text))
        .map_err(|e| CompileError::Usage(format!("--dump {}: cannot write {file}: {e}", dir.display())))
}

fn shape(g: &Graph, id: kiln_ir::NodeId) -> String {
    let t = &g.node(id).ty;
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", t.dtype, dims.join(", "))
}

/// The graph, one node per line in topological order: `%id = Op(inputs) : type  name`.
pub fn graph_text(g: &Graph) -> String {
    let mut s = String::new();
    for id in g.topo_order() {
        let n = g.node(id);
        let ins: Vec<String> = g.inputs_of(id).iter().map(|i| format!("%{}", i.index())).collect();
        let op = match &n.op {
            Op::Constant(t) if t.numel() == 1 => format!("Constant({})", t.to_f64()[0]),
            Op::Constant(_) => "Constant".to_string(),
            other => format!("{other:?}").chars().take(120).collect(),
        };
        let _ = writeln!(
            s,
            "%{} = {op}({}) : {}  {}",
            id.index(),
            ins.join(", "),
            shape(g, id),
            n.name
        );
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(s, "output {name} = %{}", id.index());
    }
    s
}

/// The graph in Graphviz DOT (constants hidden unless scalar, to keep large models readable).
pub fn graph_dot(g: &Graph) -> String {
    let mut s = String::from("digraph kiln {\n  node [shape=box, fontsize=10];\n");
    let hidden = |id| matches!(&g.node(id).op, Op::Constant(t) if t.numel() > 1);
    for id in g.topo_order() {
        if hidden(id) {
            continue;
        }
        let n = g.node(id);
        let label = format!("{}\\n{}", n.op.name(), shape(g, id)).replace('"', "'");
        let _ = writeln!(s, "  n{} [label=\"{label}\"];", id.index());
        for i in g.inputs_of(id) {
            if !hidden(i) {
                let _ = writeln!(s, "  n{} -> n{};", i.index(), id.index());
            }
        }
    }
    s.push_str("}\n");
    s
}

/// The kernel list: one line per dispatch with its body kind, fused nodes, inputs and (once
/// chosen) schedule.
pub fn kernels_text(g: &Graph, drafts: &[KernelDraft], schedules: Option<&[Schedule]>) -> String {
    let mut s = String::new();
    for (i, d) in drafts.iter().enumerate() {
        let kind = format!("{:?}", d.body)
            .split([' ', '{'])
            .next()
            .unwrap_or("?")
            .to_string();
        let ins: Vec<String> = d.inputs.iter().map(|&n| format!("%{}", n.index())).collect();
        let _ = write!(
            s,
            "k{i:03} {kind}{}{} -> %{} : {} reads ({})",
            if d.operands.is_empty() { "" } else { " +prologue" },
            if d.epilogue.is_some() { " +epilogue" } else { "" },
            d.output.index(),
            shape(g, d.output),
            ins.join(", ")
        );
        if let Some(sc) = schedules {
            let _ = write!(s, " schedule {}", sc[i]);
        }
        let _ = writeln!(s, "\n    fuses: {}", d.label.replace('+', " + "));
    }
    s
}

/// Writes the graph after `pass` as `NN-pass.txt` and `NN-pass.dot`.
pub fn dump_graph(dir: &Path, index: usize, pass: &str, g: &Graph) -> Result<(), CompileError> {
    write(dir, &format!("{index:02}-{pass}.txt"), &graph_text(g))?;
    write(dir, &format!("{index:02}-{pass}.dot"), &graph_dot(g))
}

/// Writes the kernel list after `pass` as `NN-pass.txt`.
pub fn dump_kernels(
    dir: &Path,
    index: usize,
    pass: &str,
    g: &Graph,
    drafts: &[KernelDraft],
    schedules: Option<&[Schedule]>,
) -> Result<(), CompileError> {
    write(
        dir,
        &format!("{index:02}-{pass}.txt"),
        &kernels_text(g, drafts, schedules),
    )
}
