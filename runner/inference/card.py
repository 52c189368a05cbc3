"""The model card: everything between a raw input and a run's best.pt, as plain data.

A training run writes it as checkpoints/model.json when it starts; the predictor reads it to
prepare raw inputs exactly as training did, and `runner export` writes it beside each export
as config.json (with channels_last false: exported graphs take contiguous inputs). Its
`preprocessing` block is the contract a deployment follows from an image file to the model's
float32 input; docs/predict-export.md defines each field. Cards written before the block
existed (format 1) are read as today's by inference.loading.run_card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.data.batches import Normalizer
    from runner.data.images import Resize

# in the run's checkpoints/
CARD = "model.json"
# raised when a field changes meaning (2: `preprocessing` replaced `normalize`; 3: image.shorter_side, a resize then
# a centre crop, which a reader of format 2 would skip)
FORMAT = 3
# the model's input layout, by the number of dimensions of one sample
LAYOUTS = {1: "NC", 2: "NCL", 3: "NCHW"}


@dataclass(frozen=True)
class ModelCard:
    format: int
    # classification or regression
    task: str
    dataset: str
    # one sample's shape, e.g. [1, 8, 8]
    input_shape: list[int]
    # what the dataset gives: uint8 images, float32 features
    input_dtype: str
    num_outputs: int
    # [] for regression or unnamed classes
    class_names: list[str]
    # a table's columns, in order; [] otherwise
    feature_names: list[str]
    # raw input -> the model's input: see preprocessing() below and docs/predict-export.md
    preprocessing: dict[str, Any]
    # the memory format the model ran in
    channels_last: bool
    # the model's config: `_target_` and its arguments
    model: dict[str, Any]
    # two classes: class 1 where its probability is at least this (trainer.threshold, or the F1-best on validation
    # for "tuned", written when the run ends); unused otherwise
    threshold: float = 0.5

    @classmethod
    def of(
        cls,
        cfg: dict[str, Any],
        normalize: Normalizer,
        input_dtype: Any,
        class_names: Sequence[str],
        feature_names: Sequence[str],
        channels_last: bool,
        table: dict[str, Any] | None = None,
        target_scale: dict[str, list[float]] | None = None,
    ) -> ModelCard:
        """The card of a run with resolved config `cfg` (plain data) and its data's normaliser
        (data.batches.Normalizer). `max_value` of the dataset's config, where it has one (digits), is the stored
        value of a white pixel; images are 0..255 otherwise. An image folder's `resize` and `interpolation` say how
        an image reaches input_shape."""
        from runner.data.images import Resize

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
            preprocessing=preprocessing(
                list(dataset["input_shape"]),
                str(input_dtype).removeprefix("torch."),
                dataset.get("max_value", 255),
                mean=normalize.mean.tolist(),
                std=normalize.std.tolist(),
                resize=Resize.of(dataset.get("resize"), dataset.get("interpolation", "bilinear")),
                table=table,
                target_scale=target_scale,
            ),
            channels_last=channels_last,
            model=cfg["model"],
            threshold=fixed_threshold(cfg.get("trainer", {}).get("threshold")),
        )

    def for_export(self) -> ModelCard:
        """The card an export carries: exported graphs take contiguous (not channels-last) inputs."""
        return replace(self, channels_last=False)

    def decide(self, probs: Any) -> Any:
        """The predicted class indices of (N, K) probabilities (a torch tensor): for 2 classes, class 1 where its
        probability is at least the card's threshold (scikit-learn's FixedThresholdClassifier rule); the argmax
        otherwise."""
        if self.num_outputs == 2 and self.threshold != 0.5:
            return (probs[:, 1] >= self.threshold).long()
        return probs.argmax(dim=1)

    def labels(self) -> list[str]:
        """The class names, or the class indices as strings where the data named none."""
        return self.class_names or [str(i) for i in range(self.num_outputs)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preprocessing(
    input_shape: Sequence[int],
    input_dtype: str,
    max_value: float,
    *,
    mean: Any,
    std: Any,
    resize: Resize | None = None,
    table: dict[str, Any] | None = None,
    target_scale: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The contract from a raw input to the model's input, as plain data (each field: docs/predict-export.md).

    image: how an image file becomes 8-bit pixels (data.images.contract), or None when the model does not take
    images. range: [0, max_value], the raw value of a black and of a white pixel (raw = round(pixel * max_value /
    255), so 0..255 pixels unchanged when max_value is 255), or None. mean, std: the per-channel statistics, nested
    lists of shape [1, C, 1, 1] (images) broadcastable to a batch; the model's input is (raw - mean) / std in
    float32, laid out as `layout` (NCHW for images) with a batch dimension first.
    """
    from runner.data.images import STRETCH, contract
    from runner.data.inputs import takes_images

    images = takes_images(input_shape, input_dtype)
    return {
        "image": contract(input_shape, resize or STRETCH) if images else None,
        "range": [0, max_value] if images else None,
        "mean": mean,
        "std": std,
        "layout": LAYOUTS.get(len(input_shape)),
        "dtype": "float32",
        # a table's raw columns -> its features, before mean and std (data/encoding.py's TableEncoder), or None: the
        # block a dataset kind's Splits fill (data/kinds.py's card_block), handed back to its predict reader
        "table": table,
        # regression targets the model was trained on standardised, {"mean": [...], "std": [...]} per output: its
        # outputs * std + mean are in the targets' units (Splits.target_scale); None: its outputs are
        "target_scale": target_scale,
    }


def fixed_threshold(threshold: object) -> float:
    """trainer.threshold as the card records it when the run starts: a number as it is; "tuned" (or none) 0.5 until
    the run's end writes the tuned one."""
    return float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else 0.5
