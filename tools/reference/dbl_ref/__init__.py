"""dbl_ref: the dbl project's own PyTorch port of `docs/method.md`.

Written from the spec (not copied from the authors' code). Used only to make
test fixtures and as the side-by-side peer in benchmarks; `cargo test` never
needs it.

Modules:
- `losses`: triplet (L_raw), DBL boosting (RM, RS, AM, AS), margin adaptation,
  cohort combination, cooperative baselines (mutual learning, distillation,
  InfoNCE and decoupled InfoNCE). Spec sections 3 and 3.7.
- `models`: the released backbone `scan-ave` (spec section 5) and `vse`.
- `optim`: Adam + gradient-norm clipping as the authors' train loops use them.
"""
