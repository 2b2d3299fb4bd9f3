"""Evaluation: the DCGAN paper's experiments and sample-quality metrics, as functions over arrays.

Modules (no UI imports; `training.evaluate` is the command line over them):

    eval_net        the small CNN classifier used as FID's feature network and as the
                    ground-truth attribute scorer (trained by `training.eval_net`)
    fid             Frechet distance with torchmetrics on the eval net's (or Inception's) features
    representation  the paper's Tables 1-2: L2-SVM on discriminator features vs baselines
    arithmetic_eval vector arithmetic scored against ground truth (synthetic faces)
    memorization    nearest training images to samples, duplicate rate
    smoothness      frame-to-frame distances along lerp and slerp walks
"""
