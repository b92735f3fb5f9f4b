"""The package objects and non-token arguments the property test passes (tests/test_properties.py).

``package_objects(model)`` builds, once, small real objects of the package's own types (an Ablator,
tiny sweeps, a roles result, a training config) and returns strategies by parameter name, with
per-function tables (keyed by ``module.name``, e.g. ``"chapters.prediction.findings_from"``) where one name
means different things in different modules. Float tensors come good, NaN-filled, and of the wrong shape.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

NAN = float("nan")


def tensors(*shape: int) -> st.SearchStrategy:
    """A random float tensor of ``shape``, one with NaN, one with inf and one of the wrong shape."""
    good = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with_nan, with_inf = good.clone(), good.clone()
    with_nan.view(-1)[0], with_inf.view(-1)[-1] = NAN, float("inf")
    return st.sampled_from([good, good, with_nan, with_inf, good.reshape(-1)[:-1], good[None], [1.0, "x"]])


def _not_implemented(*args):
    raise NotImplementedError


def _returns_none(*args):
    return None


def _labels_reference():
    from palindrome.book import exercises_task

    return exercises_task.labels


def _labels_mutant():
    from palindrome.book import exercises

    return exercises.EXERCISES["1.1"].mutants[0].fn


def package_objects(model, checkpoint, tmp) -> dict:
    """Strategies by parameter name (and per-function tables by qualname), from tiny real objects."""
    import pandas as pd
    import plotly.graph_objects as go

    from palindrome import ablation, data, fast, path_patching, replicas, train
    from palindrome.chapters import blindspots, roles
    from palindrome.model import load_state_dict

    pool = data.PalindromeDataset(16, seed=0)
    toks = pool.toks[:8]
    labels = pool.is_palindrome[:8]
    ablator = ablation.Ablator(model, pool.toks)
    path_ablator = path_patching.PathAblator(model, toks)
    _, cache = model.run_with_cache(toks[:2])
    sweep = blindspots.single_mismatch_sweep(model, n_bases=2, progress=False)
    pairs = blindspots.pair_mismatch_sweep(model, n_bases=2, progress=False)
    natural = blindspots.natural_sample(model, size=200)
    attention = blindspots.attention_on_mismatch(model, n_bases=2)
    ablated = blindspots.ablation_blindness(model, n_bases=2, reference_size=50)
    per_position = blindspots.per_position_mismatches(n_bases=3)  # (bases, broken at each second-half position)
    results = [
        roles.analyse_model(
            model, roles.JULY_NAME, probe=roles.mismatch_probe(n=4), decoys=roles.shuffled_half_decoys(n=8)
        )
    ]
    from palindrome.book import report as rp

    report = rp.measure(model, progress=False)  # the July model's report (chapters 8, 10, 11), a few seconds
    (tmp / "a_file_r").write_bytes(b"a regular file")
    tiny = train.TrainConfig(epochs=1, train_size=64, val_size=16, batch_size=32, progress=False, threads=1)
    bad_config = [tiny, "config", 3]  # never None: that is the full recipe (minutes)
    raw = load_state_dict(checkpoint)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    nan_state = {k: v.clone() for k, v in state.items()}
    next(t for t in nan_state.values() if t.is_floating_point()).view(-1)[0] = NAN
    short_state = dict(list(state.items())[:-1])
    some_ablations = [
        [],
        [ablation.Ablation(1, 1)],
        [ablation.Ablation(0, 1, kind="zero")],
        ablation.Ablation(1, 0, activation="v", kind="mean", positions=(21,)),
    ]
    table = pd.DataFrame({"a": [1.0, 2.5], "b": [NAN, 1.0]}, index=["x", "y"])
    manifest = replicas.load_manifest()
    edges = st.sampled_from(
        [("1.0->logits",), ["0.0->1.0.k", "0.0->1.0.v"], path_patching.ALL, "1.0->logits", ("no such edge",), ()]
    )
    fig = go.Figure()
    from palindrome.model import create_model

    trainable = create_model(seed=0, device="cpu")  # a fresh model: its parameters take gradients
    forward = train.fast_forward(fast.EndOnlyForward.from_model(trainable))
    adam = torch.optim.Adam(trainable.parameters(), lr=1e-3)
    sd = raw
    # chapters 12 and 13: each object once, from tiny inputs
    import dataclasses

    from palindrome import inputs
    from palindrome import variant_runs as vr
    from palindrome.chapters import explanation as ex12
    from palindrome.chapters import level_calls as lc
    from palindrome.chapters import run_analysis as ra
    from palindrome.chapters import steering as steer

    stats = ex12.reference_stats(model, toks)
    expl = ex12.Explanation(model, stats, ("layer0_scale",))
    costs = ex12.approximation_costs(model, stats, pool.toks)
    tiny_sets = dict(
        zip(
            lc.INPUT_SETS,
            (
                pool.toks,
                lc.sweep_tokens(1)[:, :, :3].flatten(1, 2),
                toks[:4],
                pool.toks[pool.is_palindrome.bool()][:4],
                toks[:2],
                lc.fresh_tokens(1),
            ),
            strict=True,
        )
    )
    scores_obj = lc.score(expl, tiny_sets, progress=False)
    directions = steer.mismatch_directions(model, n_bases=2)
    steering = steer.steering_table(model, directions, n_bases=2, progress=False)
    random_rates = steer.random_flip_rates(model, directions, n_draws=3, n_bases=2)
    random_table = steer.random_control_table(steering, random_rates)
    head_table = steer.head_edit_table(model, directions, n_bases=2)
    effects = steer.random_edit_effects(model, directions, n_draws=3, n_bases=2)
    subspace_table = steer.subspace_control_table(effects)
    fast_classifier = fast.EndOnlyForward(model)
    inference_tables = fast_classifier.inference_tables()
    resid = fast_classifier.centred_layer0(inference_tables, fast_classifier.validate(toks[:4]))
    runs = vr.load_manifest()["runs"]
    control_run = next(r for r in runs if r.variant == vr.CONTROL and r.seed == 0)
    map_inputs = inputs.broken_at_each_position_fresh(4, 13)
    control_analysis = ra.analyse_run(model, control_run, pool, toks, map_inputs)
    variant_analysis = dataclasses.replace(control_analysis, variant=next(v for v in vr.VARIANTS if v != vr.CONTROL))
    analyses = [control_analysis, variant_analysis]
    bad_results = [analyses, analyses, [variant_analysis], [], "results", [3]]

    objects = {
        "ablator": st.just(ablator),
        "ablations": st.sampled_from(some_ablations),
        "settings": st.sampled_from([{"none": [], "H1.1 mean": [ablation.Ablation(1, 1)]}, {}]),
        "heads": st.sampled_from([[(0, 1)], [(1, 1), (0, 0)], [(2, 0)], [(0, 5)], [], [(0,)], "0.1"]),
        "cache": st.sampled_from([dict(cache), {}, {"hook_embed": torch.zeros(2, 22, 28)}]),
        "state_dict": st.sampled_from([state, nan_state, short_state, sd, {}]),
        "sweep": st.just(sweep),
        "result": st.just(sweep),
        "pairs": st.just(pairs),
        "natural": st.just(natural),
        "ablation": st.just(ablated),
        "results": st.just(results),
        "manifest": st.sampled_from([manifest, {}, {"models": "x"}]),
        "fast": st.just(fast.EndOnlyForward(model)),
        "keep": edges,
        "edge_sets": st.sampled_from([{"k": ("0.1->1.1.k",)}, {"bad": ("nope",)}, {}]),
        "variants": st.sampled_from([{"hypothesis": path_patching.ALL}, {"x": ("nope",)}]),
        "circuits": st.sampled_from([{"all": path_patching.ALL, "logits": ("1.0->logits",)}, {"x": ("nope",)}]),
        "ablated": st.just(path_patching.ablated_values(model, toks)),
        "fig": st.sampled_from([fig, fig.to_dict(), "figure", None]),
        "table": st.sampled_from([table, table.fillna(0.0), pd.DataFrame()]),
        "decimals": st.sampled_from([1, 3, {"a": 2}, {"zzz": 1}, -1, NAN]),
        "generator": st.sampled_from([None, torch.Generator().manual_seed(3), "gen", 3]),
        "reference": tensors(22, 28),
        "scores": tensors(8),
        "values": tensors(8),
        "circuit": tensors(22),
        "gap": tensors(31, 31),
        "matrix": tensors(4, 5),
        "pattern": tensors(22, 22),
        "pos_circuit": tensors(22, 22),
        "closed_form": tensors(11),
        "measured": tensors(11),
        "W_A": tensors(28, 14),
        "W_B": tensors(28, 14),
        "models": st.just({"July": model}),
        "layer_head": st.sampled_from([(0, 0), (1, 1), (2, 0), "1.0", (0,)]),
        "first": st.sampled_from([(0, 0), (1, 1), (3, 0)]),
        "second": st.sampled_from([(1, 0), (0, 1), (1, 7)]),
        "writer": st.sampled_from([(0, 0), (1, 1), (3, 0)]),
        "reader": st.sampled_from([(1, 0), (0, 1), (1, 7)]),
        "probe": st.sampled_from([roles.mismatch_probe(n=3), toks, roles.mismatch_probe(n=3).float()]),
        "decoys": st.sampled_from([roles.shuffled_half_decoys(n=4), toks[:, :5], None]),
        "eval_set": st.sampled_from([pool, None]),
        "names": st.sampled_from([["blocks.0.attn.hook_pattern"], [], ["no.such.hook"], "blocks.0.hook_resid_pre"]),
        "fwd_hooks": st.sampled_from([(), [("blocks.0.hook_resid_pre", lambda x, hook: x)], [("nope", None)]]),
        "values_a": st.sampled_from([torch.tensor([1, 2]), torch.tensor([1.5, 2.0]), torch.tensor([40, 2])]),
        "values_b": st.sampled_from([torch.tensor([2, 1]), torch.tensor([2])]),
        "prob": st.sampled_from([None, 0.5, torch.tensor(0.9), NAN, 1.5, "x"]),
        "methods": st.sampled_from([("mean",), ("mean", "resample"), ("bogus",), "mean"]),
        "argv": st.sampled_from(
            [["--out", str(tmp)], ["--seed", str(2**70)], ["--device", "cuda:9"], ["--bogus"], ["--epochs", "-1"]]
        ),
        "url": st.sampled_from(["not a url", "file:///nonexistent/palindrome.pt", "http://127.0.0.1:9/x.pt", 7]),
        "data": st.sampled_from([b"bytes", "text", None]),
        "text": st.text(max_size=12),
        "parts": st.just(("H0.1", 3)),
        "module": st.sampled_from(["blindspots", "x", ""]),
        "declared": st.sampled_from([(), ("a",), "ab"]),
        "keys": st.sampled_from([(), ("a",), ("zzz",)]),
        "expected": st.sampled_from(["0" * 64, "bad", None]),
        "sha256": st.sampled_from([None, "0" * 64, "zz"]),
        "checkpoint_sha256": st.sampled_from([None, "0" * 64, 5]),
        "what": st.just("the checkpoint"),
        "remedy": st.just("download it again"),
        "findings": st.sampled_from([{}, {"blindspots": {}}, "findings"]),
        "reference_name": st.just(roles.JULY_NAME),
        "report": st.sampled_from([report, report, "report", None]),
        "tokens_names": st.just(None),
        "batches": st.sampled_from([{"dataset": (toks, labels)}, {"dataset": (toks, labels[:3])}, {}]),
        "per_position_settings": st.sampled_from([("none", "H1.1 mean"), ("nope",)]),
        "whole_settings": st.sampled_from([None, ("nope",)]),
        "mode": st.sampled_from(["markers", "lines", "bogus"]),
        "colors": st.sampled_from([None, {"a": "#000000"}, ["#000000"]]),
        "hline": st.sampled_from([None, 0.5, NAN]),
        "labels_dict": st.just(None),
        "seeds": st.sampled_from([(0,), [], (-1,), (2**70,), None, (1.5,)]),
        "records": st.just([]),
        "x_list": st.just(None),
        "name": st.sampled_from(["July 2023", "", 3]),
        "title": st.sampled_from(["A title", ""]),
        "xlabel": st.just("x"),
        "ylabel": st.just("y"),
        "colorbar_title": st.just(""),
        "text_format": st.sampled_from([".2f", "bogus{"]),
        "text_auto": st.sampled_from([False, True, ".2f"]),
        "log_y": st.booleans(),
        "use_positions": st.booleans(),
        "include_bias": st.booleans(),
        "significant": st.booleans(),
        "progress": st.just(False),
        "pattern_flag": st.booleans(),
        "download": st.just(False),
        "decoy": st.sampled_from([None, True, False, "yes"]),
        "columns": st.sampled_from([["a"], ["zzz"], []]),
        "baseline": st.sampled_from(["none", 0.1, NAN, None, "no such row"]),
        "head_names": st.sampled_from([None, ["0.0", "0.1", "1.0", "1.1"], ["x"]]),
        "titles": st.sampled_from([["a", "b"], []]),
        "optimizer": st.just(None),
        "bar": st.just(None),
        "blind": st.sampled_from([(17, 19), (), (25,), (4, 17)]),
        "claims": st.just(None),
        # the validators' own arguments (palindrome.tokens, palindrome.checkpoint)
        "value": st.sampled_from(
            [
                3,
                0,
                -1,
                2**70,
                1.5,
                NAN,
                float("inf"),
                "3",
                "",
                None,
                True,
                torch.tensor(2.0),
                torch.tensor([1.0, NAN]),
                torch.tensor([1, 2]),
                [1.0, 2.0],
                [1.0, "x"],
                tmp / "a_file_r",
                7,
            ]
        ),
        "minimum": st.sampled_from([0, 1, 2]),
        "maximum": st.sampled_from([None, 5, 2**20]),
        "allowed": st.sampled_from([range(1, 21), (11, 12, 20), range(22)]),
        # names used by chapters 12 and 13's modules (prediction, scrubbing, variant_runs, retraining)
        "level": st.sampled_from(["bogus", "", 3]),
        "variant": st.sampled_from(["bogus", "", None]),
        "refine": st.sampled_from([(), ("bogus",), "x"]),
        "levels": st.sampled_from([(), ("bogus",), "x"]),
        "val_losses": st.sampled_from([[1.0, 0.5, 0.4, 0.4, 0.4], [NAN, 1.0], [], "x"]),
        "pvalues": st.sampled_from([[0.01, 0.5, 0.04], [], [1.5], [NAN], "x"]),
        "on_epoch": st.sampled_from([None, lambda model, history: True, "x"]),
        "window": st.sampled_from([1, 3, 0, -1, 1.5]),
        "tolerance": st.sampled_from([1e-3, 0.0, NAN, -1.0, "x"]),
        "length": st.sampled_from([1.0, 0.0, NAN, float("inf"), -1.0]),
        "strength": st.sampled_from([1.0, 0.0, NAN, "x"]),
        "strengths": st.sampled_from([(0.0, 1.0), (), (NAN,), "x"]),
        "vector": tensors(28),
        "vectors": tensors(4, 28),
        "missed": tensors(10),
        "replaced": tensors(8, 22, 28),
        "differences": tensors(10, 28),
        "layer0_table": tensors(22, 33),
        "include_model": st.booleans(),
        "long": st.booleans(),
        "status": st.just(None),
        "sets": st.sampled_from([None, {"a": toks}, {"a": "x"}, {}]),
        "overlaps": st.sampled_from([{"a": 1}, {}]),
        "stats": st.sampled_from([stats, "stats"]),
        "expl": st.sampled_from([expl, "expl"]),
        "costs": st.sampled_from(
            [costs, costs.drop("layer0_scale"), costs.where(costs.index != "layer1_scale", NAN), "costs"]
        ),
        "directions": st.sampled_from([directions, "directions", torch.zeros(10, 28)]),
        "steering": st.sampled_from([steering, steering.iloc[:2], "steering"]),
        "random_rates": st.sampled_from([random_rates, random_rates[:2], random_rates * NAN, "rates"]),
        "random_table": st.sampled_from([random_table, random_table.iloc[:2], "table"]),
        "head_table": st.sampled_from([head_table, head_table.iloc[:2], random_table, "table"]),
        "subspace_table": st.sampled_from([subspace_table, subspace_table.iloc[:2], random_table, "table"]),
        "effects": st.sampled_from([effects, {"rates": random_rates}, {**effects, "drops": effects["drops"][:2]}, "e"]),
        "pair": st.sampled_from([lc.PAIRED, ("words",), "words", ("words", "nope")]),
        "groups": st.sampled_from([None, {"x": (11,)}, {"x": ()}, {"x": (5,)}, "g"]),
        "fresh": st.sampled_from([{"reference batch": 0}, {}, "x"]),
        "fc": st.sampled_from([fast_classifier, "fc"]),
        "tables": st.sampled_from([inference_tables, "tables"]),
        "clean": st.sampled_from([resid, resid[:1], resid * NAN]),
        "edited": st.sampled_from([resid, resid[:1], resid * NAN]),
        "part": st.sampled_from(["attention", "values", "output", "keys", 3]),
        "n_draws": st.sampled_from([1, 3, 0, -2]),
        "control_seed": st.sampled_from([0, 1800, -1]),
        "record": st.sampled_from([control_run, "record"]),
        "runs": st.sampled_from([runs[:3], [], "runs", [3]]),
        "inputs": st.sampled_from([map_inputs, map_inputs.float(), toks, "inputs"]),
        "run": st.sampled_from([control_analysis, variant_analysis, "run"]),
        "july": st.sampled_from(["july", pd.DataFrame(), table]),
        "fn": st.sampled_from([lambda chunk: chunk.float().sum(), "fn"]),
        "chunks": st.sampled_from([toks.split(3), [], "chunks", [toks, "x"]]),
    }
    draws = pd.DataFrame({"a": [0.1, 0.3], "b": [2.0, 1.0]}, index=[100, 101])
    objects["__per_function__"] = {  # one name, different things: keyed by "module.name"
        # chapters 12 and 13
        "chapters.level_calls.decoy_catch_rate": {"scores": st.sampled_from([scores_obj, torch.rand(8)])},
        "chapters.level_calls.disagreements": {
            "scores": st.sampled_from([scores_obj, torch.rand(8)]),
            "name": st.sampled_from([lc.INPUT_SETS[0], lc.INPUT_SETS[1], "bogus", 3]),
        },
        "chapters.prediction.findings_from": {
            "scores": st.sampled_from([scores_obj, torch.rand(8)]),
            "overlaps": st.sampled_from([{lc.INPUT_SETS[0]: 0}, {"a": 1}, "x"]),
        },
        "chapters.level_calls.own_errors": {"scores": st.sampled_from([scores_obj, torch.rand(8)])},
        "chapters.scrubbing.scrubbing_spread": {
            "tables": st.sampled_from([[], "x", None, [pd.DataFrame(), pd.DataFrame()], [random_table, random_table]])
        },
        "chapters.level_calls.miss_overlap": {
            "scores": st.sampled_from([scores_obj, torch.rand(8)]),
            "name": st.sampled_from([lc.INPUT_SETS[1], lc.INPUT_SETS[5], lc.INPUT_SETS[0], "bogus", 3]),
        },
        "chapters.level_calls.score": {"sets": st.sampled_from([tiny_sets, {"a": toks}, "sets"])},
        "chapters.explanation.logit_diffs": {
            "variants": st.sampled_from([{"c": ()}, {"r": ("layer0_scale", "end_query")}, {"x": ("nope",)}, "v"])
        },
        "chapters.level_calls.development_overlaps": {
            "sets": st.sampled_from([tiny_sets, {"a": toks}, {"a": "x"}, "sets"])
        },
        "chapters.scrubbing.scrubbed_logits": {"ablator": st.sampled_from([path_ablator, ablator])},
        "chapters.run_analysis.control_of": {"results": st.sampled_from(bad_results)},
        "chapters.retraining.runs_table": {"results": st.sampled_from(bad_results)},
        "chapters.retraining.miss_table": {"results": st.sampled_from(bad_results)},
        "chapters.retraining.cost_figure": {"results": st.sampled_from(bad_results)},
        "chapters.retraining.attention_verdicts": {"results": st.sampled_from(bad_results), "measured": st.booleans()},
        # roles.blindness_figure / key_findings share the names: retraining's get roles' results, which they must refuse
        "tokens.check_type": {"expected": st.sampled_from([torch.Tensor, (int, float), "x"])},
        "tokens.check_items": {
            "expected": st.sampled_from([int, "x"]),
            "values": st.sampled_from([[1, 2], [], "x", [1, "a"]]),
        },
        "chapters.run_analysis.analyse_run": {
            "eval_set": st.sampled_from([pool, "eval"]),
            "scale_toks": st.sampled_from([toks, toks.float()]),
            "inputs": st.sampled_from([map_inputs, toks, "inputs"]),
        },
        # regenerate trains (minutes): only arguments it must refuse before any work
        "variant_runs.regenerate": {
            "seeds": st.sampled_from([(-1,), (2**70,), (), "0", (0, 0), (1.5,)]),
            "out_dir": st.sampled_from([None, tmp / "a_file_r" / "x"]),
            "base": st.sampled_from([tiny, "config"]),
            "jobs": st.sampled_from([1, 0]),
            "progress": st.just(False),
        },
        "variant_runs.run_config": {"base": st.sampled_from([None, tiny, "config"])},
        "train.train": {"config": st.sampled_from(bad_config)},
        "replicas.train_replicas": {
            "seeds": st.sampled_from([(0,), (-1,), (2**70,), "0", ()]),
            "out_dir": st.sampled_from([tmp / "replicas", tmp / "a_file_r" / "x"]),
            "jobs": st.sampled_from([1, 0, -1, 1.5]),
            "base": st.sampled_from([tiny, "config"]),
            "progress": st.just(False),
        },
        "train.main": {
            "argv": st.sampled_from(
                [
                    ["--out", str(tmp / "a_file_r" / "x.pt")],
                    ["--seed", str(2**70)],
                    ["--device", "cuda:9"],
                    ["--bogus"],
                    ["--epochs", "-1"],
                    ["--jobs", "0"],
                ]
            )
        },
        "train.parse_args": {"argv": st.sampled_from([["--out", str(tmp)], ["--seed", str(2**70)], ["--bogus"]])},
        "replicas.write_manifest": {
            "base": st.just(tiny),
            "out_dir": st.sampled_from([tmp / "m", tmp / "a_file_r" / "x"]),
        },
        "chapters.faithfulness.recovered_fraction": {"ablated": st.sampled_from([0.1, NAN, float("inf")])},
        "book.reconciliation.blind_spot_verdict": {"attention": st.just(attention)},
        "chapters.blindspots.findings_from": {"attention": st.just(attention)},
        "chapters.faithfulness.circuit_table": {"ablator": st.just(path_ablator)},
        "chapters.faithfulness_controls.resample_draws": {
            "seeds": st.sampled_from([[0], [], [1, 1], [-1], "1", [0.5]])
        },
        "chapters.faithfulness_controls.draw_spread": {
            "draws": st.sampled_from([draws, draws.iloc[:0], draws * NAN, "draws"]),
            "chapter": st.sampled_from([{"a": 0.2, "b": 1.0}, {"a": NAN, "b": 1.0}, {"a": 0.2}, "chapter"]),
        },
        # without a sweep it runs chapter 8's whole sweep (seconds per call): the tiny sweep, or one it must refuse
        "chapters.faithfulness.misses_reading_the_mirror": {"sweep": st.sampled_from([sweep, pairs, "sweep"])},
        "chapters.faithfulness.hard_subset_position_errors": {
            "variants": st.sampled_from(
                [
                    {"a": (["0.1->1.1.k"], (20,))},
                    {"a": (["0.1->1.1.k"], (22,))},
                    {"a": (["bogus"], (20,))},
                    {},
                    {"a": "e"},
                ]
            )
        },
        "composition.attention_entropy": {"attention": tensors(4, 22)},
        "composition.attention_on_mismatches": {"attention": tensors(8, 22)},
        "plots.end_attention_bars": {"attention": tensors(2, 22)},
        "plots.attention_patterns": {
            "attention": tensors(4, 22, 22),
            "tokens": st.sampled_from([[str(i) for i in range(22)], ["a"]]),
        },
        "plots.AttentionPatterns": {
            "attention": tensors(4, 22, 22),
            "tokens": st.sampled_from([[str(i) for i in range(22)], ["a"]]),
        },
        "chapters.backup.readout_summary": {"batches": st.sampled_from([{"a": toks}, {"a": "x"}, {}])},
        "ablation.score_table": {
            "batches": st.sampled_from([{"dataset": (toks, labels)}, {"dataset": (toks, labels[:3])}, {}])
        },
        "plots.imshow": {"labels": st.sampled_from([None, {"x": "a"}]), "x": st.just(None), "y": st.just(None)},
        "plots.scatter": {"x": tensors(8), "ys": st.sampled_from([{"a": torch.rand(8)}, {"a": torch.rand(3)}, {}])},
        "plots.bar": {"names": st.sampled_from([list("abcdefgh"), ["a"]])},
        "plots.histograms": {"groups": st.sampled_from([{"a": torch.rand(8)}, {"a": torch.full((3,), NAN)}, {}])},
        "plots.heatmap_grid": {
            "matrices": st.sampled_from([{"a": torch.rand(2, 3)}, {}]),
            "x": st.just(["a", "b", "c"]),
            "y": st.just(["a", "b"]),
        },
        "plots.grouped_bars": {"table": st.sampled_from([table.fillna(0.0), table, pd.DataFrame()])},
        "replicas.recipe_config": {"manifest": st.sampled_from([manifest, {}])},
        "train.train_epoch": {
            "forward": st.just(forward),
            "toks": st.sampled_from([toks, toks.float()]),
            "labels": st.sampled_from([labels, labels[:2]]),
            "batches": st.sampled_from([[torch.arange(4)], [torch.tensor([99])], []]),
            "optimizer": st.just(adam),
        },
        "train.end_loss": {"logits": tensors(8, 2), "labels": st.sampled_from([labels, labels[:3], labels.float()])},
        "metrics.loss_from_logits": {"logits": tensors(8, 2)},
        "metrics.miss_rates_by_position": {
            "decide": st.sampled_from(
                [lambda t: t[:, 20] % 2 == 0, lambda t: t[:, 20].float(), lambda t: (t[:, 20] > 9)[:1], "decide"]
            ),
            "broken": st.sampled_from([per_position[1][:, :3], per_position[1][:2, :3], per_position[0], "broken"]),
            "palindromes": st.sampled_from([None, per_position[0], per_position[0].float()]),
            "positions": st.sampled_from([None, list(range(10)), [11], "positions"]),
        },
        "ablation.scores_from_logits": {"logits": tensors(8, 2)},
        "metrics.logit_diff_from_logits": {"logits": tensors(8, 2)},
        "metrics.accuracy_from_logits": {"logits": tensors(8, 2)},
        "chapters.faithfulness.end_metrics": {"logits": tensors(8, 2)},
        "findings.Findings": {"values": st.sampled_from([{"a": 1.0}, {"a": NAN}, {"a": "x"}, {}])},
        "chapters.blindspots.single_mismatch_sweep": {
            "bases": st.sampled_from([None, toks[:2]]),
            "n_bases": st.sampled_from([1, 0, -1, 2**70]),
        },
        "chapters.level_calls.overlap": {
            "a": st.sampled_from([toks, toks[:2], "x", None]),
            "b": st.sampled_from([toks, toks.float(), None]),
        },
        "chapters.level_calls.correlation": {"a": tensors(8), "b": tensors(8)},
        "ablation.Ablator": {"reference_toks": st.sampled_from([None, toks, toks.float()])},
        # the whole chapter-11 analysis of a model takes minutes: only models it must refuse before any work
        "chapters.roles.analyse_model": {"model": st.sampled_from([None, "July 2023", torch.nn.Linear(2, 2)])},
        "chapters.roles.analyse_models": {"models": st.sampled_from([{}, {"x": None}, "July 2023", [model]])},
        # palindrome.book.report: measuring is seconds per call, so only models it must refuse before any work
        "book.report.measure": {"model": st.sampled_from([None, "July 2023", torch.nn.Linear(2, 2)])},
        # the exercises' checks: real ids and bad ones, with stubs, a reference, a mutant and non-callables
        "book.exercises.check": {
            "exercise_id": st.sampled_from(["1.1", "4.1", "2.1", "0.0", 2.1, None, ""]),
            "fn": st.sampled_from(
                [_not_implemented, _returns_none, _labels_reference(), _labels_mutant(), "labels", 3]
            ),
        },
        "plots.library_file": {"name": st.sampled_from(["plotly.min.js", "circuitsvis.js", "bogus", 3])},
        "path_patching.relabel_heads": {
            "heads": st.sampled_from(
                [{"0.0": "0.1", "1.0": "1.1"}, {}, {"0.0": "1.0"}, {"0.0": "0.1", "0.1": "0.1"}, {"x": "0.0"}, "0.1"]
            )
        },
        "chapters.roles.rank_correlation": {
            "x": st.sampled_from([[1.0, 2.0, 3.0], [3, 1, 2, 5], [1.0, 1.0, 1.0], [NAN, 1.0, 2.0], "abc", [1.0]]),
            "y": st.sampled_from(
                [[2.0, 1.0, 3.0], [1.0, 2.0, 3.0, 4.0], [0.0, float("inf"), 1.0], ["a", "b", "c"], None]
            ),
        },
    }
    per_function = objects["__per_function__"]
    for module in ("replicas", "variant_runs"):  # the same command-line arguments for every entry point
        per_function[f"{module}.main"] = per_function["train.main"]
    per_function["variant_runs.write_manifest"] = per_function["replicas.write_manifest"]
    return objects
