"""The DCGAN paper's representation experiment (its Tables 1-2): a linear L2-SVM on discriminator features.

Radford et al. (2015, section 5.1) use a trained discriminator as a feature extractor for supervised
classification with few labels: every conv layer's activation is max-pooled to 4x4 and the results
are concatenated (`explorer.features.discriminator_features`, the project's one extractor), then a
regularised linear L2-SVM is trained. They report 82.8% on CIFAR-10 (vs 80.6% for a 1-layer k-means
baseline) and 22.48% SVHN test error with 1000 labels.

Protocol implemented here, per draw d = 0 .. draws-1 (seeded by (seed, d)):

  * labelled set: `labels_per_class` images per class from the train split (1000 for 10 classes);
  * validation set: `val_per_class` further images per class from the train split, disjoint from
    the labelled ones, used only to choose the SVM's C from a log grid;
  * features are standardised with mean/std fitted on the labelled set only;
  * the SVM (sklearn LinearSVC, penalty="l2", loss="squared_hinge": the L2-SVM, one-vs-rest) is refit
    on the labelled set with the chosen C and scored on the test subset, which is the same for every
    draw and every method.

The test split is never used to choose anything. Each method's features are computed once for all
images any draw touches (the union of the draws' labelled and validation sets, plus the test subset).

Methods (the comparison of the paper's Table 1, plus a random-weight control):

  discriminator  the trained D's features (`discriminator_features`)
  pixels         raw pixels scaled to [-1, 1], flattened
  kmeans         Coates & Ng (2011) single layer: 6x6 patches, per-patch brightness/contrast
                 normalisation, ZCA whitening, k-means, "triangle" encoding, sum-pooled over the four
                 image quadrants (4K features); fitted on unlabelled train images only
  random_d       the same D architecture freshly initialised (the project's N(0, 0.02) `init_weights`,
                 seeded), through the same feature extractor: how much comes from the architecture alone

`representation_table` returns a JSON-serialisable dict; `format_table` renders it as Markdown.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from explorer.datasets import ImageDataset, resize_batch
from explorer.features import discriminator_features
from explorer.images import from_uint8
from explorer.model import Discriminator

METHODS = ("discriminator", "pixels", "kmeans", "random_d")
METHOD_NAMES = {
    "discriminator": "DCGAN discriminator (trained)",
    "pixels": "raw pixels",
    "kmeans": "1-layer k-means (Coates & Ng 2011)",
    "random_d": "same D, random N(0, 0.02) weights",
}
# C = 1e-5 .. 1 in decades. Features are standardised (unit variance per dimension), so the useful
# range depends mostly on the dimension and the number of labels, not on the method's scale. With
# 1000 labels and >= 1000 dims the labelled set is separable: past C ~ 1e-2 the squared-hinge solution
# is already near the hard-margin one (validation accuracy flat), while liblinear's iterations -- the
# cost -- grow with C; a half-decade grid doubles the run time for < 1 point of selection resolution.
DEFAULT_C_GRID = tuple(float(10.0**e) for e in range(-5, 1))
# Coates & Ng's features improve with K (their CIFAR-10 curve: ~1600 best, 4 x 1600 = 6400 features);
# 800 (3200 features) keeps the encoding of ~30k 32 px images near a minute on 2 CPU cores.
DEFAULT_KMEANS_CENTROIDS = 800
DEFAULT_KMEANS_PATCHES = 100_000  # random training patches for whitening and k-means
KMEANS_ITERATIONS = 20  # Lloyd iterations (Coates & Ng's reference code uses 10)
SVM_MAX_ITER = 10_000  # liblinear iterations; a fit that still has not converged is counted, not hidden

Progress = Callable[[str], None] | None


# ---------------------------------------------------------------------------------------------
# Statistics and sampling
# ---------------------------------------------------------------------------------------------


def ci95(values: Sequence[float]) -> float | None:
    """Half-width of the 95% confidence interval of the mean: t_{0.975, n-1} * s / sqrt(n) (Student t).

    s is the sample standard deviation (ddof=1). None for fewer than two values (no spread to estimate).
    """
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    return float(t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))


def draw_splits(
    labels: np.ndarray, labels_per_class: int, val_per_class: int, draws: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per draw, (labelled indices, validation indices) into `labels`, class-balanced and disjoint.

    Draw d uses numpy's generator seeded with (seed, d), so draw d is the same whatever `draws` is.
    Each class contributes `labels_per_class` labelled and `val_per_class` validation images; a class
    with fewer than their sum raises ValueError. Indices are sorted (int64).
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    need = labels_per_class + val_per_class
    counts = {int(c): int((labels == c).sum()) for c in classes}
    short = {c: n for c, n in counts.items() if n < need}
    if short:
        raise ValueError(
            f"every class needs {labels_per_class} labelled + {val_per_class} validation train images; "
            f"too few in class(es) {short}"
        )
    by_class = [np.flatnonzero(labels == c) for c in classes]
    splits = []
    for d in range(draws):
        rng = np.random.default_rng([seed, d])
        labelled, validation = [], []
        for members in by_class:
            chosen = rng.choice(members, size=need, replace=False)
            labelled.append(chosen[:labels_per_class])
            validation.append(chosen[labels_per_class:])
        splits.append((np.sort(np.concatenate(labelled)).astype(np.int64), np.sort(np.concatenate(validation)).astype(np.int64)))
    return splits


# ---------------------------------------------------------------------------------------------
# Feature extractors (all: uint8 images (N, C, S, S) -> float32 (N, dim))
# ---------------------------------------------------------------------------------------------


def pixel_features(images: torch.Tensor) -> np.ndarray:
    """Raw pixels: uint8 (N, C, S, S) -> float32 (N, C*S*S) in [-1, 1] (the scaling D sees)."""
    return from_uint8(torch.as_tensor(images)).flatten(1).numpy()


def random_discriminator(D: Discriminator, seed: int = 0) -> Discriminator:
    """D's architecture with fresh weights: the model's own N(0, 0.02) init (`init_weights`, applied by
    the constructor) under `torch.manual_seed(seed)`, like training's start. The global RNG is left as it was.
    Eval mode (BN running stats at their init: mean 0, var 1), on D's device."""
    device = next(D.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = Discriminator(D.config)
    return fresh.to(device).eval()


class KMeansFeatures:
    """Coates & Ng (2011) single-layer features: "An Analysis of Single-Layer Networks in Unsupervised
    Feature Learning" (their CIFAR-10 pipeline, the k-means baseline of the DCGAN paper's Table 1).

    fit(images): sample `n_patches` random `patch`x`patch` patches (all channels) from the images,
    normalise each (subtract its mean, divide by sqrt(var + 10), var in squared 0-255 pixel units),
    ZCA-whiten (eigenvalues + 0.1) and run k-means with `centroids` clusters.
    transform(images): every patch at `stride`, normalised and whitened the same way; distances z_k to
    the centroids, the "triangle" code f_k = max(0, mean(z) - z_k), summed over the four quadrants
    of the patch grid -> (N, 4 * centroids) float32. The patch sweep is one unfold + matmul per batch.
    """

    def __init__(
        self,
        centroids: int = DEFAULT_KMEANS_CENTROIDS,
        patch: int | None = None,
        stride: int | None = None,
        n_patches: int = DEFAULT_KMEANS_PATCHES,
        seed: int = 0,
    ):
        self.centroids = int(centroids)
        self.patch = patch  # None: 6 (Coates & Ng's best for 32 px), 5 below 32 px
        self.stride = stride  # None: 1 up to 32 px, then image_size // 32 (keeps ~27x27 positions)
        self.n_patches = int(n_patches)
        self.seed = int(seed)
        self.mean_: torch.Tensor | None = None  # (D,) mean of normalised patches, D = C * patch**2
        self.whiten_: torch.Tensor | None = None  # (D, D) ZCA matrix
        self.centers_: torch.Tensor | None = None  # (K, D) in whitened space

    @property
    def dim(self) -> int:
        return 4 * self.centroids

    def _geometry(self, size: int) -> tuple[int, int]:
        patch = self.patch or (6 if size >= 32 else 5)
        stride = self.stride or max(1, size // 32)
        return patch, stride

    @staticmethod
    def _normalise(patches: torch.Tensor) -> torch.Tensor:
        """(..., D) float patches in 0-255 units -> brightness and contrast normalised (Coates: var + 10)."""
        mean = patches.mean(-1, keepdim=True)
        var = patches.var(-1, keepdim=True)  # unbiased, as MATLAB's var in the reference code
        return (patches - mean) / torch.sqrt(var + 10.0)

    def fit(self, images: torch.Tensor) -> "KMeansFeatures":
        from sklearn.cluster import KMeans

        images = torch.as_tensor(images)
        n, _, size, _ = images.shape
        patch, _ = self._geometry(size)
        rng = np.random.default_rng([self.seed, 1])
        # Coates & Ng draw patches uniformly over images and positions.
        which = rng.integers(0, n, self.n_patches)
        rows = rng.integers(0, size - patch + 1, self.n_patches)
        cols = rng.integers(0, size - patch + 1, self.n_patches)
        offsets = torch.arange(patch)
        r = torch.as_tensor(rows)[:, None] + offsets  # (P, patch)
        c = torch.as_tensor(cols)[:, None] + offsets
        # (P, C, patch, patch) gathered by advanced indexing; channel-major flattening matches F.unfold.
        gathered = images[torch.as_tensor(which)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None],
                          r[:, None, :, None], c[:, None, None, :]]
        x = self._normalise(gathered.flatten(1).double())
        self.mean_ = x.mean(0)
        cov = torch.cov((x - self.mean_).T)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        self.whiten_ = eigenvectors @ torch.diag(1.0 / torch.sqrt(eigenvalues.clamp_min(0) + 0.1)) @ eigenvectors.T
        white = ((x - self.mean_) @ self.whiten_).float().numpy()
        # Coates & Ng's reference code: random initial centroids and a few Lloyd iterations (10). k-means++
        # init (sklearn's default) costs more than the whole fit at K = 800+ for no gain in the features.
        kmeans = KMeans(n_clusters=self.centroids, init="random", n_init=1, max_iter=KMEANS_ITERATIONS, random_state=self.seed)
        kmeans.fit(white)
        self.centers_ = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
        self.mean_, self.whiten_ = self.mean_.float(), self.whiten_.float()
        return self

    @torch.no_grad()
    def transform(self, images: torch.Tensor, progress: Progress = None) -> np.ndarray:
        if self.centers_ is None:
            raise RuntimeError("KMeansFeatures.transform before fit")
        images = torch.as_tensor(images)
        n, _, size, _ = images.shape
        patch, stride = self._geometry(size)
        side = (size - patch) // stride + 1  # patch positions per row/column (27 for 32 px, 6x6, stride 1)
        half = (side + 1) // 2  # quadrant split as Coates's round(prows / 2)
        k, positions = self.centroids, side * side
        centers_t = self.centers_.T.contiguous()  # (D, K)
        center_sq = (self.centers_**2).sum(1)  # (K,)
        # Sum pooling as one matmul: (4, L) 0/1 masks of the quadrants of the side x side patch grid.
        top = torch.arange(side) < half
        pool = torch.stack([(a[:, None] & b[None, :]).flatten() for a in (top, ~top) for b in (top, ~top)]).float()
        out = np.empty((n, 4 * k), dtype=np.float32)
        # Batches keep the (B*L, K) distance matrix near 64 MB; the ops on it are in place.
        batch = max(1, (1 << 24) // (positions * k))
        for start in range(0, n, batch):
            x = images[start : start + batch].float()
            b = x.shape[0]
            # (B, C, side, side, patch, patch) -> (B*L, D), D = C*patch*patch channel-major (F.unfold's
            # layout; Tensor.unfold is a strided view, far faster than F.unfold on CPU here).
            cols = x.unfold(2, patch, stride).unfold(3, patch, stride).permute(0, 2, 3, 1, 4, 5).reshape(b * positions, -1)
            white = (self._normalise(cols) - self.mean_) @ self.whiten_  # (B*L, D)
            # z = ||white - c_k|| = sqrt(|w|^2 - 2 w.c + |c|^2), (B*L, K)
            z = torch.addmm(center_sq, white, centers_t, alpha=-2.0)
            z.add_((white * white).sum(1, keepdim=True)).clamp_min_(0).sqrt_()
            mean = z.mean(1, keepdim=True)
            code = z.neg_().add_(mean).clamp_min_(0)  # triangle: max(0, mean(z) - z_k)
            out[start : start + b] = torch.matmul(pool, code.reshape(b, positions, k)).reshape(b, 4 * k).numpy()
        return out


# ---------------------------------------------------------------------------------------------
# The SVM
# ---------------------------------------------------------------------------------------------


class L2SVM:
    """sklearn's LinearSVC(penalty="l2", loss="squared_hinge") -- the L2-SVM, one-vs-rest -- fitted in the
    row space of its training matrix, which gives the same classifier much faster when dim >> n.

    Why this is exact: liblinear's objective is 0.5 * (|w|^2 + b^2) + C * sum squared hinge (the
    intercept is a regularised constant feature), so the optimal w is a combination of the training
    rows, and the dual coordinate descent it runs sees the data only through inner products x_i . x_j.
    With V (dim, r) an orthonormal basis of the rows' span, the rows X V (n, r) have the same inner
    products; the SVM fitted on them has w' = V^T w, and w = V w' scores any other image. At
    1000 x 7168 standardised D features that is ~10x faster per fit for the same iterates.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.y = np.asarray(y)
        self.classes = np.unique(self.y)
        # Thin SVD: x = U S Vt; rows of Vt with non-negligible singular values span the rows of x.
        _, singular, vt = np.linalg.svd(np.asarray(x, dtype=np.float64), full_matrices=False)
        keep = singular > singular[0] * 1e-10 if singular.size and singular[0] > 0 else np.zeros(0, bool)
        self.basis = vt[keep].T  # (dim, r)
        self.reduced = np.asarray(x, dtype=np.float64) @ self.basis  # (n, r)

    def fit(self, c: float) -> tuple[np.ndarray, np.ndarray, bool]:
        """-> (coef (k, dim) in the original space, intercept (k,), converged). k = 1 for two classes."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        model = LinearSVC(penalty="l2", loss="squared_hinge", C=c, dual=True, max_iter=SVM_MAX_ITER, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(self.reduced, self.y)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return model.coef_ @ self.basis.T, model.intercept_, converged

    def predict(self, coef: np.ndarray, intercept: np.ndarray, x: np.ndarray) -> np.ndarray:
        scores = x @ coef.T + intercept  # (n, k)
        if scores.shape[1] == 1:  # binary: one decision function, positive = classes[1]
            return self.classes[(scores[:, 0] > 0).astype(int)]
        return self.classes[scores.argmax(1)]

    def separates(self, coef: np.ndarray, intercept: np.ndarray, tolerance: float = 1e-2) -> bool:
        """Every one-vs-rest margin on the training rows >= 1 - tolerance: the hard-margin regime.

        Once the squared-hinge solution has no slack it is the minimum-norm separating one, and it is
        also the solution for every larger C, so fitting larger Cs would return the same classifier.
        """
        scores = self.reduced @ (coef @ self.basis).T + intercept  # (n, k), in the reduced space
        if scores.shape[1] == 1:
            signs = np.where(self.y == self.classes[1], 1.0, -1.0)[:, None]
        else:
            signs = np.where(self.y[:, None] == self.classes[None, :], 1.0, -1.0)
        return bool((signs * scores).min() >= 1.0 - tolerance)


def evaluate_features(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    progress: Progress = None,
    name: str = "",
) -> dict:
    """The SVM protocol on precomputed features; `splits` index rows of `train_features`.

    Per split: standardise with the labelled rows' mean/std, fit the L2-SVM on the labelled rows for
    each C of the grid (ascending), pick C by validation accuracy (ties: the smallest C, the most
    regularised) and score that classifier -- fitted on the labelled rows only, so it is the refit --
    on all test rows. Cs above the first one whose solution separates the labelled set with no slack
    are not fitted: they give the same classifier (`L2SVM.separates`), and count as ties.
    """
    from sklearn.preprocessing import StandardScaler

    c_grid = sorted(float(c) for c in c_grid)
    accuracies, chosen, val_best, unconverged, fits = [], [], [], 0, 0
    for d, (labelled, validation) in enumerate(splits):
        scaler = StandardScaler().fit(train_features[labelled])
        svm = L2SVM(scaler.transform(train_features[labelled]), train_labels[labelled])
        x_val, y_val = scaler.transform(train_features[validation]), train_labels[validation]
        best_score, best = -1.0, None
        for c in c_grid:
            coef, intercept, ok = svm.fit(c)
            fits += 1
            unconverged += not ok
            score = float((svm.predict(coef, intercept, x_val) == y_val).mean())
            if score > best_score:  # strict: among equal scores the smallest C stays
                best_score, best = score, (c, coef, intercept)
            if svm.separates(coef, intercept):
                break
        c, coef, intercept = best
        accuracy = float((svm.predict(coef, intercept, scaler.transform(test_features)) == test_labels).mean())
        accuracies.append(accuracy)
        chosen.append(c)
        val_best.append(best_score)
        if progress:
            progress(f"{name} draw {d + 1}/{len(splits)}: C={c:.0e} val {best_score:.2%} test {accuracy:.2%}")
    mean = float(np.mean(accuracies))
    return {
        "accuracy_mean": mean,
        "accuracy_ci95": ci95(accuracies),
        "error_mean": 1.0 - mean,
        "accuracies": accuracies,
        "C": chosen,
        "val_accuracy": val_best,
        "svm_fits": fits,
        "unconverged_fits": unconverged,
        "dim": int(train_features.shape[1]),
    }


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _prepare(dataset: ImageDataset, indices: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 images at `indices`, resized (the readers' centre-crop + antialiased resize) to image_size."""
    images = dataset.images[torch.as_tensor(indices)]
    if images.shape[-2:] != (image_size, image_size):
        images = resize_batch(images, image_size)
    return images


def representation_table(
    D: Discriminator | None,
    train: ImageDataset,
    test: ImageDataset,
    labels_per_class: int = 100,
    draws: int = 10,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    max_test: int | None = 10000,
    progress: Progress = None,
    *,
    val_per_class: int = 100,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    kmeans_centroids: int = DEFAULT_KMEANS_CENTROIDS,
    kmeans_patches: int = DEFAULT_KMEANS_PATCHES,
    batch_size: int = 256,
) -> dict:
    """The paper's few-label linear-SVM evaluation of `methods` on a labelled train/test pair.

    D: the trained discriminator (its config fixes the image size and channel count every method
    sees; needed for "discriminator" and "random_d", optional otherwise). train/test: labelled
    ImageDatasets; images of another size are resized to D's, another channel count raises
    ValueError. max_test: a seeded random subset of the test split (None: all of it), the same for
    every draw and method. Returns {"protocol": {...}, "results": {method: {...}}}, JSON-serialisable;
    accuracies are fractions in [0, 1], accuracy_ci95 the half-width over draws (None for one draw).
    """
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; choose from {METHODS}")
    if train.labels is None or test.labels is None:
        raise ValueError("the representation experiment needs class labels on both the train and the test split")
    if draws < 1 or labels_per_class < 1 or val_per_class < 1:
        raise ValueError("draws, labels_per_class and val_per_class must be positive")
    needs_d = [m for m in methods if m in ("discriminator", "random_d")]
    if D is None and needs_d:
        raise ValueError(f"method(s) {needs_d} need a discriminator")
    image_size = D.config.image_size if D is not None else int(train.images.shape[-1])
    channels = D.config.channels if D is not None else train.channels
    for role, dataset in (("train", train), ("test", test)):
        if dataset.channels != channels:
            raise ValueError(
                f"the {role} images have {dataset.channels} channel(s) but the discriminator takes {channels}; "
                f"load the dataset with channels={channels} (e.g. load_dataset(spec, channels={channels}))"
            )
    say = progress or (lambda message: None)

    train_labels = train.labels.numpy().astype(np.int64)
    test_labels_all = test.labels.numpy().astype(np.int64)
    splits = draw_splits(train_labels, labels_per_class, val_per_class, draws, seed)
    pool = np.unique(np.concatenate([np.concatenate(pair) for pair in splits]))  # train rows any draw uses
    # Splits re-indexed into rows of the pool's feature matrix.
    local = [(np.searchsorted(pool, lab), np.searchsorted(pool, val)) for lab, val in splits]
    if max_test is not None and max_test < len(test):
        test_rows = np.sort(np.random.default_rng([seed, 1 << 20]).choice(len(test), size=max_test, replace=False))
    else:
        test_rows = np.arange(len(test))
    pool_labels, test_labels = train_labels[pool], test_labels_all[test_rows]
    pool_images = _prepare(train, pool, image_size)
    test_images = _prepare(test, test_rows, image_size)
    say(f"{len(pool):,} train images in {draws} draw(s), {len(test_rows):,} test images, {image_size} px")

    results, timings = {}, {}
    kmeans = None
    for method in methods:
        start = time.perf_counter()
        if method == "discriminator":
            features = [discriminator_features(D, x, batch_size=batch_size) for x in (pool_images, test_images)]
        elif method == "random_d":
            fresh = random_discriminator(D, seed)
            features = [discriminator_features(fresh, x, batch_size=batch_size) for x in (pool_images, test_images)]
        elif method == "pixels":
            features = [pixel_features(x) for x in (pool_images, test_images)]
        else:
            # Fitted on unlabelled train images: a seeded sample of up to 20k of the whole split.
            rng = np.random.default_rng([seed, 2])
            fit_rows = np.sort(rng.choice(len(train), size=min(len(train), 20_000), replace=False))
            kmeans = KMeansFeatures(centroids=kmeans_centroids, n_patches=kmeans_patches, seed=seed)
            kmeans.fit(_prepare(train, fit_rows, image_size))
            say(f"kmeans: {kmeans_centroids} centroids fitted in {time.perf_counter() - start:.0f} s")
            features = [kmeans.transform(x) for x in (pool_images, test_images)]
        extracted = time.perf_counter() - start
        say(f"{method}: {features[0].shape[1]}-dim features of {len(pool) + len(test_rows):,} images in {extracted:.0f} s")
        results[method] = evaluate_features(
            features[0], pool_labels, features[1], test_labels, local, c_grid, progress=progress, name=method
        )
        timings[method] = time.perf_counter() - start
        results[method]["seconds"] = round(timings[method], 1)
        results[method]["feature_seconds"] = round(extracted, 1)
        del features

    n_classes = int(len(np.unique(train_labels)))
    protocol = {
        "train": train.spec,
        "test": test.spec,
        "classes": n_classes,
        "class_names": list(train.class_names) if train.class_names else None,
        "labels_per_class": labels_per_class,
        "labelled": labels_per_class * n_classes,
        "val_per_class": val_per_class,
        "validation": val_per_class * n_classes,
        "draws": draws,
        "seed": seed,
        "train_images_used": int(len(pool)),
        "test_size": int(len(test_rows)),
        "image_size": image_size,
        "channels": channels,
        "C_grid": [float(c) for c in c_grid],
        "svm": "sklearn LinearSVC(penalty='l2', loss='squared_hinge', dual=True), one-vs-rest, fitted in the "
        f"labelled rows' span (exact); max_iter={SVM_MAX_ITER}; features standardised on the labelled set; "
        "C by validation accuracy (ties: smallest C); Cs past the hard-margin point not fitted (same solution)",
        "ci": "95% Student-t interval half-width over draws",
        "feature_dims": {m: results[m]["dim"] for m in methods},
    }
    if kmeans is not None:
        patch, stride = kmeans._geometry(image_size)
        protocol["kmeans"] = {
            "centroids": kmeans.centroids, "patch": patch, "stride": stride, "patches": kmeans.n_patches,
            "whitening": "ZCA, eigenvalues + 0.1", "encoding": "triangle, 4-quadrant sum pooling",
        }
    return {"protocol": protocol, "results": results}


def format_table(result: dict) -> str:
    """Markdown: one row per method with feature dim, accuracy mean +- 95% CI, error and the chosen Cs."""
    protocol = result["protocol"]
    lines = [
        f"{protocol['labelled']} labels ({protocol['labels_per_class']} per class), C from "
        f"{protocol['validation']} validation images, {protocol['draws']} draws, test n = {protocol['test_size']}",
        "",
        "| method | features | accuracy (mean ± 95% CI) | error | chosen C (min–max) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for method, row in result["results"].items():
        interval = row["accuracy_ci95"]
        accuracy = f"{100 * row['accuracy_mean']:.2f}%" + (f" ± {100 * interval:.2f}" if interval is not None else "")
        cs = f"{min(row['C']):.0e}–{max(row['C']):.0e}" if min(row["C"]) != max(row["C"]) else f"{row['C'][0]:.0e}"
        lines.append(
            f"| {METHOD_NAMES.get(method, method)} | {row['dim']:,} | {accuracy} | {100 * row['error_mean']:.2f}% | {cs} |"
        )
    return "\n".join(lines)
