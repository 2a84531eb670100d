"""Template-matching hypothesis tests with 3D-WGAN pseudo-complexes (seed 000).

``templates`` builds the known-template set; ``wgan`` the 3D-WGAN-GP and its training; ``regressor`` the inverse
generator, the CV-bandwidth KDE and Bayes rejection sampling; ``score`` the batched wedge-aware template scoring;
``test`` the Monte-Carlo p-value, Gaussian tail, Benjamini–Hochberg and the decision table; ``bench`` the figures.
"""
