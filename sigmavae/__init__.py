"""sigmavae: learned decoder variance for VAEs (Lin, Roberts, Trigoni, Clark, 2019).

Where the paper lives in the code:
- Eq. 8 / 11 (Gaussian likelihood, global or per-pixel σ²): ``likelihoods.gaussian_log_prob``
- Eq. 9 (ELBO with learned σ²): ``objectives.elbo_loss`` on a ``models.VAE(variance="global")``
- Eq. 10 (closed-form σ²): ``likelihoods.optimal_sigma2``; over a training set: ``training.dataset_sigma2``
- Algorithm 1 (two-stage training): ``training.train`` (configured by ``config.TrainConfig``, the
  appendix tables ``config.APPENDIX``; checkpoints ``runs``; under torchrun ``data_parallel``)
- Eq. 12 / 13 (aggregate posterior, its Gaussian mixture q̂): ``sampling.fit_aggregate_posterior``
- Tables 1 and 3 (KL(q̂‖p), IWAE): ``metrics``; FID ± bootstrap std: ``fid``
- Every table and figure: the parameters and profiles, ``params``; the models each artefact
  needs, ``artefacts``; each score of a model, ``scores``; one measurement per artefact,
  ``experiments``, which gathers them from their families (the σ² sweep ``sigma2_sweep``, samples
  and FIDs ``generation``, Table 3 ``log_likelihoods``, ``uncertainty``, ``beyond``; what they
  share ``outcomes``, the values the summary pastes ``headlines``); the paper's numbers and
  claims, ``paper``; the verdict rule (holds / fails / unresolved), ``claims``; tables, figures
  and JSON, ``reports``; models, q̂ and scores computed once, ``cache``
- Where and how to run (device, data root, cache, download, FID weights, progress): one
  ``runtime.Runtime``, passed by keyword through every layer

Each module imports only the modules below it (the order is in the README; tests/test_layering.py).
"""

__version__ = "0.1.0"
