"""Training sets of a region: curate, export, dataset card, verification, training."""
