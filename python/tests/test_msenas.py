"""The Python package against the CLI: the same numbers for the same genome, seed and device;
the ask/tell search writes the same run folder as `msenas search`; errors carry the CLI's line."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import msenas

ROOT = Path(__file__).resolve().parents[2]


def cli_binary():
    exe = os.environ.get("MSENAS_BIN") or str(ROOT / "target" / "debug" / "msenas")
    if not Path(exe).exists():
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    return exe


def cli(*args, check=True):
    r = subprocess.run([cli_binary(), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"msenas {' '.join(map(str, args))}: {r.returncode}\n{r.stderr}")
    return r


def write_genome(tmp_path, g, name="g.json"):
    p = tmp_path / name
    p.write_text(g.to_json() + "\n")
    return p


def read_log(run):
    """The evaluation log without timings, keyed by genome."""
    out = {}
    for line in (Path(run) / "evaluations.jsonl").read_text().splitlines():
        r = json.loads(line)
        for k in ("timings", "crc"):
            r.pop(k, None)
        out[r["key"]] = r
    return out


def test_genome_round_trip_and_cli_sample(tmp_path):
    g = msenas.sample(seed=3)
    assert msenas.Genome.from_json(g.to_json()) == g
    assert g.key == msenas.Genome.from_json(g.to_json()).key
    assert msenas.Genome.from_json(cli("sample", "--seed", 3).stdout) == g
    assert g.num_params() > 0
    assert g.num_params(width=16) > g.num_params(width=8)
    shown = cli("show", write_genome(tmp_path, g)).stdout
    assert shown == g.describe()


def test_forward_equals_the_cli_dump(tmp_path):
    g = msenas.sample(seed=5)
    gp = write_genome(tmp_path, g)
    dump = tmp_path / "dump"
    cli("forward", gp, "--device", "cpu", "--batch", 6, "--seed", 11, "--dump", dump)
    man = json.loads((dump / "manifest.json").read_text())
    shapes = {f["name"]: f["shape"] for f in man["files"]}
    x = np.fromfile(dump / "input.f32", "<f4").reshape(shapes["input.f32"])
    want = np.fromfile(dump / "logits.f32", "<f4").reshape(shapes["logits.f32"])
    out = msenas.Engine("cpu").forward(g, x, classes=10, weight_seed=11)
    assert out.logits.dtype == np.float32 and out.logits.shape == want.shape
    np.testing.assert_array_equal(out.logits, want)
    assert len(out.firing_rates) == len(out.populations) == len(man["populations"])
    # One frame repeated over T equals the T frames given explicitly (a static input).
    same = msenas.Engine("cpu").forward(g, x[0], classes=10, timesteps=x.shape[0], weight_seed=11)
    np.testing.assert_array_equal(same.logits, out.logits)


def test_scores_equal_the_cli(tmp_path):
    g = msenas.sample(seed=7)
    gp = write_genome(tmp_path, g)
    names = ["grad_rms", "params", "sops", "firing_rate"]
    got = msenas.Engine("cpu").scores([g, msenas.sample(seed=8)])
    assert [e.key for e in got] == [g.key, msenas.sample(seed=8).key]
    r = json.loads(cli("score", gp, "--device", "cpu", "--json", "--fitness", ",".join(names)).stdout)
    for n in names:
        assert got[0].scores[n] == r["scores"][n], n
    assert got[0].status == r["status"]
    e = msenas.Evaluation.from_json(got[0].to_json())
    assert e.scores == got[0].scores and e.key == got[0].key


TINY = {"seed": 3, "search.device": "cpu"}


def test_search_equals_the_cli_search(tmp_path):
    a, b = tmp_path / "cli", tmp_path / "py"
    cli("search", "--preset", "tiny", "--seed", 3, "--device", "cpu", "--out", a, "--quiet")
    out = msenas.search(b, preset="tiny", sets=TINY)
    assert not out["interrupted"] and out["generations"] == 2
    assert read_log(a) == read_log(b)
    for f in ["pareto.json", "best.json", "population_0.json", "population_1.json", "config.json"]:
        assert (a / f).read_text() == (b / f).read_text(), f
    assert out["best"]["key"] == msenas.Genome.from_json((a / "best.json").read_text()).key


def test_ask_tell_in_any_order_and_resumed_gives_the_same_run(tmp_path):
    ref = tmp_path / "ref"
    msenas.search(ref, preset="tiny", sets=TINY)
    scorer = msenas.Engine("cpu")
    s = msenas.Search(tmp_path / "askt", preset="tiny", sets=TINY)
    todo = s.ask()
    assert len(todo) == 4 and s.generation == 0
    # Told backwards, one at a time; a genome told twice is refused.
    evals = scorer.scores(todo, preset="tiny", sets=TINY)
    for e in reversed(evals[1:]):
        s.tell([e])
    with pytest.raises(msenas.InputError, match="was not asked for"):
        s.tell([evals[1]])
    assert s.ask() == todo[:1]
    s.tell(evals[:1])
    # Generation 1 asked; the process "stops" here without telling it.
    nxt = s.ask()
    assert s.generation == 1 and nxt
    del s
    r = msenas.Search(tmp_path / "askt", resume=True)
    assert r.logged == 4
    assert r.ask() == nxt
    r.tell(scorer.scores(nxt, preset="tiny", sets=TINY))
    assert r.ask() == []
    out = r.finish()
    assert out["replayed"] == 4 and out["fresh"] == len(nxt)
    assert read_log(ref) == read_log(tmp_path / "askt")
    for f in ["pareto.json", "best.json"]:
        assert (ref / f).read_text() == (tmp_path / "askt" / f).read_text(), f


def test_errors_carry_the_cli_line(tmp_path):
    r = cli("sample", "--set", "space.bogus=1", check=False)
    assert r.returncode == 2
    with pytest.raises(msenas.InputError) as e:
        msenas.sample(sets={"space.bogus": 1})
    assert r.stderr.strip().endswith(str(e.value)), (r.stderr, str(e.value))
    with pytest.raises(msenas.InputError, match="--device nonesuch"):
        msenas.Engine("nonesuch")
    with pytest.raises(msenas.InputError, match="allowed"):
        msenas.Engine("cpu").forward(msenas.sample(), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError):
        msenas.Genome.from_json("{}")
    (tmp_path / "run").mkdir()
    with pytest.raises(msenas.InputError, match="no such run folder|config.json"):
        msenas.Search(tmp_path / "nothing", resume=True)


def test_train_then_evaluate_equals_the_cli(tmp_path):
    g = msenas.sample(seed=2, preset="tiny")
    out = tmp_path / "train"
    r = msenas.train(g, out, preset="tiny", sets={"train.epochs": 1}, device="cpu", seed=1)
    assert (out / "model.ckpt").exists()
    assert 0.0 <= r["test_acc"] <= 1.0
    py = msenas.evaluate(out, noise="gaussian:0.1")
    want = json.loads(cli("evaluate", out, "--noise", "gaussian:0.1", "--json").stdout)
    assert py == want
    with pytest.raises(msenas.InputError, match="--device nonesuch"):
        msenas.evaluate(out, device="nonesuch")
    with pytest.raises(msenas.InputError, match="already holds a training run"):
        msenas.train(g, out, preset="tiny", device="cpu")


def test_the_gil_is_released_while_the_engine_computes():
    g = msenas.sample(seed=4)
    x = np.random.default_rng(0).random((4, 32, 1, 16, 16), dtype=np.float32)
    e = msenas.Engine("cpu")
    e.forward(g, x, classes=10)  # warm up
    done = threading.Event()
    ticks = 0

    def work():
        for _ in range(3):
            e.forward(g, x, classes=10)
        done.set()

    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    secs = time.perf_counter() - start
    # With the GIL held for each call, this loop would stall for whole forward passes.
    assert ticks > 0.25 * secs / 0.0015, (ticks, secs)


def test_predict_gives_the_same_logits_on_every_device(tmp_path):
    g = msenas.sample(seed=3, preset="tiny")
    out = tmp_path / "train"
    msenas.train(g, out, preset="tiny", sets={"train.epochs": 1}, device="cpu", seed=2)
    x = np.random.default_rng(1).random((300, 1, 16, 16), dtype=np.float32)
    cpu = msenas.predict(out, x, device="cpu")
    assert cpu.shape == (300, 10) and np.isfinite(cpu).all()
    # Batches split by the engine give the rows of smaller calls.
    np.testing.assert_array_equal(msenas.predict(out, x[:7], device="cpu"), cpu[:7])
    with pytest.raises(msenas.InputError, match="--device nonesuch"):
        msenas.predict(out, x, device="nonesuch")
    with pytest.raises(msenas.InputError, match="x: shape"):
        msenas.predict(out, x[:, :, :8], device="cpu")
    try:
        gpu = msenas.predict(out, x, device="llvmpipe")
    except msenas.InputError:
        pytest.skip("no lavapipe adapter")
    scale = max(1.0, float(np.abs(cpu).max()))
    assert float(np.abs(gpu - cpu).max()) / scale < 1e-4
    # The evaluation report on the device: the CPU engine's, to a flipped spike.
    on_gpu, on_cpu = msenas.evaluate(out, device="llvmpipe"), msenas.evaluate(out)
    assert on_gpu["samples"] == on_cpu["samples"]
    assert abs(on_gpu["accuracy"] - on_cpu["accuracy"]) * on_cpu["samples"] <= 2
    rate = on_cpu["mean_firing_rate"]
    assert rate > 0 and abs(on_gpu["mean_firing_rate"] - rate) <= 1e-3 * rate
