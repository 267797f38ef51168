#!/usr/bin/env python3
"""Materialize the ONNX backend node tests offline, for `kiln conformance`.

The `onnx` PyPI package (install with `pip install "onnx==1.23.*"`) generates its backend node
tests in Python (`onnx.backend.test.case.node.collect_testcases()`); the wheel does not ship the
`backend/test/data/node` files. This script writes every case in the layout of the ONNX repo's
test data, which `kiln conformance DIR` reads:

    DIR/<case_name>/model.onnx
    DIR/<case_name>/tolerance.txt                      (the case's rtol and atol)
    DIR/<case_name>/test_data_set_<N>/input_<K>.pb    (TensorProto, or SequenceProto /
    DIR/<case_name>/test_data_set_<N>/output_<K>.pb    OptionalProto / MapProto for such values)

Usage: python3 scripts/onnx_conformance_data.py [DIR] [--filter SUBSTR] [--clean]
       (DIR defaults to tests/onnx-node in the repository, which git ignores), then
       cargo run --release -- conformance tests/onnx-node --expected tests/onnx-conformance-expected.txt \
           --report docs/onnx-conformance.md

Nothing is downloaded; the data is generated on this machine (a few seconds to a minute). A case
whose data cannot be serialized is skipped and listed on stderr; the script exits non-zero only if
the onnx package is missing or no case could be written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings


def _serialize(value, type_proto, name: str) -> bytes:
    """Serializes one input or output value the way the ONNX repo's test data does."""
    from onnx import TensorProto, numpy_helper

    if type_proto.HasField("map_type"):
        return numpy_helper.from_dict(value, name).SerializeToString()
    if type_proto.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if type_proto.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, name).SerializeToString()


def _write_case(case, out_dir: str) -> None:
    """Writes one test case (model and every data set) into `out_dir`."""
    model = case.model
    graph_inputs = list(model.graph.input)
    graph_outputs = list(model.graph.output)
    with open(os.path.join(out_dir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    # The case's own comparison tolerance (onnx's node tests declare rtol=1e-3, atol=1e-7).
    with open(os.path.join(out_dir, "tolerance.txt"), "w") as f:
        f.write(f"rtol {float(case.rtol)!r}\natol {float(case.atol)!r}\n")
    for i, (inputs, outputs) in enumerate(case.data_sets or []):
        ds = os.path.join(out_dir, f"test_data_set_{i}")
        os.makedirs(ds, exist_ok=True)
        for kind, values, infos in (("input", inputs, graph_inputs), ("output", outputs, graph_outputs)):
            for j, value in enumerate(values):
                if j >= len(infos):
                    raise ValueError(f"{kind} {j} has no graph {kind} to describe it")
                data = _serialize(value, infos[j].type, infos[j].name)
                with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "onnx-node")
    parser.add_argument("dir", nargs="?", default=default_dir, help="output directory (created if missing; default: %(default)s)")
    parser.add_argument("--filter", default=None, help="only cases whose name contains SUBSTR")
    parser.add_argument("--clean", action="store_true", help="delete DIR first")
    args = parser.parse_args()

    try:
        import onnx
        from onnx.backend.test.case import node
    except ImportError as e:
        print(f"error: the onnx package is missing ({e}); install it with: pip install 'onnx==1.23.*'", file=sys.stderr)
        return 2

    if args.clean and os.path.isdir(args.dir):
        shutil.rmtree(args.dir)
    os.makedirs(args.dir, exist_ok=True)

    with warnings.catch_warnings():
        # The generators compute expected outputs with numpy; overflow/NaN warnings are intended.
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    written, skipped = 0, []
    seen = set()
    for case in cases:
        if args.filter and args.filter not in case.name:
            continue
        if case.name in seen or case.model is None:
            continue
        seen.add(case.name)
        out_dir = os.path.join(args.dir, case.name)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.makedirs(out_dir)
        try:
            _write_case(case, out_dir)
            written += 1
        except Exception as e:  # a case the serializers cannot express: skip it, say so
            shutil.rmtree(out_dir, ignore_errors=True)
            skipped.append((case.name, f"{type(e).__name__}: {e}".splitlines()[0]))

    with open(os.path.join(args.dir, "ONNX_VERSION"), "w") as f:
        f.write(onnx.__version__ + "\n")
    for name, why in skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"onnx {onnx.__version__}: wrote {written} node test cases to {args.dir} ({len(skipped)} skipped)")
    return 0 if written > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
