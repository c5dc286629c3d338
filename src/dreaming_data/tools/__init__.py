"""What runs around ``dvc repro``, never inside a stage: the stage registry (``--no-dvc`` runs), committed results,
the dreaming curve's queue, the cost projection, the offline plots page, and the writer of dvc.yaml's code deps.
No stage imports this package, so editing it re-runs nothing."""
