"""Reference trainer: a small ViT seq2seq detector, MLE then reward tuning (python -m reference_training)."""
