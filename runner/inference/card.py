"""The model card: everything between a raw input and a run's best.pt, as plain data.

A training run writes it as checkpoints/model.json when it starts; the predictor reads it to
prepare raw inputs exactly as training did, and `runner export` writes it beside each export
as config.json (with channels_last false: exported graphs take contiguous inputs).
"""

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

CARD = "model.json"  # in the run's checkpoints/
FORMAT = 1  # raised when a field changes meaning


@dataclass(frozen=True)
class ModelCard:
    format: int
    task: str  # classification or regression
    dataset: str
    input_shape: list  # one sample's shape, e.g. [1, 8, 8]
    input_dtype: str  # what the dataset gives: uint8 images, float32 features
    num_outputs: int
    class_names: list  # [] for regression or unnamed classes
    feature_names: list  # a table's columns, in order; [] otherwise
    normalize: dict  # {"mean": ..., "std": ...}: the training split's statistics, broadcastable to a batch
    channels_last: bool  # the memory format the model ran in
    model: dict  # the model's config: `_target_` and its arguments

    @classmethod
    def of(cls, cfg, normalize, input_dtype, class_names, feature_names, channels_last):
        """The card of a run with resolved config `cfg` (plain data) and its data's normaliser
        (data.batches.Normalizer)."""
        dataset = cfg["dataset"]
        return cls(
            format=FORMAT,
            task=dataset["task"],
            dataset=dataset["name"],
            input_shape=list(dataset["input_shape"]),
            input_dtype=str(input_dtype).removeprefix("torch."),
            num_outputs=dataset["num_classes"],
            class_names=list(class_names),
            feature_names=list(feature_names),
            normalize={"mean": normalize.mean.tolist(), "std": normalize.std.tolist()},
            channels_last=channels_last,
            model=cfg["model"],
        )

    @classmethod
    def read(cls, path):
        """The card in the JSON file `path` (OSError and ValueError as reading and parsing raise them)."""
        return cls(**json.loads(Path(path).read_text()))

    def for_export(self):
        """The card an export carries: exported graphs take contiguous (not channels-last) inputs."""
        return replace(self, channels_last=False)

    def labels(self):
        """The class names, or the class indices as strings where the data named none."""
        return self.class_names or [str(i) for i in range(self.num_outputs)]

    def to_dict(self):
        return asdict(self)
