#!/usr/bin/env python3
"""Writes tests/fixtures/fitness_fixture.json: spike scores and statistics computed with numpy and
scipy, independently of msenas, on fixed data. The Rust tests only read the committed JSON.

    pip install numpy scipy
    python3 scripts/make_fitness_fixture.py

Definitions follow SPEC section 2.3 and the choices documented in src/fitness/scores.rs:
rdm_corr gives distance 1 to a sample whose time-summed counts have zero variance; rdm_rate counts
a pair with s_ij = 0 as 0; sahd uses the per-(population, step) rates.
"""

import json
import pathlib

import numpy as np
import scipy
from scipy import stats

SEED = 20240611
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fitness_fixture.json"


def make_spikes(rng):
    t, b = 3, 12
    labels = np.repeat(np.arange(4), 3)
    rng.shuffle(labels)
    pops = []
    for name, n, p in [("cell0", 37, 0.3), ("cell1", 64, 0.5), ("head", 5, 0.2)]:
        x = (rng.random((t, b, n)) < p).astype(np.int64)
        pops.append((name, n, x))
    # cell1: sample 3 silent at every step (zero-variance counts, s_ij = 0 pairs);
    # sample 7 fires every neuron at step 1.
    pops[1][2][:, 3, :] = 0
    pops[1][2][1, 7, :] = 1
    # head: samples 0 and 5 identical at step 0 (d_H = 0 with nonzero rates).
    pops[2][2][0, 5, :] = pops[2][2][0, 0, :]
    return t, b, labels, pops


def hamming(x):
    """[B][B] Hamming distances of the rows of x ([B][N] 0/1)."""
    return (x[:, None, :] != x[None, :, :]).sum(axis=2)


def off_diag_mean(m):
    b = m.shape[0]
    return (m.sum() - np.trace(m)) / (b * (b - 1))


def rdm(pops):
    mats = [hamming(x[t]) / n for _, n, x in pops for t in range(x.shape[0])]
    return np.mean(mats, axis=0)


def rdm_rate(pops):
    mats = []
    for _, n, x in pops:
        for t in range(x.shape[0]):
            r = x[t].mean(axis=1)
            s = r[:, None] * (1 - r[None, :]) + r[None, :] * (1 - r[:, None])
            d = hamming(x[t]).astype(float)
            ratio = np.zeros_like(d)
            nz = n * s > 0
            ratio[nz] = d[nz] / (n * s[nz])
            np.fill_diagonal(ratio, 0.0)
            mats.append(ratio)
    return np.mean(mats, axis=0)


def rdm_corr(pops):
    mats = []
    for _, n, x in pops:
        c = x.sum(axis=0).astype(float)  # [B][N] time-summed counts
        b = c.shape[0]
        const = c.std(axis=1) == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(c)
        d = 1.0 - r
        d[const, :] = 1.0
        d[:, const] = 1.0
        d[np.arange(b), np.arange(b)] = 0.0
        mats.append(d)
    return np.mean(mats, axis=0)


def upper(m):
    i, j = np.triu_indices(m.shape[0], k=1)
    return m[i, j]


def rdm_rsa(pops, labels):
    label_rdm = (labels[:, None] != labels[None, :]).astype(float)
    return stats.spearmanr(upper(rdm(pops)), upper(label_rdm)).statistic


def sahd(pops):
    b = pops[0][2].shape[1]
    k = np.zeros((b, b))
    for _, n, x in pops:
        for t in range(x.shape[0]):
            r = x[t].mean(axis=1)
            s = r[:, None] * (1 - r[None, :]) + r[None, :] * (1 - r[:, None])
            k += n - hamming(x[t]) / (2 * s + 1e-3)
    return np.linalg.slogdet(k)[1]


def hamming_score(pops):
    b = pops[0][2].shape[1]
    k = np.zeros((b, b))
    for _, n, x in pops:
        for t in range(x.shape[0]):
            k += n - hamming(x[t])
    return np.linalg.slogdet(k)[1]


def spike_case(rng):
    t, b, labels, pops = make_spikes(rng)
    return {
        "t": t,
        "b": b,
        "labels": labels.tolist(),
        "pops": [{"name": name, "neurons": n, "dense": x.ravel().tolist()} for name, n, x in pops],
        "expected": {
            "rdm_matrix": rdm(pops).ravel().tolist(),
            "rdm": off_diag_mean(rdm(pops)),
            "rdm_late_1": off_diag_mean(rdm(pops[-1:])),
            "rdm_late_2": off_diag_mean(rdm(pops[-2:])),
            "rdm_rate": off_diag_mean(rdm_rate(pops)),
            "rdm_corr": off_diag_mean(rdm_corr(pops)),
            "rdm_rsa": rdm_rsa(pops, labels),
            "sahd": sahd(pops),
            "hamming": hamming_score(pops),
        },
    }


def stats_case(rng):
    n = 30
    # Rounded values so that ties occur in every vector.
    x = np.round(rng.normal(size=n), 1)
    y = np.round(0.6 * x + rng.normal(size=n), 1)
    z = np.round(0.5 * x + 0.5 * rng.normal(size=n), 0)
    txy = stats.kendalltau(x, y).statistic
    txz = stats.kendalltau(x, z).statistic
    tyz = stats.kendalltau(y, z).statistic
    return {
        "x": x.tolist(),
        "y": y.tolist(),
        "z": z.tolist(),
        "ranks_z": stats.rankdata(z).tolist(),
        "pearson_xy": stats.pearsonr(x, y).statistic,
        "spearman_xy": stats.spearmanr(x, y).statistic,
        "spearman_xz": stats.spearmanr(x, z).statistic,
        "kendall_xy": txy,
        "kendall_xz": txz,
        "kendall_yz": tyz,
        "partial_kendall_xy_z": (txy - txz * tyz) / np.sqrt((1 - txz**2) * (1 - tyz**2)),
        "median_x": float(np.median(x)),
        "median_x_odd": float(np.median(x[:-1])),
    }


def logdet_cases(rng):
    cases = []
    for n in [1, 2, 5, 9]:
        m = rng.normal(size=(n, n))
        cases.append({"n": n, "m": m.ravel().tolist(), "logabsdet": np.linalg.slogdet(m)[1]})
    # A symmetric positive definite kernel with a large common offset, like hamming's.
    a = rng.integers(0, 40, size=(8, 8)).astype(float)
    k = a @ a.T + 1000.0
    cases.append({"n": 8, "m": k.ravel().tolist(), "logabsdet": np.linalg.slogdet(k)[1]})
    # Singular by construction (row 4 = row 1): expected null.
    s = rng.normal(size=(6, 6))
    s[4] = s[1]
    cases.append({"n": 6, "m": s.ravel().tolist(), "logabsdet": None})
    return cases


def main():
    rng = np.random.default_rng(SEED)
    fixture = {
        "generator": f"scripts/make_fitness_fixture.py (numpy {np.__version__}, scipy {scipy.__version__})",
        "seed": SEED,
        "spikes": spike_case(rng),
        "stats": stats_case(rng),
        "logdet": logdet_cases(rng),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
