"""NTKClassifier and NNGPClassifier: classification by centered one-hot regression."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from lazykit.estimators._base import NeuralKernelModel


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the probability simplex.

    Keeps the order of the entries of each row (so the arg-max), and leaves a
    row that is already a probability vector unchanged (Duchi et al. 2008).

    Examples:
        >>> import numpy as np
        >>> from lazykit.estimators.classification import project_to_simplex
        >>> project_to_simplex(np.array([[0.7, 0.4, -0.1], [0.2, 0.3, 0.5]])).round(6)
        array([[0.65, 0.35, 0.  ],
               [0.2 , 0.3 , 0.5 ]])
    """
    u = -np.sort(-v, axis=-1)
    cumulative = np.cumsum(u, axis=-1) - 1.0
    index = np.arange(1, v.shape[-1] + 1)
    support = np.sum(u - cumulative / index > 0, axis=-1, keepdims=True)
    theta = np.take_along_axis(cumulative, support - 1, axis=-1) / support
    return np.maximum(v - theta, 0.0)


class _FlowClassifier(ClassifierMixin, NeuralKernelModel):
    """Regression of the centered one-hot encoding of the labels (see NTKClassifier)."""

    def fit(self, X, y):
        """Regress the centered one-hot encoding of ``y`` (at least two classes).

        Args:
            X: training inputs (n_samples, n_features), or their Gram matrix if
                ``network="precomputed"``.
            y: class labels, shape (n_samples,).

        Returns:
            self
        """
        source, X, y = self._validate_train_inputs(X, y)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        n_classes = self.classes_.shape[0]
        if n_classes < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got "
                             f"1 class ({self.classes_[0]!r}).")
        targets = np.full((labels.shape[0], n_classes), -1.0 / n_classes)
        targets[np.arange(labels.shape[0]), labels] += 1.0
        self._fit_targets(source, X, targets)
        return self

    def _outputs(self, X, t):
        mean, _, scalar = self._flow_outputs(X, t)
        return mean[0] if scalar else mean

    def decision_function(self, X, *, t=None):
        """Ensemble-mean outputs: (n_test, n_classes), or for two classes f_1 - f_0 (n_test,).

        ``t`` works as in :meth:`predict_proba`.
        """
        outputs = self._outputs(X, t)
        if self.classes_.shape[0] == 2:
            return outputs[..., 1] - outputs[..., 0]
        return outputs

    def predict(self, X, *, t=None):
        """The class whose ensemble-mean output is largest."""
        outputs = self._outputs(X, t)
        return self.classes_[np.argmax(outputs, axis=-1)]

    def predict_proba(self, X, *, t=None):
        """Least-squares estimates of P(y = c | x), projected onto the probability simplex.

        Regressing the one-hot indicator 1[y = c] under squared loss estimates
        its conditional mean P(y = c | x); the ensemble's output for class c,
        plus the 1/n_classes removed by centering, is that estimate. It sums to
        1 over classes but can leave [0, 1], so it is projected (Euclidean
        projection) onto the simplex. These are *not* calibrated posterior
        probabilities (wrap the classifier in
        ``sklearn.calibration.CalibratedClassifierCV`` for those); their
        order is that of :meth:`decision_function`.

        Args:
            X: test inputs (or their kernel with the training inputs if precomputed).
            t: training time(s); None means the estimator's ``t``; a 1-D array
                adds a leading time axis.

        Returns:
            Array (n_test, n_classes), columns in the order of ``classes_``.
        """
        outputs = self._outputs(X, t)
        return project_to_simplex(outputs + 1.0 / self.classes_.shape[0])


class NTKClassifier(_FlowClassifier):
    """Infinite-width network classifier: NTK regression of centered one-hot labels.

    Each class c gets a target column 1[y = c] - 1/n_classes; the estimator
    fits the infinite ensemble of networks trained by gradient flow on the
    mean squared error to all columns at once, exactly as
    :class:`NTKRegressor` (same arguments; ``k = n_classes`` outputs).
    ``decision_function`` is the ensemble-mean output, ``predict`` its
    arg-max, and ``predict_proba`` the regression estimate of P(y = c | x)
    projected onto the simplex (see :meth:`predict_proba`).

    Attributes:
        classes_: class labels.
        X_fit_, dual_coef_, solver_, solver_choice_, diagnostics_, n_features_in_: as in
            :class:`NTKRegressor`.

    Examples:
        >>> import lazykit
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = lazykit.NTKClassifier(depth=2, ridge=1e-3).fit(X, y)
        >>> clf.score(X, y) > 0.95, clf.predict_proba(X[:2]).shape
        (True, (2, 3))
    """

    _kind = "ntk"


class NNGPClassifier(_FlowClassifier):
    """Infinite-width network classifier with the NNGP kernel (Bayesian, or readout-only training).

    As :class:`NTKClassifier` with the NNGP in place of the NTK: with
    ``t=None`` the decision values are the GP posterior means of the centered
    one-hot targets (the approach of Lee et al. 2018); a finite ``t`` trains
    only the readout layer for that time.

    Examples:
        >>> import lazykit
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> lazykit.NNGPClassifier(depth=2, ridge=1e-2).fit(X, y).score(X, y) > 0.95
        True
    """

    _kind = "nngp"
