"""Infinite-width networks as a tuning-light baseline on small data (Arora et al. 2019 protocol).

On the five datasets bundled with scikit-learn (breast_cancer, wine, iris,
digits; diabetes for regression), each model is scored by repeated
(stratified) 5-fold cross-validation; inside each outer training fold its
hyperparameters are chosen by an inner 3-fold grid search, as in Arora et al.,
"Harnessing the power of infinitely wide deep nets on small-data tasks"
(ICLR 2020). Models: lazykit's NTK and NNGP estimators (depth and ridge
tuned), a random forest, an RBF SVC (RBF kernel ridge for regression) and a
scikit-learn MLP, all after standardizing the features (and, for regression,
the target). Scores: accuracy (classification), R^2 (diabetes); the table
shows mean +- standard deviation over the outer folds.

Run:
    python examples/small_data.py          # quick: 1 repeat, small grids (several minutes)
    python examples/small_data.py --full   # the whole protocol: 2 repeats, full grids (~1 h)
    python examples/small_data.py --datasets iris,wine --models NTK,RBF
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from sklearn import datasets
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import lazykit

DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "iris": (datasets.load_iris, "classification"),
    "digits": (datasets.load_digits, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}

RIDGES = {"quick": [1e-3, 1e-1, 1.0], "full": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]}
DEPTHS = {"quick": [1, 3], "full": [1, 2, 3, 4, 5]}


def _models(task: str, grid: str) -> dict:
    """name -> (estimator, parameter grid) for the task; grid is "quick" or "full"."""
    classify = task == "classification"
    full = grid == "full"
    kernel_grid = {"model__depth": DEPTHS[grid], "model__ridge": RIDGES[grid]}
    forest = (RandomForestClassifier if classify else RandomForestRegressor)(
        n_estimators=300 if full else 100, random_state=0)
    mlp = (MLPClassifier if classify else MLPRegressor)(max_iter=500, random_state=0)
    return {
        "NTK": (lazykit.NTKClassifier() if classify else lazykit.NTKRegressor(), kernel_grid),
        "NNGP": (lazykit.NNGPClassifier() if classify else lazykit.NNGPRegressor(), kernel_grid),
        "RF": (forest, {"model__max_features": ["sqrt", 0.3, 1.0] if full else ["sqrt", 0.3],
                        "model__min_samples_leaf": [1, 3] if full else [1]}),
        "RBF": ((SVC() if classify else KernelRidge(kernel="rbf")),
                {"model__C": [0.1, 1.0, 10.0, 100.0] if full else [1.0, 10.0],
                 "model__gamma": ["scale", 0.01, 0.1] if full else ["scale", 0.1]}
                if classify else
                {"model__alpha": RIDGES[grid], "model__gamma": [0.01, 0.03, 0.1, 0.3]
                 if full else [0.03, 0.1]}),
        "MLP": (mlp, {"model__hidden_layer_sizes": [(128,), (256, 256)] if full else [(128,)],
                      "model__alpha": [1e-4, 1e-2, 1.0] if full else [1e-4, 1e-1]}),
    }


def _pipeline(estimator, task: str):
    pipe = Pipeline([("scale", StandardScaler()), ("model", estimator)])
    if task == "classification":
        return pipe
    return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())


def _grid_for(grid: dict, task: str) -> dict:
    if task == "classification":
        return grid
    return {f"regressor__{name}": values for name, values in grid.items()}


def evaluate(dataset: str, model: str, grid: str, repeats: int, seed: int = 0):
    """Outer-fold scores of ``model`` tuned by inner 3-fold grid search on ``dataset``."""
    loader, task = DATASETS[dataset]
    x, y = loader(return_X_y=True)
    estimator, param_grid = _models(task, grid)[model]
    if task == "classification":
        inner = StratifiedKFold(3, shuffle=True, random_state=seed)
        outer = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=seed)
    else:
        inner = KFold(3, shuffle=True, random_state=seed)
        outer = RepeatedKFold(n_splits=5, n_repeats=repeats, random_state=seed)
    search = GridSearchCV(_pipeline(estimator, task), _grid_for(param_grid, task), cv=inner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", lazykit.IllConditionedKernelWarning)
        return cross_val_score(search, x, y, cv=outer)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="2 repeats of 5-fold CV and the full grids (slow)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default="NTK,NNGP,RF,RBF,MLP")
    args = parser.parse_args(argv)
    grid, repeats = ("full", 2) if args.full else ("quick", 1)
    names, models = args.datasets.split(","), args.models.split(",")
    print(f"protocol: {repeats} x stratified 5-fold CV (outer), 3-fold grid search (inner), "
          f"{grid} grids; accuracy, R^2 for diabetes; mean +- std over outer folds\n")
    header = f"{'dataset':14s}" + "".join(f"{m:>16s}" for m in models)
    print(header)
    print("-" * len(header))
    elapsed = dict.fromkeys(models, 0.0)
    for dataset in names:
        row = f"{dataset:14s}"
        for model in models:
            start = time.perf_counter()
            scores = evaluate(dataset, model, grid, repeats)
            elapsed[model] += time.perf_counter() - start
            print(f"  {dataset} {model}: {scores.mean():.3f} +- {scores.std():.3f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
            row += f"{scores.mean():>10.3f} +-{scores.std():.3f}"
        print(row, flush=True)
    print(f"{'time (s)':14s}" + "".join(f"{elapsed[m]:>16.0f}" for m in models))


if __name__ == "__main__":
    main()
