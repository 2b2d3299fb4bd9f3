"""The k-means baseline of the DCGAN paper's Table 1: Coates & Ng (2011) single-layer features."""
from __future__ import annotations

import numpy as np
import torch

# Coates & Ng's features improve with K (their CIFAR-10 curve: ~1600 best, 4 x 1600 = 6400 features);
# 800 (3200 features) keeps the encoding of ~30k 32 px images near a minute on 2 CPU cores.
DEFAULT_KMEANS_CENTROIDS = 800
DEFAULT_KMEANS_PATCHES = 100_000  # random training patches for whitening and k-means
KMEANS_ITERATIONS = 20  # Lloyd iterations (Coates & Ng's reference code uses 10)


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
