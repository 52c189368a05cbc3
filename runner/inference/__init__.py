"""Using a trained run: its model card (card.py), finding and loading its model (loading.py), the model
with its run's preprocessing in front (predictor.py), test-time augmentation (tta.py), and the export formats
(formats.py)."""
