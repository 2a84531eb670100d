"""Subtomogram alignment family: Gum-Net, classical and hybrid alignment, reference-free averaging."""
