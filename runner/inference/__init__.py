"""Using a trained run: its model card (card.py), finding and loading its model (loading.py), the model
with its run's preprocessing in front (predictor.py), and the export formats (formats.py)."""
