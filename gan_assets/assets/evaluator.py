"""`evaluator`: the classifier whose features and predictions every metric is measured in."""


import hashlib

import dagster as dg

from gan_assets.assets.experiment_config import config_deps, config_metadata, experiments_partitions, load_config
from gan_assets.core.data.images import Examples
from gan_assets.core.evaluation.classifier import Classifier, accuracy, train_classifier
from gan_assets.core.evaluation.devices import released
from gan_assets.core.runtime.device import prepare_device
from gan_assets.resources.store import ExperimentStore
from gan_assets.resources.torch_device import TorchDevice

MIN_ACCURACY = 0.95  # below this, class coverage and class KL measure the classifier, not the GAN


@dg.asset(partitions_def=experiments_partitions, deps=config_deps("evaluator", "seed"),
          code_version="1", group_name="gan", kinds={"pytorch"},
          check_specs=[dg.AssetCheckSpec("accuracy_at_least_95", asset="evaluator",
                                         description=f"held-out accuracy ≥ {MIN_ACCURACY:.0%}")])
def evaluator(context: dg.AssetExecutionContext, store: ExperimentStore, torch_device: TorchDevice, dataset: Examples):
    """A small CNN (an MLP on 2-D points' modes) trained on the train split, on the deployment's device;
    held-out accuracy is checked."""
    config = load_config(context, store, dataset)
    train, held_out = dataset.subset("train"), dataset.subset("held_out")
    with released(prepare_device(torch_device.settings())) as device:  # as training: deterministic kernels unless off
        model = train_classifier(train.examples, train.labels, len(dataset.class_names), config.evaluator,
                                 config.seed, device)
        held_out_accuracy = accuracy(model, held_out.examples, held_out.labels, device)
        train_accuracy = accuracy(model, train.examples, train.labels, device)
    context.log.info(f"evaluator held-out accuracy {held_out_accuracy:.4f} (trained on {device})")
    yield dg.Output(model, data_version=dg.DataVersion(weights_hash(model)), metadata={
        "held_out_accuracy": held_out_accuracy,
        "train_accuracy": train_accuracy,
        "feature_dim": config.evaluator.feature_dim,
        "device": str(device),
        **config_metadata(config),
    })
    yield dg.AssetCheckResult(check_name="accuracy_at_least_95", passed=held_out_accuracy >= MIN_ACCURACY,
                              metadata={"held_out_accuracy": held_out_accuracy, "threshold": MIN_ACCURACY})


def weights_hash(model: Classifier) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
